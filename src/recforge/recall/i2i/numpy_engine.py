"""The plan in process on numpy and scipy.sparse: the fastest engine for data that fits in memory.

Every pair sum is a sparse product. The rows of two matrices L and R are links, what two keys share:
a user (itemcf; a user and one weight of theirs when weights vary), one pair of a user's rows (time decay)
or a pair of users (swing). L[link, a] is the integer term the link adds to the pairs (a, b) and
R[link, b] = 1, so (L^T R)[a, b] adds up the terms over the links a and b share: integer sums, exact in
any order, like the SQL engines' group-by. Terms, scores and rounding are the plan's formulas run on
arrays, the operations the SQL engines run, so the top-N lists are theirs to the last bit.

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
from recforge.recall.i2i.formula import Derived, Formula, Value, reads, round_score
from recforge.recall.i2i.plan import ENGINES, EngineOutput, Plan, check_output, key_stats_columns

LINK_BUDGET = 1 << 22  # left-matrix entries per block of links (each costs ~100 bytes of temporaries)
PAIR_BUDGET = 1 << 20  # pairs scored at a time (a chunk of keys), so temporaries stay small
SELECT_BUDGET = 1 << 22  # padded scores per matrix of the top-N selection
TERM_SLICE = 1 << 16  # term rows evaluated at a time


@ENGINES.register("numpy")
def run_numpy(plan: Plan, cfg: I2IConfig) -> EngineOutput:
    """Pair sums as sparse products, then per chunk of keys: score, round and keep the top N per key."""
    n_keys = plan.keys.num_rows if plan.keys is not None else int(_ints(plan.rows, "key").max()) + 1
    needed = reads(plan.score_of) & set(plan.terms)
    if plan.min_co_count > 1:
        needed.add("cnt")
    links = _swing_links(plan, n_keys) if plan.kernel == "swing" else _cooccurrence_links(plan, needed, n_keys)
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
        rows, at, rank = _top_n(key - chunk.first_key, other, score, chunk.n_keys, plan.top_n)
        kept.append((rows + chunk.first_key, other[at], score[at], rank))
        pairs += len(key)
    key, other, score, rank = (np.concatenate(part) for part in zip(*kept, strict=True))
    table = pa.table({"key": key, "other": other, "score": score, "rank": rank})
    return EngineOutput(table=check_output(table), pairs=pairs // 2)


def _ints(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table[name].to_numpy(), dtype=np.int64)


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table[name].to_numpy(), dtype=np.float64)


def _key_stats(keys: pa.Table | None, key: np.ndarray, other: np.ndarray) -> dict[str, Formula]:
    """n_a, p_a (of the key) and n_b, q_b (of the other), read from `keys` only if the score asks."""
    if keys is None:
        return {}

    def read(source: str, codes: np.ndarray) -> Formula:
        return lambda _: _floats(keys, source)[codes]

    key_side, other_side = key_stats_columns("a"), key_stats_columns("b")
    stats = {target: read(source, key) for source, target in key_side.items() if source != "key"}
    return stats | {target: read(source, other) for source, target in other_side.items() if source != "key"}


# ---------------------------------------------------------------- links and pair sums


@dataclass(frozen=True)
class _Links:
    """A block of links: L^T (keys x links; data: the term row of each entry) and R (links x keys, ones).

    `sources` give the terms' inputs: per name an array, read at a per-term-row index (or as it is).
    `upper`: every link joins a key a to a key b > a, so L^T R holds the a < b half; it is mirrored.
    `swap` (links joining both ways): input names exchanged to read the inputs with sides a and b
    swapped. Where a term changes with them, (b, a) would not get the term of (a, b); then the a < b
    half is mirrored instead.
    """

    left_t: sp.csr_matrix
    right: sp.csr_matrix
    sources: Mapping[str, tuple[np.ndarray, np.ndarray | None]]
    n_terms: int
    upper: bool = False
    swap: dict[str, str] | None = None

    def inputs(self, lo: int, hi: int, swapped: bool = False) -> Mapping[str, Value]:
        """The terms' inputs for term rows lo .. hi - 1, each read when a term asks for it."""
        rename = self.swap if swapped and self.swap else {}

        def read(name: str) -> Formula:
            values, at = self.sources[rename.get(name, name)]
            return lambda _: values[lo:hi] if at is None else values[at[lo:hi]]

        return Derived({}, **{name: read(name) for name in self.sources})

    def product(self, values: np.ndarray, mirror: bool, rows: tuple[int, int] | None = None) -> sp.csr_matrix:
        """Rows `rows` (all: None) of L^T R, L holding `values` (one per term row): per (a, b) the sum over
        the links a and b share."""
        lo, hi = rows or (0, self.left_t.shape[0])
        start, stop = self.left_t.indptr[lo], self.left_t.indptr[hi]
        data = values[self.left_t.data[start:stop]]
        indptr = self.left_t.indptr[lo : hi + 1] - start
        left_t = sp.csr_matrix((data, self.left_t.indices[start:stop], indptr), shape=(hi - lo, self.right.shape[0]))
        out = _trim(left_t @ self.right)
        if mirror:
            out = sp.triu(out, k=1, format="csr")
        return _trim((out + out.T).tocsr()) if mirror or self.upper else out

    def row_sizes(self) -> np.ndarray:
        """Per key, at most how many pairs it has (the links' sizes added up, capped by the key count)."""
        through = np.r_[0, np.cumsum(np.diff(self.right.indptr)[self.left_t.indices])]
        return np.minimum(through[self.left_t.indptr[1:]] - through[self.left_t.indptr[:-1]], self.right.shape[1])


