"""Multi-hash storage (`storage: {kind: multi_hash, buckets: B, hashes: k, combine: sum|mean|concat}`).

The id feature emits the raw int64 key (as for dynamic storage); the table hashes it k times, with k
independent SplitMix64 hashes, into k tables of B rows and combines the k rows. Two ids share their whole
vector only when all k buckets coincide, so k tables of B rows behave, for collisions of full vectors,
like one table of B^k rows (see `recforge ev collisions`). Hash 0 is the one static `hash_buckets` uses
for integer ids (`splitmix64(id) % B`), hash i > 0 mixes the key with a fixed seed first.

The k tables are one [k * B, width] parameter (table i holds rows i*B .. i*B + B - 1), read with one
F.embedding, so sparse optimizers treat it like a static table. Null ids hash like any other key.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recforge.config.features import MultiHashStorage
from recforge.embedding.tables import TABLES, init_rows
from recforge.hashing import splitmix64
from recforge.schema import TableSpec

MAX_HASHES = 8
SEEDS = np.concatenate([np.zeros(1, np.uint64), splitmix64(np.arange(1, MAX_HASHES, dtype=np.uint64))])


def bucket_indices(keys: np.ndarray, buckets: int, hashes: int) -> np.ndarray:
    """[n] int64 keys -> [n, hashes] int64 bucket per hash function, each in [0, buckets)."""
    if not 1 <= hashes <= MAX_HASHES:
        raise ValueError(f"hashes must be in 1..{MAX_HASHES}, not {hashes}")
    raw = np.ascontiguousarray(keys, dtype=np.int64).view(np.uint64)
    out = np.empty((len(raw), hashes), dtype=np.int64)
    for i in range(hashes):
        out[:, i] = (splitmix64(raw ^ SEEDS[i]) % np.uint64(buckets)).astype(np.int64)
    return out


class MultiHashTable(nn.Module):
    """int64 key -> combination of one row in each of k hashed tables; `weight` is [k * buckets, width]."""

    def __init__(self, dim: int, config: MultiHashStorage) -> None:
        super().__init__()
        self.config = config
        self.dim, self.buckets, self.hashes = dim, config.buckets, config.hashes
        self.combine = config.combine if config.combine != "concat" or dim % config.hashes == 0 else "sum"
        width = dim // self.hashes if self.combine == "concat" else dim
        self.weight = nn.Parameter(init_rows(self.hashes * self.buckets, width))
        self.offsets: torch.Tensor
        self.register_buffer("offsets", torch.arange(self.hashes) * self.buckets, persistent=False)
        self.sparse_grad = False

    def rows_of(self, ids: torch.Tensor) -> torch.Tensor:
        """[...] int64 keys -> [..., k] rows of `weight` (hashed on the CPU in numpy)."""
        flat = ids.detach().reshape(-1).cpu().numpy()
        rows = torch.from_numpy(bucket_indices(flat, self.buckets, self.hashes)).to(ids.device)
        return (rows + self.offsets).view(*ids.shape, self.hashes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[...] int64 keys -> [..., dim]."""
        vectors = nn.functional.embedding(self.rows_of(ids), self.weight, sparse=self.sparse_grad)  # [..., k, w]
        if self.combine == "concat":
            return vectors.flatten(-2)
        return vectors.sum(dim=-2) if self.combine == "sum" else vectors.mean(dim=-2)


@TABLES.register("multi_hash")
def build_multi_hash(spec: TableSpec, dim: int) -> nn.Module:
    return MultiHashTable(dim, MultiHashStorage.model_validate(spec.storage))
