"""User–item interactions on dense codes: the one input every recall channel fits on.

Ids keep their original type in a `Vocab` (codes are positions in its arrays), so a channel never
sees strings and a result can always be mapped back to the ids the warehouse uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from recforge.errors import BundleError, DataError


@dataclass(frozen=True)
class Vocab:
    """Original user and item ids by dense code (code = position)."""

    user_ids: pa.Array
    item_ids: pa.Array

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def encode_users(self, ids: pa.Array | pa.ChunkedArray | list[object]) -> np.ndarray:
        """int64 codes; -1 for users the vocab does not know (cold users)."""
        return _encode(self.user_ids, ids, "user")

    def encode_items(self, ids: pa.Array | pa.ChunkedArray | list[object]) -> np.ndarray:
        """int64 codes; -1 for unknown items."""
        return _encode(self.item_ids, ids, "item")

    def save(self, directory: str | Path) -> None:
        base = Path(directory)
        base.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"user_id": self.user_ids}), base / "users.parquet")
        pq.write_table(pa.table({"item_id": self.item_ids}), base / "items.parquet")

    @staticmethod
    def load(directory: str | Path) -> Vocab:
        base = Path(directory)
        for name in ("users.parquet", "items.parquet"):
            if not (base / name).exists():
                raise BundleError(f"{base / name} is missing (incomplete recall bundle)")
        users = pq.read_table(base / "users.parquet")["user_id"].combine_chunks()
        items = pq.read_table(base / "items.parquet")["item_id"].combine_chunks()
        return Vocab(users, items)


def _encode(vocab: pa.Array, ids: pa.Array | pa.ChunkedArray | list[object], what: str) -> np.ndarray:
    values = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(ids)
    if values.type != vocab.type:
        try:
            values = values.cast(vocab.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(
                f"{what} ids are {values.type}, the recall vocab holds {vocab.type}"
                f"\n  fix: pass {what} ids of type {vocab.type}"
            ) from None
    codes = pc.index_in(values, value_set=vocab)
    return np.asarray(codes.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


@dataclass(frozen=True)
class Interactions:
    """Deduplicated (user, item) pairs with a positive weight and an optional unix time."""

    users: np.ndarray  # int64 codes
    items: np.ndarray  # int64 codes
    weights: np.ndarray  # float32, > 0
    times: np.ndarray | None  # int64 unix seconds
    n_users: int
    n_items: int

    def __post_init__(self) -> None:
        n = len(self.users)
        if len(self.items) != n or len(self.weights) != n or (self.times is not None and len(self.times) != n):
            raise DataError("interaction arrays differ in length")

    def __len__(self) -> int:
        return len(self.users)

    @cached_property
    def matrix(self) -> sp.csr_matrix:
        """[n_users, n_items] float32 CSR of weights (sorted indices, one entry per pair)."""
        m = sp.csr_matrix((self.weights, (self.users, self.items)), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        m.sort_indices()
        return m.astype(np.float32)

    def binary(self) -> sp.csr_matrix:
        """The pattern of `matrix` with every weight 1 (what hit-based metrics and masks use)."""
        m = self.matrix.copy()
        m.data[:] = 1.0
        return m

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items)

    def user_counts(self) -> np.ndarray:
        return np.bincount(self.users, minlength=self.n_users)

    def to_table(self, vocab: Vocab) -> pa.Table:
        """Original ids with weight and time: the form warehouse jobs (i2i) and exports use."""
        cols: dict[str, pa.Array | np.ndarray] = {
            "user_id": vocab.user_ids.take(pa.array(self.users)),
            "item_id": vocab.item_ids.take(pa.array(self.items)),
            "weight": self.weights.astype(np.float64),
        }
        if self.times is not None:
            cols["timestamp"] = self.times
        return pa.table(cols)


@dataclass(frozen=True)
class RecallData:
    """Train / valid / test interactions over one vocab, and the counts of every row filtered on the way."""

    vocab: Vocab
    train: Interactions
    valid: Interactions | None
    test: Interactions | None
    counts: dict[str, int] = field(default_factory=dict)

    def seen_before(self, split: str) -> sp.csr_matrix:
        """Items to mask when evaluating `split`: train for valid, train + valid for test (RecBole's full sort)."""
        seen = self.train.binary()
        if split == "test" and self.valid is not None:
            seen = seen + self.valid.binary()
            seen.data[:] = 1.0
        return seen.tocsr()