def _links(
    n_links: int,
    n_keys: int,
    left: tuple[np.ndarray | None, np.ndarray, np.ndarray],
    right: tuple[np.ndarray | None, np.ndarray],
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """L^T and R from per-link entry counts (None: one each), keys (and term rows, for L), by link."""
    left_counts, left_keys, term_rows = left
    right_counts, right_keys = right
    left_matrix = sp.csr_matrix((term_rows, left_keys, _indptr(left_counts, n_links)), shape=(n_links, n_keys))
    ones = np.ones(len(right_keys), dtype=np.int64)
    right_matrix = sp.csr_matrix((ones, right_keys, _indptr(right_counts, n_links)), shape=(n_links, n_keys))
    return left_matrix.T.tocsr(), right_matrix


def _indptr(counts: np.ndarray | None, n: int | None = None) -> np.ndarray:
    """Row starts of rows with `counts` entries (None: `n` rows of one entry)."""
    if counts is None:
        return np.arange((n or 0) + 1, dtype=np.int64)
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _trim(m: sp.csr_matrix) -> sp.csr_matrix:
    """`m` without the unused tail scipy's product leaves where it dropped zero sums."""
    nnz = int(m.indptr[-1])
    if len(m.indices) == nnz:
        return m
    return sp.csr_matrix((m.data[:nnz], m.indices[:nnz], m.indptr), shape=m.shape)


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
    blocks: Iterator[_Links], terms: Mapping[str, Formula | None], needed: set[str], n_keys: int
) -> Iterator[_Chunk]:
    """The pairs and their `needed` sums, a chunk of keys at a time.

    One block of links (the usual case) gives the chunks straight from products of a chunk of rows;
    several blocks (or a mirrored half) are added up into the whole pair matrix first.
    """
    computed = {name: term for name in sorted(needed) if (term := terms[name]) is not None}
    evaluated = ((links, *_term_values(links, computed)) for links in blocks)
    head = list(itertools.islice(evaluated, 2))
    if len(head) == 1 and not (head[0][2] or head[0][0].upper):
        links, values, _ = head[0]
        for lo, hi in _blocks(links.row_sizes(), PAIR_BUDGET):
            seen, sums = _block_sums(links, values, False, needed, (lo, hi))
            yield _chunk(seen, _aligned(seen, sums), lo)
    elif head:
        yield from _whole_chunks(itertools.chain(head, evaluated), needed, n_keys)


