"""What every engine computes, written once: per-row weights, per-key norms and each formula.

Formulas are `recforge.recall.i2i.formula` functions: DuckDB and Spark run their SQL, the numpy engine
runs them on arrays. Engines only wire joins, group-bys and the top-N around them, so all evaluate the
same expressions on the same inputs. Two rules make their results bit-identical:

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
from recforge.recall.i2i.formula import Derived, Formula, fabs, fixed, round_score, sqrt, to_double, to_sql, unfixed
from recforge.recall.i2i.prepare import Interactions
from recforge.registry import Registry

SUM_BITS = 61  # every fixed-point sum stays below 2^61, leaving int64 room for per-term rounding
MIN_BITS = 24  # coarser than 2^-24 per term would show in the scores

ROUND_SCORE = to_sql(lambda c: round_score(c["s"]))


@dataclass(frozen=True)
class Plan:
    """One job for an engine; formulas name the columns the engines must provide.

    cooccurrence: `rows` self-joined on `via` gives pair rows `key_a < key_b, w_a, w_b, vw[, t_a, t_b]`;
    each sum in `terms` adds its term over the pair rows of a (key_a, key_b) (None: counts them).
    swing: `rows` self-joined on `key` gives user pairs `u < v` with `vw_u, vw_v` and their overlap `k`;
    `user_pair` of those is column `q` (kept where k >= 2), and the terms add `q` over the user pairs two
    keys share. Both keep pairs with `cnt >= min_co_count`, mirror them to (key, other), read `keys` as
    `n_a, p_a` (key) and `n_b, q_b` (other), compute `score` as column `s`, round it with ROUND_SCORE
    and keep the `top_n` best per key (ties by `other`). `pair_sums`, `user_pair_value` and `score` hold
    the SQL of the formulas.
    """

    kernel: Literal["cooccurrence", "swing"]
    rows: pa.Table  # via, key (int32 codes), w, vw (via weight)[, t]
    keys: pa.Table | None  # key, n, p, q; None when `score` reads no key statistics
    terms: dict[str, Formula | None]
    user_pair: Formula | None
    score_of: Formula
    min_co_count: int
    top_n: int
    counts: dict[str, int]  # for the job's stats: fixed-point bits, rows over swing's cap

    @property
    def pair_sums(self) -> dict[str, str]:
        """SQL aggregates of the terms, by name."""
        return {name: "count(1)" if term is None else f"sum({to_sql(term)})" for name, term in self.terms.items()}

    @property
    def user_pair_value(self) -> str:
        return to_sql(self.user_pair) if self.user_pair is not None else ""

    @property
    def score(self) -> str:
        return to_sql(self.score_of)


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


# `co`: the (weighted, decayed, penalized) co-occurrence; `raw`: sum of w_a * w_b (Tanimoto's overlap)
SIMILARITIES: dict[str, Formula] = {
    "cosine": lambda c: c["co"] / sqrt(c["n_a"] * c["n_b"]),
    "asymmetric_cosine": lambda c: c["co"] / (c["p_a"] * c["q_b"]),
    "jaccard": lambda c: c["co"] / (c["n_a"] + c["n_b"] - c["raw"]),
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
    terms: dict[str, Formula | None] = {"cnt": None}
    if not cfg.penalty and cfg.time_decay is None and bool((w == 1.0).all()):
        bits = 0  # every contribution is 1: the co-count is the sum, no fixed point needed (and 30% faster)
        co = raw = _as_double("cnt", bits)
    else:
        term_bound = float(w.max()) ** 2 * max(float(via_weight.max()), 1.0)
        bits = fixed_bits(term_bound * float(np.bincount(key_codes).max()))
        terms["co_q"] = _contribution(cfg, bits)
        co, raw = _as_double("co_q", bits), _as_double("raw_q", bits)
        if cfg.similarity == "jaccard":
            terms["raw_q"] = lambda c: fixed(c["w_a"] * c["w_b"], bits)
    similarity = SIMILARITIES[cfg.similarity]
    return Plan(
        kernel="cooccurrence",
        rows=rows,
        keys=keys,
        terms=terms,
        user_pair=None,
        score_of=lambda c: similarity(Derived(c, co=co, raw=raw)),
        min_co_count=cfg.min_co_count,
        top_n=cfg.top_n,
        counts={"fixed_point_bits": bits},
    )


def _as_double(name: str, bits: int) -> Formula:
    """Pair sum `name` as a double: a count as it is, a fixed-point sum scaled back."""
    if bits == 0:
        return lambda c: to_double(c[name])
    return lambda c: unfixed(c[name], bits)


def _contribution(cfg: I2IConfig, bits: int) -> Formula:
    """What a pair row adds to its pair's co-occurrence, in fixed point: w_a w_b vw [* time decay]."""
    if cfg.time_decay is None:
        return lambda c: fixed(c["w_a"] * c["w_b"] * c["vw"], bits)
    tau = cfg.time_decay.tau_seconds
    return lambda c: fixed(c["w_a"] * c["w_b"] * c["vw"] * (tau / (tau + fabs(c["t_a"] - c["t_b"]))), bits)


def _swing(data: Interactions, cfg: I2IConfig) -> Plan:
    via_degree = _degrees(data.rows["via"].combine_chunks(), len(data.via_ids))  # before the cap: |I_u|
    capped = cap_per_key(data.rows, cfg)
    user_weight = 1.0 / np.sqrt(via_degree) if cfg.swing_user_weight else np.ones(len(via_degree))
    rows = pa.table({"via": capped["via"], "key": capped["key"], "vw": user_weight[capped["via"].to_numpy()]})
    capped_degree = int(np.bincount(rows["key"].to_numpy()).max())
    term_bound = float(user_weight.max()) ** 2 / (cfg.swing_alpha + 2.0)  # two shared items at least
    bits = fixed_bits(term_bound * max(capped_degree * (capped_degree - 1) / 2, 1.0))
    alpha = cfg.swing_alpha
    return Plan(
        kernel="swing",
        rows=rows,
        keys=None,
        terms={"co_q": lambda c: c["q"], "cnt": None},
        user_pair=lambda c: fixed(c["vw_u"] * c["vw_v"] / (alpha + to_double(c["k"])), bits),
        score_of=lambda c: unfixed(c["co_q"], bits),
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
