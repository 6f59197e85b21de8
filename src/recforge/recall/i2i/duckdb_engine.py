"""The default engine: the plan as SQL in embedded DuckDB over the Arrow rows, all joins inside DuckDB."""

from __future__ import annotations

from typing import Literal

import duckdb

from recforge.config.i2i import I2IConfig
from recforge.data.duck import fetch_arrow
from recforge.recall.i2i.plan import ENGINES, ROUND_SCORE, EngineOutput, Plan, check_output, key_stats_columns


@ENGINES.register("duckdb")
def run_duckdb(plan: Plan, cfg: I2IConfig) -> EngineOutput:
    """Pairs into a temp table (counted), then mirror, score and keep the top N per key."""
    con = connect()
    try:
        con.register("rows_in", plan.rows)
        if plan.keys is not None:
            con.register("keys", plan.keys)
        pairs_sql = _swing_pairs(plan) if plan.kernel == "swing" else _cooccurrence_pairs(plan)
        con.execute(f"CREATE TEMP TABLE pairs AS {pairs_sql}")
        n_pairs = int(con.execute("SELECT count(*) FROM pairs").fetchall()[0][0])
        table = fetch_arrow(con, _top_n(plan))
    finally:
        con.close()
    return EngineOutput(table=check_output(table), pairs=n_pairs)


def _sums(plan: Plan) -> str:
    return ", ".join(f"{expr} AS {name}" for name, expr in plan.pair_sums.items())


def _cooccurrence_pairs(plan: Plan) -> str:
    time = ", a.t AS t_a, b.t AS t_b" if "t" in plan.rows.column_names else ""
    return f"""
        SELECT key_a, key_b, {_sums(plan)}
        FROM (SELECT a.key AS key_a, b.key AS key_b, a.w AS w_a, b.w AS w_b, a.vw AS vw{time}
              FROM rows_in a JOIN rows_in b ON a.via = b.via AND a.key < b.key)
        GROUP BY key_a, key_b
        HAVING count(1) >= {plan.min_co_count}"""


def _swing_pairs(plan: Plan) -> str:
    return f"""
        WITH t AS (SELECT a.key, a.via AS u, b.via AS v, a.vw AS vw_u, b.vw AS vw_v
                   FROM rows_in a JOIN rows_in b ON a.key = b.key AND a.via < b.via),
        overlap AS (SELECT u, v, {plan.user_pair_value} AS q
                    FROM (SELECT u, v, count(1) AS k, min(vw_u) AS vw_u, min(vw_v) AS vw_v FROM t GROUP BY u, v)
                    WHERE k >= 2),
        tq AS (SELECT t.key, t.u, t.v, overlap.q FROM t JOIN overlap ON t.u = overlap.u AND t.v = overlap.v)
        SELECT key_a, key_b, {_sums(plan)}
        FROM (SELECT a.key AS key_a, b.key AS key_b, a.q AS q
              FROM tq a JOIN tq b ON a.u = b.u AND a.v = b.v AND a.key < b.key)
        GROUP BY key_a, key_b
        HAVING count(1) >= {plan.min_co_count}"""


def _key_join(side: Literal["a", "b"]) -> str:
    renames = key_stats_columns(side)
    columns = ", ".join(f"{source} AS {target}" for source, target in renames.items())
    return f" JOIN (SELECT {columns} FROM keys) k{side} USING ({renames['key']})"


def _top_n(plan: Plan) -> str:
    values = ", ".join(plan.pair_sums)
    joins = _key_join("a") + _key_join("b") if plan.keys is not None else ""
    return f"""
        WITH directed AS (SELECT key_a AS key, key_b AS other, {values} FROM pairs
                          UNION ALL SELECT key_b AS key, key_a AS other, {values} FROM pairs),
        scored AS (SELECT key, other, {plan.score} AS s FROM directed{joins}),
        rounded AS (SELECT key, other, {ROUND_SCORE} AS score FROM scored)
        SELECT key, other, score, row_number() OVER (PARTITION BY key ORDER BY score DESC, other) AS rank
        FROM rounded
        QUALIFY rank <= {plan.top_n}"""


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory connection that reads no files and draws no progress bar (library code never prints)."""
    con = duckdb.connect(config={"enable_external_access": False})
    con.execute("SET enable_progress_bar = false").fetchall()
    return con
