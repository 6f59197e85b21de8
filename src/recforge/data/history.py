"""Behavior histories: for every sample row, the same user's earlier behavior as a list column.

The history of a row holds the `item` values of the user's behavior rows (optionally filtered by a SQL
`where`) whose `time` is strictly earlier than the row's, oldest first, newest last, cut to the newest
`max_len`. Rows that share a timestamp never see each other, so a row never sees itself or its label.
Vectorized: one sort of the behavior log and one binary search per sample row.
"""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.config.schema import HistoryConfig
from recforge.data.duck import fetch_arrow, quote
from recforge.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def _filtered(behavior: pa.Table, cfg: HistoryConfig, origin: str) -> pa.Table:
    """(user, item, time) of the behavior rows that may enter a history."""
    for name in (cfg.user, cfg.item, cfg.time):
        if name not in behavior.column_names:
            raise ConfigError(
                "data.history",
                f"{origin}: the behavior log has no column {name!r}; it has {behavior.column_names}",
                fix="set data.history.user / item / time to behavior columns",
            )
    events = behavior.select([cfg.user, cfg.item, cfg.time])
    if cfg.where is None:
        return events
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        con.register("behavior", behavior)
        cols = ", ".join(quote(c) for c in (cfg.user, cfg.item, cfg.time))
        try:
            return fetch_arrow(con, f"SELECT {cols} FROM behavior WHERE coalesce(({cfg.where}), FALSE)")
        except duckdb.Error as exc:
            raise ConfigError(
                "data.history.where",
                f"DuckDB cannot evaluate {cfg.where!r}: {str(exc).splitlines()[0]}",
                fix=f"write a SQL boolean over the behavior columns {behavior.column_names}",
            ) from None
    finally:
        con.close()


def _times(column: pa.ChunkedArray | pa.Array, what: str, cfg: HistoryConfig) -> np.ndarray:
    if column.null_count:
        raise DataError(f"{what}: column {cfg.time!r} has {column.null_count:,} nulls; histories need a time per row")
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        column = pc.cast(column, pa.int64())
    return np.asarray(column.to_numpy(), dtype=np.float64 if pa.types.is_floating(column.type) else np.int64)


def history_column(samples: pa.Table, behavior: pa.Table, cfg: HistoryConfig, origin: str = "data") -> pa.ListArray:
    """One list per sample row: its user's earlier items (see the module docstring)."""
    events = _filtered(behavior, cfg, origin)
    for name in (cfg.user, cfg.time):
        if name not in samples.column_names:
            raise ConfigError("data.history", f"{origin}: the samples have no column {name!r}")
    users = pa.chunked_array(
        [*events[cfg.user].chunks, *pc.cast(samples[cfg.user], events.schema.field(cfg.user).type).chunks],
        type=events.schema.field(cfg.user).type,
    )
    codes = pc.dictionary_encode(users.combine_chunks()).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    n_events = events.num_rows
    times = np.concatenate(
        [_times(events[cfg.time], f"{origin} behavior", cfg), _times(samples[cfg.time], f"{origin} samples", cfg)]
    )
    _, time_rank = np.unique(times, return_inverse=True)  # small ints, so (user, time) packs into one int64
    span = int(time_rank.max(initial=0)) + 1
    keys = codes * span + time_rank
    order = np.argsort(keys[:n_events], kind="stable")
    event_keys = keys[:n_events][order]
    sample_keys = keys[n_events:]
    end = np.searchsorted(event_keys, sample_keys, side="left")  # events strictly before the row's time
    user_start = np.searchsorted(event_keys, codes[n_events:] * span, side="left")
    count = np.minimum(end - user_start, cfg.max_len)
    offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], count)
    positions = np.repeat(end - count, count) + within
    items = events[cfg.item].combine_chunks().take(pa.array(order[positions]))
    log.info(
        "%s: history %r for %s rows from %s behavior rows (mean length %.1f, cut to %d)",
        origin,
        cfg.column,
        f"{samples.num_rows:,}",
        f"{n_events:,}",
        float(count.mean()) if len(count) else 0.0,
        cfg.max_len,
    )
    return pa.LargeListArray.from_arrays(pa.array(offsets), items)


def add_history(samples: pa.Table, behavior: pa.Table, cfg: HistoryConfig, origin: str = "data") -> pa.Table:
    """`samples` with the history list column appended (replacing a column of that name)."""
    column = history_column(samples, behavior, cfg, origin)
    if cfg.column in samples.column_names:
        log.warning("%s: data.history replaces the existing column %r", origin, cfg.column)
        samples = samples.drop_columns([cfg.column])
    return samples.append_column(cfg.column, column)
