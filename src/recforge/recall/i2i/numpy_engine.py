"""The plan in process on numpy and scipy.sparse: the fastest engine for data that fits in memory.

Every pair sum is a sparse product of links (numpy_links.py): integer sums, exact in any order, like
the SQL engines' group-by; each key's top N is cut by numpy_topn.py. Terms, scores and rounding are the
plan's formulas run on arrays, the operations the SQL engines run, so the top-N lists are theirs to the
last bit.

Memory is bounded by blocks: links come in blocks, and pairs are scored and cut to the top N a chunk of
keys at a time. With one block of links (the usual case) the products themselves go a chunk of keys at a
time; time decay and several blocks first add up the whole pair matrix, as the SQL engines hold all pairs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from recforge.config.i2i import I2IConfig
from recforge.recall.i2i.formula import Derived, Formula, reads, round_score
from recforge.recall.i2i.numpy_links import Links, blocks, cooccurrence_links, floats, indptr, ints, swing_links, trim
from recforge.recall.i2i.numpy_topn import top_n
from recforge.recall.i2i.plan import ENGINES, EngineOutput, Plan, check_output, key_stats_columns

# the engine's memory budgets, passed down (tests shrink them here)
LINK_BUDGET = 1 << 22  # left-matrix entries per block of links (each costs ~100 bytes of temporaries)
PAIR_BUDGET = 1 << 20  # pairs scored at a time (a chunk of keys), so temporaries stay small
SELECT_BUDGET = 1 << 22  # padded scores per matrix of the top-N selection
TERM_SLICE = 1 << 16  # term rows evaluated at a time


@ENGINES.register("numpy")
def run_numpy(plan: Plan, cfg: I2IConfig) -> EngineOutput:
    """Pair sums as sparse products, then per chunk of keys: score, round and keep the top N per key."""
    n_keys = plan.keys.num_rows if plan.keys is not None else int(ints(plan.rows, "key").max()) + 1
    needed = reads(plan.score_of) & set(plan.terms)
    if plan.min_co_count > 1:
        needed.add("cnt")
    if plan.kernel == "swing":
        links = swing_links(plan, n_keys, LINK_BUDGET)
    else:
        links = cooccurrence_links(plan, needed, n_keys, LINK_BUDGET)
    empty = np.zeros(0, dtype=np.int64)
    pairs, kept = 0, [(empty, empty, np.zeros(0), empty)]
    for chunk in _pair_sum_chunks(links, plan.terms, needed, n_keys):
        keep = chunk.key != chunk.other
        if plan.min_co_count > 1:
            keep &= chunk.sums["cnt"] >= plan.min_co_count
        key, other = chunk.key[keep], chunk.other[keep]
        columns = Derived({name: v[keep] for name, v in chunk.sums.items()}, **_key_stats(plan.keys, key, other))
        with np.errstate(over="ignore"):  # scores past SCORE_GUARD overflow in the branch not taken
            score = np.asarray(round_score(plan.score_of(columns)), dtype=np.float64)
        rows, at, rank = top_n(key - chunk.first_key, other, score, chunk.n_keys, plan.top_n, SELECT_BUDGET)
        kept.append((rows + chunk.first_key, other[at], score[at], rank))
        pairs += len(key)
    key, other, score, rank = (np.concatenate(part) for part in zip(*kept, strict=True))
    table = pa.table({"key": key, "other": other, "score": score, "rank": rank})
    return EngineOutput(table=check_output(table), pairs=pairs // 2)


def _key_stats(keys: pa.Table | None, key: np.ndarray, other: np.ndarray) -> dict[str, Formula]:
    """n_a, p_a (of the key) and n_b, q_b (of the other), read from `keys` only if the score asks."""
    if keys is None:
        return {}

    def read(source: str, codes: np.ndarray) -> Formula:
        return lambda _: floats(keys, source)[codes]

    key_side, other_side = key_stats_columns("a"), key_stats_columns("b")
    stats = {target: read(source, key) for source, target in key_side.items() if source != "key"}
    return stats | {target: read(source, other) for source, target in other_side.items() if source != "key"}


# ---------------------------------------------------------------- links and pair sums


@dataclass(frozen=True)
class _Chunk:
    """Keys first_key .. first_key + n_keys - 1: every ordered pair (key, other) of them sharing a link,
    by key, with the needed sums."""

    first_key: int
    n_keys: int
    key: np.ndarray
    other: np.ndarray
    sums: dict[str, np.ndarray]


def _pair_sum_chunks(
    link_blocks: Iterator[Links], terms: Mapping[str, Formula | None], needed: set[str], n_keys: int
) -> Iterator[_Chunk]:
    """The pairs and their `needed` sums, a chunk of keys at a time.

    One block of links (the usual case) gives the chunks straight from products of a chunk of rows;
    several blocks (or a mirrored half) are added up into the whole pair matrix first.
    """
    computed = {name: term for name in sorted(needed) if (term := terms[name]) is not None}
    evaluated = ((links, *_term_values(links, computed)) for links in link_blocks)
    head = list(itertools.islice(evaluated, 2))
    if len(head) == 1 and not (head[0][2] or head[0][0].upper):
        links, values, _ = head[0]
        for lo, hi in blocks(links.row_sizes(), PAIR_BUDGET):
            seen, sums = _block_sums(links, values, False, needed, (lo, hi))
            yield _chunk(seen, _aligned(seen, sums), lo)
    elif head:
        yield from _whole_chunks(itertools.chain(head, evaluated), needed, n_keys)


def _whole_chunks(
    evaluated: Iterator[tuple[Links, dict[str, np.ndarray], bool]], needed: set[str], n_keys: int
) -> Iterator[_Chunk]:
    """The blocks' sums added up over the whole pair matrix, then cut into chunks of keys."""
    seen: sp.csr_matrix | None = None
    totals: dict[str, sp.csr_matrix] = {}
    for links, values, mirror in evaluated:
        block_seen, sums = _block_sums(links, values, mirror, needed)
        seen = block_seen if seen is None else trim((seen + block_seen).tocsr())
        for name, m in sums.items():
            totals[name] = m if name not in totals else trim((totals[name] + m).tocsr())
    if seen is None:
        return
    whole = _chunk(seen, _aligned(seen, {name: totals[name] for name in needed}), 0)
    bounds = indptr(np.bincount(whole.key, minlength=n_keys))
    for lo, hi in blocks(np.diff(bounds), PAIR_BUDGET):
        at = slice(bounds[lo], bounds[hi])
        sums = {name: values[at] for name, values in whole.sums.items()}
        yield _Chunk(lo, hi - lo, whole.key[at], whole.other[at], sums)


