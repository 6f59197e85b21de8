"""What every engine computes, written once: per-row weights, per-key norms and the SQL of each formula.

Engines only wire joins, group-bys and the top-N window around these snippets, so DuckDB and Spark
evaluate the same expressions on the same inputs. Two rules make their results bit-identical:

- Sums are exact. Each contribution is rounded to a fixed-point integer (a multiple of 2^-bits, with
  `bits` chosen from the data so no sum can overflow int64) and integers add up the same in any order.
- Everything else is `+ - * / sqrt` on doubles, which IEEE rounds the same way on every engine; logs and
  powers are computed here, once, in numpy. Scores are then rounded to 12 decimal places, so scores
  equal in exact arithmetic tie, and ties rank by the neighbor's id.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.config.i2i import I2IConfig
from recforge.errors import DataError
from recforge.recall.i2i.prepare import Interactions
from recforge.registry import Registry

SUM_BITS = 61  # every fixed-point sum stays below 2^61, leaving int64 room for per-term rounding
MIN_BITS = 24  # coarser than 2^-24 per term would show in the scores
SCORE_DECIMALS = 12
SCORE_GUARD = 1e6  # s * 1e12 must fit an int64 (Spark's floor returns one); larger scores stay unrounded


def lit(value: float) -> str:
    """A double literal both DuckDB and Spark read as DOUBLE with exactly this value."""
    return format(value, ".17e")


def fixed(expr: str, bits: int) -> str:
    """SQL rounding `expr` to the nearest multiple of 2^-bits, as an integer (scaling by 2^bits is exact)."""
    return f"CAST(floor(({expr}) * {lit(2.0**bits)} + 0.5) AS BIGINT)"


def unfixed(column: str, bits: int) -> str:
    """SQL turning a fixed-point sum back into a double (exact division by a power of two)."""
    return f"(CAST({column} AS DOUBLE) / {lit(2.0**bits)})"


_SCALE = lit(10.0**SCORE_DECIMALS)
ROUND_SCORE = f"CASE WHEN s < {lit(SCORE_GUARD)} THEN floor(s * {_SCALE} + 0.5) / {_SCALE} ELSE s END"


@dataclass(frozen=True)
class Plan:
    """One job for an engine; SQL snippets name the columns the engines must provide.

    cooccurrence: `rows` self-joined on `via` gives pair rows `key_a < key_b, w_a, w_b, vw[, t_a, t_b]`,
    summed per (key_a, key_b) by `pair_sums`. swing: `rows` self-joined on `key` gives user pairs
    `u < v` with `vw_u, vw_v` and their overlap `k`; `user_pair_value` is column `q`, and `pair_sums`
    add `q` over the user pairs two keys share. Both keep pairs with `cnt >= min_co_count`, mirror them
    to (key, other), join `keys` as `n_a, p_a` (key) and `n_b, q_b` (other), compute `score` as column
    `s`, round it with ROUND_SCORE and keep the `top_n` best per key (ties by `other`).
    """

    kernel: Literal["cooccurrence", "swing"]
    rows: pa.Table  # via, key (int32 codes), w, vw (via weight)[, t]
    keys: pa.Table | None  # key, n, p, q; None when `score` reads no key statistics
    pair_sums: dict[str, str]
    user_pair_value: str
    score: str
    min_co_count: int
    top_n: int
    counts: dict[str, int]  # for the job's stats: fixed-point bits, rows over swing's cap


@dataclass(frozen=True)
class EngineOutput:
    """Top-N rows `key, other (int32 codes), score (float64), rank (int32)` and the number of scored pairs."""

    table: pa.Table
    pairs: int


EngineFn = Callable[[Plan, I2IConfig], EngineOutput]
ENGINES: Registry[EngineFn] = Registry("i2i engine")


def make_plan(data: Interactions, cfg: I2IConfig) -> Plan:
    """The plan for `cfg.method` over cleaned `data`."""
    return _swing(data, cfg) if cfg.method == "swing" else _cooccurrence(data, cfg)


def fixed_bits(bound: float) -> int:
    """Fraction bits such that sums up to `bound` stay below 2^SUM_BITS."""
    _, exponent = math.frexp(bound)  # bound < 2^exponent
    bits = SUM_BITS - exponent
    if bits < MIN_BITS:
        raise DataError(
            f"i2i: weights are too large for exact sums (a pair's score could reach {bound:.3g})"
            "\n  fix: scale the weights down, or lower `max_users_per_item`"
        )
    return bits


def _degrees(codes: pa.Array, size: int) -> np.ndarray:
    return np.bincount(np.asarray(codes.to_numpy(zero_copy_only=False)), minlength=size)


def _column(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table[name].to_numpy(), dtype=np.float64)


SIMILARITIES = {
    "cosine": "{co} / sqrt(n_a * n_b)",
    "asymmetric_cosine": "{co} / (p_a * q_b)",
    "jaccard": "{co} / (n_a + n_b - {raw})",
}


def _cooccurrence(data: Interactions, cfg: I2IConfig) -> Plan:
    rows = data.rows
    w = _column(rows, "w")
    via_degree = _degrees(rows["via"].combine_chunks(), len(data.via_ids))
    via_weight = 1.0 / np.log1p(via_degree) if cfg.penalty else np.ones(len(via_degree))
    rows = rows.append_column("vw", pa.array(via_weight[rows["via"].to_numpy()]))
    key_codes = np.asarray(rows["key"].to_numpy(), dtype=np.int64)
    n = np.bincount(key_codes, weights=w * w, minlength=len(data.key_ids))
    keys = pa.table(
        {"key": pa.array(np.arange(len(n), dtype=np.int32)), "n": n, "p": n**cfg.alpha, "q": n ** (1 - cfg.alpha)}
    )
    sums = {"cnt": "count(1)"}
    if not cfg.penalty and cfg.time_decay is None and bool((w == 1.0).all()):
        bits = 0  # every contribution is 1: the co-count is the sum, no fixed point needed (and 30% faster)
        co = raw = "CAST(cnt AS DOUBLE)"
    else:
        term_bound = float(w.max()) ** 2 * max(float(via_weight.max()), 1.0)
        bits = fixed_bits(term_bound * float(np.bincount(key_codes).max()))
        contribution = "w_a * w_b * vw"
        if cfg.time_decay is not None:
            tau = lit(cfg.time_decay.tau_seconds)
            contribution += f" * ({tau} / ({tau} + abs(t_a - t_b)))"
        sums["co_q"] = f"sum({fixed(contribution, bits)})"
        co, raw = unfixed("co_q", bits), unfixed("raw_q", bits)
        if cfg.similarity == "jaccard":
            sums["raw_q"] = f"sum({fixed('w_a * w_b', bits)})"
    return Plan(
        kernel="cooccurrence",
        rows=rows,
        keys=keys,
        pair_sums=sums,
        user_pair_value="",
        score=SIMILARITIES[cfg.similarity].format(co=co, raw=raw),
        min_co_count=cfg.min_co_count,
        top_n=cfg.top_n,
        counts={"fixed_point_bits": bits},
    )


def _swing(data: Interactions, cfg: I2IConfig) -> Plan:
    via_degree = _degrees(data.rows["via"].combine_chunks(), len(data.via_ids))  # before the cap: |I_u|
    capped = cap_per_key(data.rows, cfg)
    user_weight = 1.0 / np.sqrt(via_degree) if cfg.swing_user_weight else np.ones(len(via_degree))
    rows = pa.table({"via": capped["via"], "key": capped["key"], "vw": user_weight[capped["via"].to_numpy()]})
    capped_degree = int(np.bincount(rows["key"].to_numpy()).max())
    term_bound = float(user_weight.max()) ** 2 / (cfg.swing_alpha + 2.0)  # two shared items at least
    bits = fixed_bits(term_bound * max(capped_degree * (capped_degree - 1) / 2, 1.0))
    value = f"vw_u * vw_v / ({lit(cfg.swing_alpha)} + CAST(k AS DOUBLE))"
    return Plan(
        kernel="swing",
        rows=rows,
        keys=None,
        pair_sums={"co_q": "sum(q)", "cnt": "count(1)"},
        user_pair_value=fixed(value, bits),
        score=unfixed("co_q", bits),
        min_co_count=1,
        top_n=cfg.top_n,
        counts={"fixed_point_bits": bits, "capped_rows": data.rows.num_rows - capped.num_rows},
    )


def cap_per_key(rows: pa.Table, cfg: I2IConfig) -> pa.Table:
    """At most `max_users_per_item` rows per key: the most recent (ties by user id) or a seeded sample."""
    keys = np.asarray(rows["key"].to_numpy(), dtype=np.int64)
    vias = np.asarray(rows["via"].to_numpy(), dtype=np.int64)
    if cfg.swing_keep == "recent":
        order = np.lexsort((vias, -_column(rows, "t"), keys))
    else:
        shuffled = np.random.default_rng(cfg.seed).permutation(int(vias.max()) + 1)
        order = np.lexsort((shuffled[vias], keys))
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep = np.sort(order[rank < cfg.max_users_per_item])
    return rows.take(pa.array(keep)) if len(keep) < rows.num_rows else rows


def key_stats_columns(side: Literal["a", "b"]) -> dict[str, str]:
    """Renames of `Plan.keys` columns for the key (a) or the neighbor (b) side of a scored pair."""
    if side == "a":
        return {"key": "key", "n": "n_a", "p": "p_a"}
    return {"key": "other", "n": "n_b", "q": "q_b"}


def check_output(table: pa.Table) -> pa.Table:
    """Engine rows in the agreed types (engines may widen integer codes)."""
    return pa.table(
        {
            "key": pc.cast(table["key"], pa.int32()),
            "other": pc.cast(table["other"], pa.int32()),
            "score": pc.cast(table["score"], pa.float64()),
            "rank": pc.cast(table["rank"], pa.int32()),
        }
    )
