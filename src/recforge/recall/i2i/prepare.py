"""Input checks, filters, weights and dedupe shared by every i2i engine, so all engines see the same rows.

The result holds dense int32 codes whose order is the order of the original ids: ranking ties broken by
code are then broken by id, in every engine. Every dropped row is counted under its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.config.i2i import I2IConfig
from recforge.data.readers import read_table
from recforge.errors import DataError

log = logging.getLogger(__name__)

TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

Source: TypeAlias = pa.Table | str | PathLike[str] | Mapping[str, Any]


@dataclass(frozen=True)
class Interactions:
    """Deduplicated rows `via, key, w[, t]`: keys get similarities, vias link them (users for itemcf)."""

    rows: pa.Table
    key_ids: pa.Array  # original id of key code c is key_ids[c]
    via_ids: pa.Array
    counts: dict[str, int] = field(default_factory=dict)


def needs_time(cfg: I2IConfig) -> bool:
    """Only time decay and swing's most-recent cap read the time column."""
    if cfg.method == "swing":
        return cfg.swing_keep == "recent"
    return cfg.time_decay is not None


def load(source: Source, cfg: I2IConfig) -> tuple[pa.Table, str]:
    """(table, origin for messages) from an Arrow table, a Parquet/CSV path or URL, or a dict/frame of columns."""
    columns = _input_columns(cfg)
    if isinstance(source, pa.Table):
        return source, "input table"
    if isinstance(source, (str, PathLike)):
        return read_table(str(source), columns=columns), str(source)
    if isinstance(source, Mapping) or hasattr(source, "columns"):
        names = list(source.keys() if isinstance(source, Mapping) else source.columns)
        return pa.table({name: _column_array(source[name], name) for name in names}), "input columns"
    raise DataError(f"cannot read i2i input of type {type(source).__name__}\n  fix: pass an Arrow table or a path")


def prepare(source: Source, cfg: I2IConfig) -> Interactions:
    """Clean `source` by `cfg`: filter, weight, drop bad rows (counted), encode ids, collapse duplicates."""
    table, origin = load(source, cfg)
    _require_columns(table, cfg, origin)
    key_col, via_col = (cfg.user_col, cfg.item_col) if cfg.method == "usercf" else (cfg.item_col, cfg.user_col)
    table = _check_ids(_check_ids(table, key_col, origin), via_col, origin)
    counts = {"rows_in": table.num_rows}
    table = _clean(table, cfg, _Cleaner(origin, cfg.strict, counts))
    if table.num_rows == 0:
        raise DataError(
            f"{origin}: no rows left after the filters ({_describe(counts)})"
            "\n  fix: check `behaviors`, `behavior_weights` and the weight column against the data"
        )
    key_ids, keys = _encode(table[key_col])
    via_ids, vias = _encode(table[via_col])
    encoded = {"via": vias, "key": keys, "w": table["__w"]}
    if "__t" in table.column_names:
        encoded["t"] = table["__t"]
    rows = _dedupe(pa.table(encoded), cfg.dedupe)
    counts["duplicates"] = table.num_rows - rows.num_rows
    counts["rows"] = rows.num_rows
    users, items = (key_ids, via_ids) if cfg.method == "usercf" else (via_ids, key_ids)
    counts["users"], counts["items"] = len(users), len(items)
    log.info("%s: i2i input %s", origin, _describe(counts))
    return Interactions(rows=rows, key_ids=key_ids, via_ids=via_ids, counts=counts)


def _clean(table: pa.Table, cfg: I2IConfig, cleaner: _Cleaner) -> pa.Table:
    """Rows that pass every filter, with their weight `__w` (and time `__t` when the method needs it)."""
    table = table.append_column("__row", pa.array(np.arange(table.num_rows)))
    table = cleaner.filter_behaviors(table, cfg)
    table = cleaner.drop(table, _all_valid(table, [cfg.user_col, cfg.item_col]), "null_ids", "have a null id")
    if cfg.behavior_weights:
        mapped = pc.fill_null(pc.is_in(_as_text(table[cfg.behavior_col]), pa.array(list(cfg.behavior_weights))), False)
        table = cleaner.drop(table, mapped, "unmapped_behaviors", "have a behavior missing from `behavior_weights`")
    table = table.append_column("__w", cleaner.weights(table, cfg))
    table = cleaner.drop(table, _positive(table["__w"]), "nonpositive_weights", "have a missing or non-positive weight")
    if needs_time(cfg):
        table = table.append_column("__t", _seconds(table[cfg.time_col], cfg.time_col, cleaner.origin))
        table = cleaner.drop(table, _all_valid(table, ["__t"]), "null_times", f"have no time in {cfg.time_col!r}")
    return table


def _input_columns(cfg: I2IConfig) -> list[str]:
    """Columns the config reads, in a stable order without repeats."""
    wanted = [cfg.user_col, cfg.item_col]
    if cfg.behaviors or cfg.behavior_weights:
        wanted.append(cfg.behavior_col)
    if cfg.weight_col:
        wanted.append(cfg.weight_col)
    if needs_time(cfg):
        wanted.append(cfg.time_col)
    return list(dict.fromkeys(wanted))


def _require_columns(table: pa.Table, cfg: I2IConfig, origin: str) -> None:
    missing = [c for c in _input_columns(cfg) if c not in table.column_names]
    if missing:
        swing = " (or `swing_keep: random`)" if cfg.method == "swing" and cfg.time_col in missing else ""
        raise DataError(
            f"{origin}: missing column(s) {missing}; the input has {table.column_names}"
            f"\n  fix: set user_col / item_col / behavior_col / weight_col / time_col to the input's names{swing}"
        )