def _whole_chunks(
    evaluated: Iterator[tuple[_Links, dict[str, np.ndarray], bool]], needed: set[str], n_keys: int
) -> Iterator[_Chunk]:
    """The blocks' sums added up over the whole pair matrix, then cut into chunks of keys."""
    seen: sp.csr_matrix | None = None
    totals: dict[str, sp.csr_matrix] = {}
    for links, values, mirror in evaluated:
        block_seen, sums = _block_sums(links, values, mirror, needed)
        seen = block_seen if seen is None else _trim((seen + block_seen).tocsr())
        for name, m in sums.items():
            totals[name] = m if name not in totals else _trim((totals[name] + m).tocsr())
    if seen is None:
        return
    whole = _chunk(seen, _aligned(seen, {name: totals[name] for name in needed}), 0)
    bounds = _indptr(np.bincount(whole.key, minlength=n_keys))
    for lo, hi in _blocks(np.diff(bounds), PAIR_BUDGET):
        at = slice(bounds[lo], bounds[hi])
        sums = {name: values[at] for name, values in whole.sums.items()}
        yield _Chunk(lo, hi - lo, whole.key[at], whole.other[at], sums)


def _term_values(links: _Links, computed: dict[str, Formula]) -> tuple[dict[str, np.ndarray], bool]:
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
    links: _Links, values: dict[str, np.ndarray], mirror: bool, needed: set[str], rows: tuple[int, int] | None = None
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