def _term_values(links: Links, computed: dict[str, Formula]) -> tuple[dict[str, np.ndarray], bool]:
    """The terms' values per term row, and whether a term changes with the sides swapped.

    Evaluated TERM_SLICE rows at a time, so the temporaries stay in cache.
    """
    values = {name: np.empty(links.n_terms, dtype=np.int64) for name in computed}
    mirror = False
    for lo in range(0, links.n_terms, TERM_SLICE):
        hi = min(lo + TERM_SLICE, links.n_terms)
        columns, swapped = links.inputs(lo, hi), links.inputs(lo, hi, swapped=True)
        for name, term in computed.items():
            values[name][lo:hi] = term(columns)
            if links.swap is not None and not mirror:
                mirror = not np.array_equal(values[name][lo:hi], term(swapped))
    return values, mirror


def _block_sums(
    links: Links, values: dict[str, np.ndarray], mirror: bool, needed: set[str], rows: tuple[int, int] | None = None
) -> tuple[sp.csr_matrix, dict[str, sp.csr_matrix]]:
    """(pairs seen, {name: sums}) of one block: the pairs come from a sum when every term is >= 1 (scipy
    drops zero sums), else from the link count."""
    sums = {name: links.product(v, mirror, rows) for name, v in values.items()}
    if "cnt" in needed or not sums or any(v.min(initial=1) < 1 for v in values.values()):
        sums["cnt"] = links.product(np.ones(links.n_terms, dtype=np.int64), mirror, rows)
    return (sums["cnt"] if "cnt" in sums else next(iter(sums.values()))), sums


def _chunk(seen: sp.csr_matrix, sums: dict[str, np.ndarray], first_key: int) -> _Chunk:
    n = seen.shape[0]
    key = np.repeat(np.arange(first_key, first_key + n, dtype=np.int64), np.diff(seen.indptr))
    return _Chunk(first_key, n, key, seen.indices.astype(np.int64), sums)


def _aligned(seen: sp.csr_matrix, sums: dict[str, sp.csr_matrix]) -> dict[str, np.ndarray]:
    """Each sum's values on the entries of `seen`, 0 where it has none (scipy may drop zero sums)."""

    def same(m: sp.csr_matrix) -> bool:
        return m is seen or (np.array_equal(m.indptr, seen.indptr) and np.array_equal(m.indices, seen.indices))

    if not all(same(m) for m in sums.values()):
        for m in (seen, *sums.values()):
            m.sort_indices()
    out = {}
    for name, m in sums.items():
        if same(m):
            out[name] = m.data
            continue
        n = seen.shape[1]
        at = np.repeat(np.arange(seen.shape[0], dtype=np.int64), np.diff(seen.indptr)) * n + seen.indices
        mine = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * n + m.indices
        out[name] = np.zeros(len(at), dtype=m.dtype)
        out[name][np.searchsorted(at, mine)] = m.data
    return out
