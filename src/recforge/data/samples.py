"""Samples: behavior joined with user and item tables, labelled, split and written as Parquet.

The join and the label rule run in embedded DuckDB over the Arrow tables; the split is numpy with a
seeded generator, so the same config and seed always give the same files. Rows are never dropped
silently: unmatched joins, rule drops and split sizes are all counted in `SamplePaths.counts`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from recforge.config.engine import SampleEngine, SparkConfig
from recforge.config.schema import DataConfig
from recforge.data.classes import require_both_classes
from recforge.data.duck import fetch_arrow
from recforge.data.history import add_history
from recforge.data.negatives import add_negatives, split_with_negatives
from recforge.data.raw import RawTables
from recforge.data.readers import count_rows, read_schema, write_parquet
from recforge.data.sample_plan import ROW, Side, label_rows, require_rows
from recforge.data.sources import load_source
from recforge.data.splits import SPLITS, expected_splits
from recforge.data.sql_engine import DuckSql
from recforge.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class SamplePaths:
    """Where the split samples are (None: the config makes no such split) and what happened to the rows."""

    train: str
    valid: str | None = None
    test: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def build_samples(
    cfg: DataConfig,
    out_dir: str | Path,
    labels: Sequence[str] | None = None,
    targets: Sequence[str] = (),
    engine: SampleEngine = "duckdb",
    spark: SparkConfig | None = None,
) -> SamplePaths:
    """Load the source, join, label and split it into `out_dir/{train,valid,test}.parquet`.

    `labels`: the 0/1 label columns (a multi-task pipeline's task labels; default `data.label`);
    `targets`: numeric label columns of regression tasks. Every 0/1 label must hold both classes in train.
    `engine` builds them (duckdb in this process, or spark on `spark`); both give the same rows.
    """
    binary = tuple(labels) if labels is not None else (cfg.label,)
    if cfg.source == "samples":
        paths = prebuilt_samples(cfg, [*binary, *targets])
    else:
        build = SAMPLE_ENGINES[engine]
        split_paths, counts = build(cfg, out_dir, spark or SparkConfig(), binary, targets)
        log.info("samples in %s (%s): %s", out_dir, engine, counts)
        paths = SamplePaths(
            train=str(split_paths["train"]), valid=split_paths["valid"], test=split_paths["test"], counts=counts
        )
    require_both_classes(paths.train, binary)
    return paths


def _duckdb_samples(
    cfg: DataConfig, out_dir: str | Path, spark: SparkConfig, labels: Sequence[str], targets: Sequence[str]
) -> tuple[dict[str, str | None], dict[str, int]]:
    """Load the source, join, label, add history and write each split's rows (in behavior order)."""
    raw = load_source(cfg)
    sampled = raw if cfg.negatives is None else add_negatives(raw, cfg.negatives, cfg.label)
    table, counts = join_and_label(sampled, cfg, labels, targets)
    if cfg.history is not None:
        table = add_history(table, raw.behavior, cfg.history, origin=raw.origin or cfg.source)
    table, codes = split_with_negatives(table, cfg.split, origin=raw.origin or cfg.source)
    table = table.drop_columns([ROW])
    base = str(out_dir).rstrip("/")
    paths: dict[str, str | None] = {}
    for code, (name, wanted) in enumerate(zip(SPLITS, expected_splits(cfg.split), strict=True)):
        rows = np.flatnonzero(codes == code)
        counts[name] = int(rows.size)
        paths[name] = None
        if wanted:
            require_rows(name, cfg.split, raw.origin or cfg.source, counts)
            path = paths[name] = f"{base}/{name}.parquet"
            write_parquet(table.take(pa.array(rows)), path)
    return paths, counts


def _spark_samples(
    cfg: DataConfig, out_dir: str | Path, spark: SparkConfig, labels: Sequence[str], targets: Sequence[str]
) -> tuple[dict[str, str | None], dict[str, int]]:
    from recforge.data.spark_samples import spark_samples  # imports pyspark, only when asked for

    return spark_samples(cfg, out_dir, spark, labels, targets)


SampleBuilder = Callable[
    [DataConfig, "str | Path", SparkConfig, Sequence[str], Sequence[str]], tuple[dict[str, str | None], dict[str, int]]
]
SAMPLE_ENGINES: dict[str, SampleBuilder] = {"duckdb": _duckdb_samples, "spark": _spark_samples}


def prebuilt_samples(cfg: DataConfig, labels: Sequence[str] = ()) -> SamplePaths:
    """source=samples: check the given files exist and hold the label columns; nothing is rewritten."""
    if not cfg.train:
        raise ConfigError("data.train", "source 'samples' needs a train file", fix="set `data.train` to a Parquet/CSV")
    counts: dict[str, int] = {}
    for name in SPLITS:
        path = getattr(cfg, name)
        if path is None:
            continue
        names = read_schema(path).names  # raises DataError for a missing or unreadable file
        for label in labels or (cfg.label,):
            if label not in names:
                raise DataError(
                    f"{path}: no label column {label!r}; the file has {names}\n  fix: set `data.label` "
                    "(or the task's `label`) to one of them"
                )
        rows = count_rows(path)
        if rows is not None:
            counts[name] = rows
    return SamplePaths(train=cfg.train, valid=cfg.valid, test=cfg.test, counts=counts)


def join_and_label(
    raw: RawTables, cfg: DataConfig, labels: Sequence[str] | None = None, targets: Sequence[str] = ()
) -> tuple[pa.Table, dict[str, int]]:
    """Behavior LEFT JOIN users LEFT JOIN items, then the label (rule or 0/1 column), in behavior order.

    The result keeps a `__row` column (the behavior row number) for the split and for error messages.
    """
    origin = raw.origin or cfg.source
    counts = {**raw.counts, "raw": raw.behavior.num_rows}
    binary = (cfg.label,) if labels is None else tuple(labels)
    engine = DuckSql()
    try:
        behavior = raw.behavior.append_column(ROW, pa.array(np.arange(raw.behavior.num_rows, dtype=np.int64)))
        tables = {"behavior": behavior}
        engine.register("behavior", behavior)
        sides = []
        for name, table, key in (("users", raw.users, raw.user_key), ("items", raw.items, raw.item_key)):
            if table is not None:
                engine.register(name, table)
                tables[name] = table
                sides.append(Side(name, key, table.column_names))
        sources = label_rows(engine, sides, cfg, binary, targets, origin, counts)
        table = fetch_arrow(engine.con, f"SELECT * FROM labelled ORDER BY {ROW}")
    finally:
        engine.close()
    types = {out: tables[rel].schema.field(col).type for out, (rel, col) in sources.items() if rel in tables}
    return _restore_types(table, types), counts


def _restore_types(table: pa.Table, types: dict[str, pa.DataType]) -> pa.Table:
    """Cast columns back to their source types where DuckDB changed them (dictionaries, list field names)."""
    for index, field_ in enumerate(table.schema):
        want = types.get(field_.name)
        if want is not None and field_.type != want:
            try:
                table = table.set_column(index, field_.name, table[field_.name].cast(want))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                log.debug("column %r keeps DuckDB's type %s (source type %s)", field_.name, field_.type, want)
    return table