def _blocks(costs: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive ranges of items whose costs add up to at most `budget` (or one item)."""
    ends = np.cumsum(costs)
    lo = 0
    while lo < len(costs):
        done = int(ends[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(ends, done + budget, side="right")), lo + 1)
        yield lo, hi
        lo = hi


def _run_ends(groups: np.ndarray) -> np.ndarray:
    """For each position of sorted `groups`, the end of the run of equal values it sits in."""
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(groups) else np.zeros(0, np.int64)
    lengths = np.diff(np.r_[starts, len(groups)])
    return np.repeat(starts + lengths, lengths)


def _pairs_after(firsts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (p, q) with p in `firsts` and p < q < the end of p's run, by p then q."""
    counts = ends[firsts] - firsts - 1
    first = np.repeat(firsts, counts)
    return first, first + 1 + _offsets(counts)


def _offsets(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., count - 1 for each count, concatenated."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


# ---------------------------------------------------------------- itemcf and usercf


def _cooccurrence_links(plan: Plan, needed: set[str], n_keys: int) -> Iterator[_Links]:
    """Pair rows share a via: per-pair links when terms read times, else via links (per weight if needed)."""
    rows = plan.rows
    order = np.argsort(_ints(rows, "via") * n_keys + _ints(rows, "key"))  # (via, key) is unique
    columns = {name: rows[name].to_numpy()[order] for name in rows.column_names}
    if "t" in columns:
        return _row_pair_links(columns, n_keys)
    return _via_links(columns, n_keys, weighted=bool(needed - {"cnt"}))


def _via_links(rows: dict[str, np.ndarray], n_keys: int, weighted: bool) -> Iterator[_Links]:
    """A link per via u and weight w_b it gave: L[(u, w_b), a] = term(w_a = w(u, a), w_b, vw_u) for each
    row (u, a); R[(u, w_b), b] = 1 where u gave b weight w_b. So (L^T R)[a, b] adds u's term for the
    weights u gave a and b. Without weights (counts only) a via is one link and L = R."""
    via, key, w, vw = rows["via"].astype(np.int64), rows["key"], rows["w"], rows["vw"]
    degree = np.bincount(via)
    if weighted:
        weights, weight_code = np.unique(w, return_inverse=True)
        codes, link_of_row = np.unique(via * len(weights) + weight_code.ravel(), return_inverse=True)
        link_via, link_w = codes // len(weights), weights[codes % len(weights)]
        right_order = np.argsort(link_of_row, kind="stable")  # rows by link, keys ascending within
    else:
        link_via, link_w, link_of_row, right_order = np.arange(len(degree)), np.ones(len(degree)), via, None
    link_size = degree[link_via]
    right_size = np.bincount(link_of_row, minlength=len(link_via))
    first_row, right_start = _indptr(degree), _indptr(right_size)
    for lo, hi in _blocks(link_size, LINK_BUDGET):
        entry_row = np.repeat(first_row[link_via[lo:hi]], link_size[lo:hi]) + _offsets(link_size[lo:hi])
        right_rows = slice(right_start[lo], right_start[hi])
        right_keys = key[right_rows] if right_order is None else key[right_order[right_rows]]
        left_t, right = _links(
            hi - lo,
            n_keys,
            (link_size[lo:hi], key[entry_row], np.arange(len(entry_row))),
            (right_size[lo:hi], right_keys),
        )
        sources = {
            "w_a": (w, entry_row),
            "w_b": (np.repeat(link_w[lo:hi], link_size[lo:hi]), None),
            "vw": (vw, entry_row),
        }
        yield _Links(left_t, right, sources, len(entry_row), swap={"w_a": "w_b", "w_b": "w_a"})


def _row_pair_links(rows: dict[str, np.ndarray], n_keys: int) -> Iterator[_Links]:
    """A link per pair row (rows a, b of one via, key a < key b): the terms read both rows' times, so each
    is evaluated once per pair row, as in the SQL engines."""
    key = rows["key"]
    ends = _run_ends(rows["via"])
    positions = np.arange(len(key))
    for lo, hi in _blocks(ends - positions - 1, LINK_BUDGET):
        a, b = _pairs_after(positions[lo:hi], ends)
        left_t, right = _links(len(a), n_keys, (None, key[a], np.arange(len(a))), (None, key[b]))
        sides = {"w_a": ("w", a), "w_b": ("w", b), "vw": ("vw", a), "t_a": ("t", a), "t_b": ("t", b)}
        sources = {name: (rows[column], at) for name, (column, at) in sides.items()}
        yield _Links(left_t, right, sources, len(a), upper=True)


# ---------------------------------------------------------------- swing


def _swing_links(plan: Plan, n_keys: int) -> Iterator[_Links]:
    """A link per user pair u < v sharing k >= 2 keys: L[(u, v), a] = q(u, v) and R[(u, v), b] = 1 for the
    keys a, b both have, so (L^T R)[a, b] adds q over the user pairs a and b share. A block holds every
    pair of a range of users u, so each pair's overlap k is complete in its block."""
    via, key, vw = _ints(plan.rows, "via"), _ints(plan.rows, "key"), _floats(plan.rows, "vw")
    n_users = int(via.max()) + 1 if len(via) else 0
    user_weight = np.zeros(n_users)
    user_weight[via] = vw
    order = np.lexsort((via, key))
    user, item = via[order], key[order]
    ends = _run_ends(item)  # a key's rows, users ascending: positions p < q of one run are a user pair
    by_user = np.argsort(user, kind="stable")  # a user's rows, keys ascending
    user_rows = _indptr(np.bincount(user, minlength=n_users))
    user_cost = np.bincount(user, weights=ends - np.arange(len(item)) - 1, minlength=n_users)
    for lo, hi in _blocks(user_cost, LINK_BUDGET):
        first, second = _pairs_after(by_user[user_rows[lo] : user_rows[hi]], ends)
        code = (user[first] - lo) * n_users + user[second]  # by u, then key, then v
        n_codes = (hi - lo) * n_users
        if n_codes > 4 * len(code) + 1024:  # few pairs in a big user base: number those there are
            pair_codes, link = np.unique(code, return_inverse=True)
        else:
            pair_codes, link = np.arange(n_codes), code
        shared = sp.csr_matrix((np.ones(len(link), dtype=np.int8), (link, item[first])), (len(pair_codes), n_keys))
        k = np.diff(shared.indptr)
        kept = np.flatnonzero(k >= 2)
        keys = shared.indices[np.repeat(k >= 2, k)]
        u, v = lo + pair_codes[kept] // n_users, pair_codes[kept] % n_users
        assert plan.user_pair is not None
        q = np.asarray(plan.user_pair({"vw_u": user_weight[u], "vw_v": user_weight[v], "k": k[kept]}), np.int64)
        link_of_entry = np.repeat(np.arange(len(kept)), k[kept])
        left_t, right = _links(len(kept), n_keys, (k[kept], keys, link_of_entry), (k[kept], keys))
        yield _Links(left_t, right, {"q": (q, None)}, len(kept))


# ---------------------------------------------------------------- top N


def _top_n(
    key: np.ndarray, other: np.ndarray, score: np.ndarray, n_keys: int, top_n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(key, entry, rank) of each key's `top_n` entries by score descending, then `other` ascending.

    Entries come grouped by key (0 .. n_keys - 1). Keys with similar entry counts are padded into one
    matrix, a row per key; in rows longer than top_n the entries above the row's top_n-th best score stay,
    and of those tied with it the smallest `other`s. Then each row is sorted by `other`, stably by score.
    """
    counts = np.bincount(key, minlength=n_keys)
    starts = np.cumsum(counts) - counts
    padded_score, padded_other = np.append(score, -np.inf), np.append(other, np.iinfo(np.int64).max)
    empty = np.zeros(0, dtype=np.int64)
    parts = [(empty, empty, empty)]
    for rows in _row_chunks(np.flatnonzero(counts), counts):
        count, width = counts[rows], int(counts[rows].max())
        valid = np.arange(width) < count[:, None]
        at = np.where(valid, starts[rows, None] + np.arange(width), len(score))  # padding reads -inf
        if width > top_n:
            at = at[_best(padded_score[at], padded_other, at, valid, top_n)].reshape(len(rows), top_n)
        by_other = np.argsort(padded_other[at], axis=1)
        at = np.take_along_axis(at, by_other, axis=1)
        at = np.take_along_axis(at, np.argsort(-padded_score[at], axis=1, kind="stable"), axis=1)
        kept = np.minimum(count, top_n)  # sorted first in their rows, padding last
        at = at[:, : int(kept.max())][np.arange(int(kept.max())) < kept[:, None]]
        parts.append((np.repeat(rows, kept), at, _offsets(kept) + 1))
    key_out, at, rank = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    return key_out, at, rank


def _best(s: np.ndarray, other: np.ndarray, at: np.ndarray, valid: np.ndarray, top_n: int) -> np.ndarray:
    """Mask of exactly `top_n` cells per row of padded scores `s`: the row's best entries (ties at the
    cut by smaller `other[at]`), then padding if the row has fewer."""
    # the top_n-th largest; np.sort, as np.partition slows down tenfold on rows of many equal scores
    bound = np.sort(s, axis=1)[:, s.shape[1] - top_n, None]
    keep = s > bound
    tied_row, tied_col = np.nonzero((s == bound) & valid)
    if len(tied_row):
        room = top_n - keep.sum(axis=1)
        by_other = np.lexsort((other[at[tied_row, tied_col]], tied_row))
        tied_row, tied_col = tied_row[by_other], tied_col[by_other]
        first = _offsets(np.bincount(tied_row, minlength=len(s))) < room[tied_row]
        keep[tied_row[first], tied_col[first]] = True
    keep |= ~valid & (np.arange(s.shape[1]) < top_n)  # rows short of top_n entries fill up with padding
    return keep


def _row_chunks(rows: np.ndarray, counts: np.ndarray) -> Iterator[np.ndarray]:
    """`rows` in groups of similar count (within a factor 2), each group padded to at most SELECT_BUDGET."""
    group = np.floor(np.log2(counts[rows])).astype(np.int64) if len(rows) else np.zeros(0, np.int64)
    for g in np.unique(group):
        members = rows[group == g]
        step = max(1, SELECT_BUDGET // int(counts[members].max()))
        for lo in range(0, len(members), step):
            yield members[lo : lo + step]
