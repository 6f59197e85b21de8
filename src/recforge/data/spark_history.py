"""Behavior histories on Spark, with the meaning of `history.py` (which DuckDB runs in numpy).

A row's history holds the `item` values of its user's behavior rows (filtered by `where`) with strictly
earlier `time`, oldest first, the newest `max_len` kept; events with equal times keep log order (ROW).
Scales without a per-user cross join: each event gets its position in its user's log, each row the
number of events before it (a running count over rows and events sorted together), and the join reads
only the position buckets of width `max_len` that a row's window touches (at most two).
"""

from __future__ import annotations

import logging

from recforge.config.schema import HistoryConfig
from recforge.data.sample_plan import ROW, check_expression
from recforge.data.spark_sql import SparkSql
from recforge.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def _require(engine: SparkSql, relation: str, cfg: HistoryConfig, what: str, origin: str) -> None:
    columns = engine.columns(f"SELECT * FROM {relation}")
    for name in (cfg.user, cfg.item, cfg.time) if what == "behavior log" else (cfg.user, cfg.time):
        if name not in columns:
            names = [c for c in columns if not c.startswith("__")]
            raise ConfigError(
                "data.history",
                f"{origin}: the {what} has no column {name!r}; it has {names}",
                fix="set data.history.user / item / time to behavior columns",
            )
    nulls = engine.rows(f"SELECT count(*) FROM {relation} WHERE {engine.dialect.quote(cfg.time)} IS NULL")[0][0]
    if nulls:
        raise DataError(f"{origin} {what}: column {cfg.time!r} has {nulls:,} nulls; histories need a time per row")


def add_history(engine: SparkSql, samples: str, events: str, cfg: HistoryConfig, origin: str) -> str:
    """Create the relation `with_history`: `samples` plus the list column `cfg.column`; returns its name.

    `events` is a relation of behavior log rows (with ROW); `samples` has ROW too.
    """
    q = engine.dialect.quote
    _require(engine, events, cfg, "behavior log", origin)
    _require(engine, samples, cfg, "samples", origin)
    where = "TRUE"
    if cfg.where is not None:
        check_expression(engine, cfg.where, events, "data.history.where")
        where = f"coalesce(({cfg.where}), FALSE)"
    user, item, time, n = q(cfg.user), q(cfg.item), q(cfg.time), cfg.max_len
    engine.create(
        "history_events",
        f"SELECT {user} AS u, {item} AS v, {time} AS t, {ROW} AS r, "
        f"row_number() OVER (PARTITION BY {user} ORDER BY {time}, {ROW}) - 1 AS pos FROM {events} WHERE {where}",
        keep=True,
    )
    engine.create(
        "history_counted",
        "SELECT r, u, cnt FROM (SELECT r, u, is_event, sum(is_event) OVER (PARTITION BY u ORDER BY t, is_event, r "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cnt FROM ("
        f"SELECT {ROW} AS r, {user} AS u, {time} AS t, 0 AS is_event FROM {samples} "
        "UNION ALL SELECT r, u, t, 1 AS is_event FROM history_events)) WHERE is_event = 0",
    )
    engine.create(
        "history_lists",
        "SELECT s.r, transform(array_sort(collect_list(CASE WHEN e.pos IS NOT NULL THEN named_struct('p', e.pos, "
        "'v', e.v) END)), x -> x.v) AS h FROM (SELECT r, u, cnt, explode(array_distinct(array("
        f"floor((cnt - {n}) / {n}), floor((cnt - 1) / {n})))) AS b FROM history_counted) s "
        f"LEFT JOIN history_events e ON e.u = s.u AND floor(e.pos / {n}) = s.b AND e.pos >= s.cnt - {n} "
        "AND e.pos < s.cnt GROUP BY s.r",
    )
    columns = [c for c in engine.columns(f"SELECT * FROM {samples}") if c != cfg.column]
    if len(columns) < len(engine.columns(f"SELECT * FROM {samples}")):
        log.warning("%s: data.history replaces the existing column %r", origin, cfg.column)
    keep = ", ".join(f"s.{q(c)}" for c in columns)
    engine.create(
        "with_history", f"SELECT {keep}, h.h AS {q(cfg.column)} FROM {samples} s JOIN history_lists h ON s.{ROW} = h.r"
    )
    return "with_history"
