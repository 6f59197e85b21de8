"""Links for the numpy i2i engine: what two keys share, as sparse matrices L^T (keys x links) and R.

The rows of two matrices L and R are links, what two keys share: a user (itemcf; a user and one weight
of theirs when weights vary), one pair of a user's rows (time decay) or a pair of users (swing).
L[link, a] is the integer term the link adds to the pairs (a, b) and R[link, b] = 1, so (L^T R)[a, b]
adds up the terms over the links a and b share. Links come in blocks of at most `budget` entries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from recforge.recall.i2i.formula import Derived, Formula, Value
from recforge.recall.i2i.plan import Plan


def ints(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table[name].to_numpy(), dtype=np.int64)


def floats(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table[name].to_numpy(), dtype=np.float64)


@dataclass(frozen=True)
class Links:
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
        starts = self.left_t.indptr[lo : hi + 1] - start
        left_t = sp.csr_matrix((data, self.left_t.indices[start:stop], starts), shape=(hi - lo, self.right.shape[0]))
        out = trim(left_t @ self.right)
        if mirror:
            out = sp.triu(out, k=1, format="csr")
        return trim((out + out.T).tocsr()) if mirror or self.upper else out

    def row_sizes(self) -> np.ndarray:
        """Per key, at most how many pairs it has (the links' sizes added up, capped by the key count)."""
        through = np.r_[0, np.cumsum(np.diff(self.right.indptr)[self.left_t.indices])]
        return np.minimum(through[self.left_t.indptr[1:]] - through[self.left_t.indptr[:-1]], self.right.shape[1])


def link_matrices(
    n_links: int,
    n_keys: int,
    left: tuple[np.ndarray | None, np.ndarray, np.ndarray],
    right: tuple[np.ndarray | None, np.ndarray],
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """L^T and R from per-link entry counts (None: one each), keys (and term rows, for L), by link."""
    left_counts, left_keys, term_rows = left
    right_counts, right_keys = right
    left_matrix = sp.csr_matrix((term_rows, left_keys, indptr(left_counts, n_links)), shape=(n_links, n_keys))
    ones = np.ones(len(right_keys), dtype=np.int64)
    right_matrix = sp.csr_matrix((ones, right_keys, indptr(right_counts, n_links)), shape=(n_links, n_keys))
    return left_matrix.T.tocsr(), right_matrix


def indptr(counts: np.ndarray | None, n: int | None = None) -> np.ndarray:
    """Row starts of rows with `counts` entries (None: `n` rows of one entry)."""
    if counts is None:
        return np.arange((n or 0) + 1, dtype=np.int64)
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def trim(m: sp.csr_matrix) -> sp.csr_matrix:
    """`m` without the unused tail scipy's product leaves where it dropped zero sums."""
    nnz = int(m.indptr[-1])
    if len(m.indices) == nnz:
        return m
    return sp.csr_matrix((m.data[:nnz], m.indices[:nnz], m.indptr), shape=m.shape)


def blocks(costs: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive ranges of items whose costs add up to at most `budget` (or one item)."""
    ends = np.cumsum(costs)
    lo = 0
    while lo < len(costs):
        done = int(ends[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(ends, done + budget, side="right")), lo + 1)
        yield lo, hi
        lo = hi


def run_ends(groups: np.ndarray) -> np.ndarray:
    """For each position of sorted `groups`, the end of the run of equal values it sits in."""
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(groups) else np.zeros(0, np.int64)
    lengths = np.diff(np.r_[starts, len(groups)])
    return np.repeat(starts + lengths, lengths)


def pairs_after(firsts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (p, q) with p in `firsts` and p < q < the end of p's run, by p then q."""
    counts = ends[firsts] - firsts - 1
    first = np.repeat(firsts, counts)
    return first, first + 1 + offsets(counts)


def offsets(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., count - 1 for each count, concatenated."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def cooccurrence_links(plan: Plan, needed: set[str], n_keys: int, budget: int) -> Iterator[Links]:
    """Pair rows share a via: per-pair links when terms read times, else via links (per weight if needed)."""
    rows = plan.rows
    order = np.argsort(ints(rows, "via") * n_keys + ints(rows, "key"))  # (via, key) is unique
    columns = {name: rows[name].to_numpy()[order] for name in rows.column_names}
    if "t" in columns:
        return row_pair_links(columns, n_keys, budget)
    return via_links(columns, n_keys, budget, weighted=bool(needed - {"cnt"}))


def via_links(rows: dict[str, np.ndarray], n_keys: int, budget: int, weighted: bool) -> Iterator[Links]:
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
    first_row, right_start = indptr(degree), indptr(right_size)
    for lo, hi in blocks(link_size, budget):
        entry_row = np.repeat(first_row[link_via[lo:hi]], link_size[lo:hi]) + offsets(link_size[lo:hi])
        right_rows = slice(right_start[lo], right_start[hi])
        right_keys = key[right_rows] if right_order is None else key[right_order[right_rows]]
        left_t, right = link_matrices(
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
        yield Links(left_t, right, sources, len(entry_row), swap={"w_a": "w_b", "w_b": "w_a"})


def row_pair_links(rows: dict[str, np.ndarray], n_keys: int, budget: int) -> Iterator[Links]:
    """A link per pair row (rows a, b of one via, key a < key b): the terms read both rows' times, so each
    is evaluated once per pair row, as in the SQL engines."""
    key = rows["key"]
    ends = run_ends(rows["via"])
    positions = np.arange(len(key))
    for lo, hi in blocks(ends - positions - 1, budget):
        a, b = pairs_after(positions[lo:hi], ends)
        left_t, right = link_matrices(len(a), n_keys, (None, key[a], np.arange(len(a))), (None, key[b]))
        sides = {"w_a": ("w", a), "w_b": ("w", b), "vw": ("vw", a), "t_a": ("t", a), "t_b": ("t", b)}
        sources = {name: (rows[column], at) for name, (column, at) in sides.items()}
        yield Links(left_t, right, sources, len(a), upper=True)


def swing_links(plan: Plan, n_keys: int, budget: int) -> Iterator[Links]:
    """A link per user pair u < v sharing k >= 2 keys: L[(u, v), a] = q(u, v) and R[(u, v), b] = 1 for the
    keys a, b both have, so (L^T R)[a, b] adds q over the user pairs a and b share. A block holds every
    pair of a range of users u, so each pair's overlap k is complete in its block."""
    via, key, vw = ints(plan.rows, "via"), ints(plan.rows, "key"), floats(plan.rows, "vw")
    n_users = int(via.max()) + 1 if len(via) else 0
    user_weight = np.zeros(n_users)
    user_weight[via] = vw
    order = np.lexsort((via, key))
    user, item = via[order], key[order]
    ends = run_ends(item)  # a key's rows, users ascending: positions p < q of one run are a user pair
    by_user = np.argsort(user, kind="stable")  # a user's rows, keys ascending
    user_rows = indptr(np.bincount(user, minlength=n_users))
    user_cost = np.bincount(user, weights=ends - np.arange(len(item)) - 1, minlength=n_users)
    for lo, hi in blocks(user_cost, budget):
        first, second = pairs_after(by_user[user_rows[lo] : user_rows[hi]], ends)
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
        left_t, right = link_matrices(len(kept), n_keys, (k[kept], keys, link_of_entry), (k[kept], keys))
        yield Links(left_t, right, {"q": (q, None)}, len(kept))
