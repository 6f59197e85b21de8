"""The inputs of `engine: spark`: the behavior log and side tables as Spark relations.

Catalog tables (`data.tables.behavior: {table: db.events, partitions: "ds = '{date}'"}`) are read
where they live, through Spark's catalog (a Hive metastore works unchanged). Every other source is
loaded as for DuckDB (same readers, same sampled negatives) and staged as Parquet that the executors
read, with ROW (the behavior row number) added so both engines break ties the same way; a plain Parquet
behavior log (no `derive`, no sampled negatives) is staged batch by batch, so the driver's memory does
not grow with the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recforge.config.schema import DataConfig
from recforge.config.tables import CatalogTable, TableFile, TablesConfig
from recforge.data.negatives import SAMPLED, add_negatives
from recforge.data.readers import is_delimited, iter_batches, write_parquet
from recforge.data.sample_plan import ROW, Side
from recforge.data.sources import load_source
from recforge.data.spark_sql import SparkSql
from recforge.data.tablefile import read_table_file
from recforge.errors import ConfigError

log = logging.getLogger(__name__)

STAGE_ROWS = 131_072  # rows per batch (and row group) when the behavior log is staged batch by batch
PARENT = "__parent"  # ROW of the log row a sampled negative was drawn for (its own ROW for log rows)


@dataclass
class SparkInputs:
    """The views `behavior` (+ `users`, `items`) are registered; what the plan needs to know about them."""

    sides: list[Side]
    origin: str
    counts: dict[str, int] = field(default_factory=dict)
    sampled: bool = False  # the behavior view has SAMPLED and PARENT columns


def uses_catalog(cfg: DataConfig) -> bool:
    tables = cfg.tables
    return tables is not None and any(
        isinstance(getattr(tables, name), CatalogTable) for name in ("behavior", "users", "items")
    )


def register_inputs(engine: SparkSql, cfg: DataConfig, staging: Path) -> SparkInputs:
    """Register `behavior` / `users` / `items` for `cfg` (catalog tables in place, others staged under `staging`)."""
    if uses_catalog(cfg):
        assert cfg.tables is not None
        return _catalog_inputs(engine, cfg, cfg.tables)
    if streams_behavior(cfg):
        return _streamed_inputs(engine, cfg, staging)
    raw = load_source(cfg)
    if cfg.negatives is not None:
        raw = add_negatives(raw, cfg.negatives, cfg.label)
    behavior = raw.behavior.append_column(ROW, pa.array(np.arange(raw.behavior.num_rows, dtype=np.int64)))
    sampled = SAMPLED in behavior.column_names
    if sampled:
        flag = np.asarray(behavior[SAMPLED].to_numpy(zero_copy_only=False), dtype=bool)
        logged = np.flatnonzero(~flag)
        behavior = behavior.append_column(PARENT, pa.array(logged[np.cumsum(~flag) - 1]))
    _stage(engine, "behavior", behavior, staging)
    sides = []
    for name, table, key in (("users", raw.users, raw.user_key), ("items", raw.items, raw.item_key)):
        if table is not None:
            _stage(engine, name, table, staging)
            sides.append(Side(name, key, table.column_names))
    counts = {**raw.counts, "raw": behavior.num_rows}
    return SparkInputs(sides, raw.origin or cfg.source, counts, sampled)


def _stage(engine: SparkSql, name: str, table: pa.Table, staging: Path) -> None:
    path = staging / f"{name}.parquet"
    write_parquet(table, str(path))
    engine.view(name, engine.spark.read.parquet(str(path)))


def streams_behavior(cfg: DataConfig) -> bool:
    """A Parquet behavior log that is neither derived nor given sampled negatives is staged batch by batch, so
    the driver never holds the whole log (the other sources are loaded as for DuckDB)."""
    tables = cfg.tables
    if cfg.source != "tables" or tables is None or cfg.negatives is not None:
        return False
    behavior = tables.behavior
    return isinstance(behavior, TableFile) and not behavior.derive and not is_delimited(behavior.path)


def _streamed_inputs(engine: SparkSql, cfg: DataConfig, staging: Path) -> SparkInputs:
    """The behavior log copied with ROW one batch at a time; the side tables read whole (they are small)."""
    tables = cfg.tables
    assert tables is not None and isinstance(tables.behavior, TableFile)
    path = staging / "behavior.parquet"
    rows = copy_with_row_numbers(tables.behavior.path, path)
    engine.view("behavior", engine.spark.read.parquet(str(path)))
    counts = {"behavior_lines": rows, "behavior_bad_lines": 0}
    sides = []
    for name, key in (("users", tables.user_key), ("items", tables.item_key)):
        spec = getattr(tables, name)
        if spec is not None:
            table, table_counts = read_table_file(spec, f"data.tables.{name}")
            counts.update({f"{name}_{what}": value for what, value in table_counts.items()})
            _stage(engine, name, table, staging)
            sides.append(Side(name, key, table.column_names))
    log.info("%s: %s behavior rows staged for Spark batch by batch", tables.behavior.path, f"{rows:,}")
    return SparkInputs(sides, tables.behavior.path, {**counts, "raw": rows})


def copy_with_row_numbers(source: str, target: Path) -> int:
    """`source` (Parquet) rewritten to `target` with ROW, the 0-based row number, appended; returns the rows."""
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for batch in iter_batches(source, batch_rows=STAGE_ROWS):
            table = pa.Table.from_batches([batch])
            table = table.append_column(ROW, pa.array(np.arange(rows, rows + table.num_rows, dtype=np.int64)))
            writer = writer or pq.ParquetWriter(str(target), table.schema)
            writer.write_table(table, row_group_size=STAGE_ROWS)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def _partition_filter(spec: CatalogTable, date: str | None, yaml_path: str) -> str | None:
    if spec.partitions is None:
        return None
    if "{date}" in spec.partitions and date is None:
        raise ConfigError(f"{yaml_path}.partitions", f"{spec.partitions!r} needs `data.date`", fix="set data.date")
    try:
        return spec.partitions.format(date=date)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"{yaml_path}.partitions", f"{spec.partitions!r}: unknown placeholder {exc}", fix="use only {date}"
        ) from None


def _catalog_frame(engine: SparkSql, spec: CatalogTable, date: str | None, yaml_path: str):
    if not engine.spark.catalog.tableExists(spec.table):
        raise ConfigError(
            f"{yaml_path}.table",
            f"Spark's catalog has no table {spec.table!r}",
            fix="check the name, and that spark.conf points at the metastore (spark.sql.catalogImplementation: hive)",
        )
    frame = engine.spark.table(spec.table)
    where = _partition_filter(spec, date, yaml_path)
    if where is not None:
        try:
            frame = frame.where(where)
            frame.schema  # noqa: B018 (analysis: a bad filter fails here, with its YAML path)
        except engine.errors as exc:
            raise ConfigError(f"{yaml_path}.partitions", f"Spark cannot evaluate {where!r}: {exc}") from None
    return frame


def _catalog_inputs(engine: SparkSql, cfg: DataConfig, tables: TablesConfig) -> SparkInputs:
    """Catalog tables as they are; files among them read as for DuckDB. ROW is Spark's row id (file order)."""
    from pyspark.sql import functions as F

    if cfg.negatives is not None:
        raise ConfigError(
            "data.negatives",
            "sampled negatives read the log in this process; a catalog table stays in Spark",
            fix="sample negatives into the table upstream, or give the log as files",
        )
    sides = []
    counts: dict[str, int] = {}
    for name, key in (("behavior", ""), ("users", tables.user_key), ("items", tables.item_key)):
        spec = getattr(tables, name)
        yaml_path = f"data.tables.{name}"
        if spec is None:
            continue
        if isinstance(spec, CatalogTable):
            frame = _catalog_frame(engine, spec, cfg.date, yaml_path)
        else:
            table, table_counts = read_table_file(spec, yaml_path)
            counts.update({f"{name}_{what}": value for what, value in table_counts.items()})
            frame = engine.spark.createDataFrame(table)
        if not key:
            frame = frame.withColumn(ROW, F.monotonically_increasing_id())
        engine.view(name, frame, keep=not key)
        if key:
            sides.append(Side(name, key, frame.columns))
    counts["raw"] = engine.rows("SELECT count(*) FROM behavior")[0][0]
    origin = tables.behavior.table if isinstance(tables.behavior, CatalogTable) else tables.behavior.path
    return SparkInputs(sides, origin, counts)
