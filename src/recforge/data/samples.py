"""Samples: behavior joined with user and item tables, labelled, split and written as Parquet.

The join and the label rule run in embedded DuckDB over the Arrow tables; the split is numpy with a
seeded generator, so the same config and seed always give the same files. Rows are never dropped
silently: unmatched joins, rule drops and split sizes are all counted in `SamplePaths.counts`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from recforge.config.schema import DataConfig, LabelRule
from recforge.data.classes import require_both_classes
from recforge.data.duck import fetch_arrow, quote
from recforge.data.history import add_history
from recforge.data.negatives import add_negatives, split_with_negatives
from recforge.data.raw import RawTables
from recforge.data.readers import count_rows, read_schema, write_parquet
from recforge.data.sources import load_source
from recforge.data.splits import SPLITS, expected_splits
from recforge.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ROW = "__row"  # behavior row number: fixes the output order and names rows in errors


@dataclass
class SamplePaths:
    """Where the split samples are (None: the config makes no such split) and what happened to the rows."""

    train: str
    valid: str | None = None
    test: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def build_samples(
    cfg: DataConfig, out_dir: str | Path, labels: Sequence[str] | None = None, targets: Sequence[str] = ()
) -> SamplePaths:
    """Load the source, join, label and split it into `out_dir/{train,valid,test}.parquet`.

    `labels`: the 0/1 label columns (a multi-task pipeline's task labels; default `data.label`);
    `targets`: numeric label columns of regression tasks. Every 0/1 label must hold both classes in train.
    """
    binary = tuple(labels) if labels is not None else (cfg.label,)
    if cfg.source == "samples":
        paths = prebuilt_samples(cfg, [*binary, *targets])
    else:
        paths = _split_samples(cfg, out_dir, binary, targets)
    require_both_classes(paths.train, binary)
    return paths


def _split_samples(cfg: DataConfig, out_dir: str | Path, labels: Sequence[str], targets: Sequence[str]) -> SamplePaths:
    """Load the source, join, label, add history and write each split's rows."""
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
        if not wanted:
            paths[name] = None
            continue
        if rows.size == 0:
            raise DataError(
                f"{raw.origin or cfg.source}: split {name!r} ({cfg.split.method}) is empty "
                f"({counts['rows']:,} labelled rows)"
                "\n  fix: adjust `data.split` (ratios or dates), or use more data"
            )
        path = f"{base}/{name}.parquet"
        write_parquet(table.take(pa.array(rows)), path)
        paths[name] = path
    log.info("samples in %s: %s", base, counts)
    return SamplePaths(train=str(paths["train"]), valid=paths["valid"], test=paths["test"], counts=counts)


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
    con = duckdb.connect(config={"enable_external_access": False})  # rule SQL may not touch files
    try:
        types = _join(con, raw, origin, counts)
        if cfg.label_rule is not None:
            _apply_rule(con, cfg.label_rule, cfg.label, origin, counts)
        table = _restore_types(fetch_arrow(con, f"SELECT * FROM labelled ORDER BY {ROW}"), types)
    finally:
        con.close()
    binary = (cfg.label,) if labels is None else tuple(labels)
    for label in binary:
        if cfg.label_rule is None or label != cfg.label:  # a rule's label is 0/1 by construction
            table = _check_label(table, label, origin)
    for target in targets:
        _check_target(table, target, origin)
    if cfg.label_rule is None:
        counts["dropped"] = 0
        counts["rows"] = table.num_rows
    if cfg.weight and cfg.weight not in table.column_names:
        raise DataError(
            f"{origin}: no weight column {cfg.weight!r}; the samples have {table.column_names}"
            "\n  fix: set `data.weight` to one of them, or remove it"
        )
    for i, label in enumerate(binary):
        positive = int(np.asarray(table[label].to_numpy()).sum())
        counts["positive" if i == 0 else f"positive:{label}"] = positive
    return table, counts


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


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    row = con.execute(sql).fetchone()
    assert row is not None  # aggregates always return one row
    return row


def _require(table: pa.Table, column: str, what: str, origin: str) -> None:
    if column not in table.column_names:
        raise DataError(
            f"{origin}: {what} has no key column {column!r}; it has {table.column_names}"
            "\n  fix: set `data.tables.user_key` / `item_key` to the shared key column"
        )


def _check_unique(con: duckdb.DuckDBPyConnection, name: str, key: str, origin: str) -> None:
    """Duplicate keys in a side table would multiply behavior rows, so they are an error."""
    dup = con.execute(
        f"SELECT {quote(key)}, count(*) AS n FROM {name} WHERE {quote(key)} IS NOT NULL "
        f"GROUP BY ALL HAVING n > 1 ORDER BY n DESC LIMIT 1"
    ).fetchone()
    if dup is not None:
        raise DataError(
            f"{origin}: the {name} table has duplicate {key!r} values "
            f"(e.g. {dup[0]!r} appears {dup[1]} times), "
            "so joining would duplicate behavior rows\n  fix: deduplicate the table on its key"
        )


def _side(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table | None,
    name: str,
    key: str,
    taken: dict[str, pa.DataType],
    behavior: pa.Table,
    origin: str,
) -> tuple[list[str], str]:
    """Register one side table; returns its select list and join clause, and adds its columns to `taken`.

    A column whose name is already taken gets the prefix `user_` / `item_` (logged).
    """
    if table is None:
        return [], ""
    _require(behavior, key, "the behavior table", origin)
    _require(table, key, f"the {name} table", origin)
    con.register(name, table)
    _check_unique(con, name, key, origin)
    prefix = name[:-1] + "_"  # users -> user_, items -> item_
    select = []
    for column in table.column_names:
        if column == key:
            continue
        out = column
        while out in taken or out == ROW:
            out = prefix + out
        if out != column:
            log.warning("%s: column %r of the %s table is renamed %r (the name is taken)", origin, column, name, out)
        taken[out] = table.schema.field(column).type
        select.append(f"{name[0]}.{quote(column)} AS {quote(out)}")
    left, right = f"b.{quote(key)}", f"{name[0]}.{quote(key)}"
    if behavior.schema.field(key).type != table.schema.field(key).type:
        log.info("%s: joining %s on %r as text (types differ)", origin, name, key)
        left, right = f"CAST({left} AS VARCHAR)", f"CAST({right} AS VARCHAR)"
    hit = f"__{name}_hit"
    join = f"LEFT JOIN (SELECT *, TRUE AS {hit} FROM {name}) {name[0]} ON {left} = {right}"
    select.append(f"{name[0]}.{hit} IS NOT NULL AS {hit}")
    return select, join


def _join(
    con: duckdb.DuckDBPyConnection, raw: RawTables, origin: str, counts: dict[str, int]
) -> dict[str, pa.DataType]:
    """Create the `joined` table and the `labelled` view; returns each output column's source type."""
    behavior = raw.behavior.append_column(ROW, pa.array(np.arange(raw.behavior.num_rows, dtype=np.int64)))
    con.register("behavior", behavior)
    taken = dict(zip(behavior.column_names, behavior.schema.types, strict=True))
    user_sel, user_join = _side(con, raw.users, "users", raw.user_key, taken, behavior, origin)
    item_sel, item_join = _side(con, raw.items, "items", raw.item_key, taken, behavior, origin)
    select = ", ".join(["b.*", *user_sel, *item_sel])
    con.execute(f"CREATE TEMP TABLE joined AS SELECT {select} FROM behavior b {user_join} {item_join}")
    for name, key, used in (("users", raw.user_key, user_join), ("items", raw.item_key, item_join)):
        if not used:
            continue
        hit = f"__{name}_hit"
        missing, example = _scalar(
            con,
            f"SELECT count(*) FILTER (WHERE NOT {hit}), min({quote(key)}) FILTER (WHERE NOT {hit}) FROM joined",
        )
        counts[f"{name}_unmatched"] = int(missing)
        if missing:
            log.warning(
                "%s: %s of %s behavior rows have no match in the %s table (e.g. %s=%r); their %s columns are null",
                origin,
                f"{missing:,}",
                f"{counts['raw']:,}",
                name,
                key,
                example,
                name[:-1],
            )
        con.execute(f"ALTER TABLE joined DROP COLUMN {hit}")
    con.execute("CREATE TEMP VIEW labelled AS SELECT * FROM joined")
    return taken


def _check_expression(con: duckdb.DuckDBPyConnection, expr: str, yaml_path: str) -> None:
    """Bind `expr` to the joined columns and require a boolean, so mistakes surface with their YAML path."""
    try:
        kind = con.execute(f"DESCRIBE SELECT ({expr}) AS x FROM joined").fetchall()[0][1]
    except duckdb.Error as exc:
        columns = [row[0] for row in con.execute("DESCRIBE joined").fetchall() if row[0] != ROW]
        raise ConfigError(
            yaml_path,
            f"DuckDB cannot evaluate {expr!r}: {str(exc).splitlines()[0]}",
            fix=f"write a SQL boolean expression over the columns {columns}",
        ) from None
    if kind != "BOOLEAN":
        raise ConfigError(yaml_path, f"{expr!r} is {kind}, not a boolean", fix="compare it, e.g. `rating >= 4`")


def _apply_rule(
    con: duckdb.DuckDBPyConnection, rule: LabelRule, label: str, origin: str, counts: dict[str, int]
) -> None:
    """Drop rows where `rule.drop` holds (NULL counts as false), then label = positive (NULL is an error)."""
    _check_expression(con, rule.positive, "data.label_rule.positive")
    keep = "TRUE"
    if rule.drop:
        _check_expression(con, rule.drop, "data.label_rule.drop")
        keep = f"NOT coalesce(({rule.drop}), FALSE)"
    try:
        kept, null_row = _scalar(
            con,
            f"SELECT count(*), min({ROW}) FILTER (WHERE ({rule.positive}) IS NULL) FROM joined WHERE {keep}",
        )
    except duckdb.Error as exc:
        raise ConfigError("data.label_rule", f"DuckDB failed on the rule: {str(exc).splitlines()[0]}") from None
    counts["dropped"] = counts["raw"] - int(kept)
    counts["rows"] = int(kept)
    if counts["dropped"]:
        log.info(
            "%s: label_rule.drop %r removed %s of %s rows",
            origin,
            rule.drop,
            f"{counts['dropped']:,}",
            f"{counts['raw']:,}",
        )
    if kept == 0:
        raise DataError(
            f"{origin}: `data.label_rule.drop: {rule.drop}` removed all {counts['raw']:,} rows"
            "\n  fix: loosen the drop condition"
        )
    if null_row is not None:
        raise DataError(
            f"{origin}: `data.label_rule.positive: {rule.positive}` is NULL (no label) at behavior row "
            f"{null_row:,} (0-based)\n  fix: add `... IS NULL` to `data.label_rule.drop`, or fill the column"
        )
    existing = [row[0] for row in con.execute("DESCRIBE joined").fetchall()]
    exclude = f" EXCLUDE ({quote(label)})" if label in existing else ""
    if exclude:
        log.info("%s: label_rule replaces the existing column %r", origin, label)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW labelled AS SELECT *{exclude}, "
        f"CAST(({rule.positive}) AS BIGINT) AS {quote(label)} "
        f"FROM joined WHERE {keep}"
    )