def _column_array(values: Any, name: str) -> pa.ChunkedArray | pa.Array:
    try:
        return values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(
            f"input column {name!r} holds values of mixed types ({exc})\n  fix: make every value one type"
        ) from None


class _Cleaner:
    """Applies row filters, counting the rows each one drops (or raising when `strict` and a row is bad)."""

    def __init__(self, origin: str, strict: bool, counts: dict[str, int]) -> None:
        self.origin = origin
        self.strict = strict
        self.counts = counts

    def drop(self, table: pa.Table, keep: pa.ChunkedArray | pa.Array, reason: str, what: str) -> pa.Table:
        """Keep rows where `keep` is true; count the rest under `reason` (an error in strict mode)."""
        n_bad = table.num_rows - int(pc.sum(keep).as_py() or 0)
        self.counts[reason] = n_bad
        if n_bad == 0:
            return table
        row = table.slice(int(pc.index(keep, False).as_py()), 1).to_pylist()[0]
        example = {k: v for k, v in row.items() if not k.startswith("__")}
        message = f"{self.origin}: {n_bad:,} of {table.num_rows:,} rows {what}, e.g. row {row['__row']:,}: {example}"
        if self.strict:
            raise DataError(message + "\n  fix: clean those rows, or set `strict: false` to drop and count them")
        log.warning("%s; dropped", message)
        return table.filter(keep)

    def filter_behaviors(self, table: pa.Table, cfg: I2IConfig) -> pa.Table:
        """Keep the configured behaviors (an intended filter: counted, never an error)."""
        self.counts["filtered_by_behavior"] = 0
        if not cfg.behaviors:
            return table
        keep = pc.fill_null(pc.is_in(_as_text(table[cfg.behavior_col]), pa.array(cfg.behaviors)), False)
        kept = table.filter(keep)
        self.counts["filtered_by_behavior"] = table.num_rows - kept.num_rows
        return kept

    def weights(self, table: pa.Table, cfg: I2IConfig) -> pa.ChunkedArray:
        """Behavior weight times the weight column (1 where neither is set); behaviors are all mapped by now."""
        weight = pa.chunked_array([pa.array(np.ones(table.num_rows))])
        if cfg.behavior_weights:
            names = pa.array(list(cfg.behavior_weights))
            index = pc.index_in(_as_text(table[cfg.behavior_col]), value_set=names)
            mapped = pc.take(pa.array(list(cfg.behavior_weights.values()), pa.float64()), index)
            weight = pc.multiply(weight, mapped)
        if cfg.weight_col:
            column = table[cfg.weight_col]
            if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
                raise DataError(
                    f"{self.origin}: weight column {cfg.weight_col!r} is {column.type}, not numeric"
                    "\n  fix: cast it to a number, or point `weight_col` at another column"
                )
            weight = pc.multiply(weight, pc.cast(column, pa.float64()))
        return weight


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column if pa.types.is_string(column.type) else pc.cast(column, pa.string())


def _all_valid(table: pa.Table, names: list[str]) -> pa.ChunkedArray:
    keep = pc.is_valid(table[names[0]])
    for name in names[1:]:
        keep = pc.and_(keep, pc.is_valid(table[name]))
    return keep


def _positive(weight: pa.ChunkedArray) -> pa.ChunkedArray:
    """True where the weight is a finite number > 0 (NaN and null count as bad)."""
    return pc.fill_null(pc.and_(pc.greater(weight, 0.0), pc.is_finite(weight)), False)


def _check_ids(table: pa.Table, name: str, origin: str) -> pa.Table:
    """`table` with id column `name` decoded from a dictionary; ids must be integers or strings, not a mix."""
    column = table[name]
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
        table = table.set_column(table.column_names.index(name), name, column)
    kind = column.type
    if pa.types.is_union(kind):
        raise DataError(f"{origin}: id column {name!r} holds values of mixed types\n  fix: make every id one type")
    if not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(
            f"{origin}: id column {name!r} is {kind}; ids must be integers or strings"
            f"\n  fix: cast {name!r} to an integer or string type"
        )
    return table


def _encode(column: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """(sorted unique ids, int32 code per row): codes sort like the ids."""
    unique = pc.unique(column)
    ids = unique.take(pc.array_sort_indices(unique))
    return ids, pc.index_in(column, value_set=ids).combine_chunks()


def _dedupe(rows: pa.Table, how: str) -> pa.Table:
    """One row per (via, key): weight by `how`, time = latest; single-threaded so sums are reproducible."""
    aggregations: list[tuple[str, str]] = [("w", how)]
    if "t" in rows.column_names:
        aggregations.append(("t", "max"))
    grouped = rows.group_by(["via", "key"], use_threads=False).aggregate(aggregations)
    return grouped.rename_columns([_strip_suffix(name) for name in grouped.column_names])


def _strip_suffix(name: str) -> str:
    """'w_max' -> 'w' (pyarrow names aggregates `column_function`)."""
    return name.rsplit("_", 1)[0] if name not in ("via", "key") else name


def _seconds(column: pa.ChunkedArray, name: str, origin: str) -> pa.ChunkedArray:
    """Float unix seconds from a numeric (already seconds) or date/timestamp column."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return pc.cast(column, pa.float64())
    if pa.types.is_date(kind):
        column = pc.cast(column, pa.timestamp("s"))
        kind = column.type
    if pa.types.is_timestamp(kind):
        ticks = pc.cast(pc.cast(column, pa.int64()), pa.float64())
        return pc.divide(ticks, float(TICKS_PER_SECOND[kind.unit]))
    raise DataError(
        f"{origin}: time column {name!r} is {kind}; it must hold unix seconds or dates/timestamps"
        "\n  fix: convert it, or point `time_col` at another column"
    )


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())