def _check_target(table: pa.Table, column: str, origin: str) -> None:
    """A regression task's label: a numeric column without nulls."""
    if column not in table.column_names:
        names = [n for n in table.column_names if n != ROW]
        raise DataError(f"{origin}: no label column {column!r}; the data has {names}\n  fix: set the task's `label`")
    kind = table[column].type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)) or table[column].null_count:
        raise DataError(
            f"{origin}: regression label {column!r} must be numbers without nulls (type {kind}, "
            f"{table[column].null_count:,} nulls)\n  fix: fill or convert the column"
        )


def _check_label(table: pa.Table, label: str, origin: str) -> pa.Table:
    """Without a rule the label column must exist and hold only 0/1; returns the table with an int64 label."""
    if label not in table.column_names:
        names = [n for n in table.column_names if n != ROW]
        raise DataError(
            f"{origin}: no label column {label!r}; the data has {names}"
            "\n  fix: set `data.label` to one of them, or give `data.label_rule` to derive it"
        )
    column = table[label]
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise DataError(
            f"{origin}: label column {label!r} is {kind}, expected 0/1 numbers"
            f"\n  fix: convert it, or derive it with `data.label_rule.positive`"
        )
    if pa.types.is_boolean(kind):
        column = column.cast(pa.int64())
    values = np.asarray(column.to_numpy(), dtype=np.float64)  # nulls -> NaN
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        first = int(bad[0])
        raise DataError(
            f"{origin}: label column {label!r} must hold only 0/1, but {bad.size:,} rows do not; first at "
            f"behavior row {int(table[ROW][first].as_py()):,} (0-based): {column[first].as_py()!r}"
            "\n  fix: clean the column, or derive the label with `data.label_rule`"
        )
    index = table.column_names.index(label)
    return table.set_column(index, label, column.cast(pa.int64()))
