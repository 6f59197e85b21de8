"""`KeyIndex`: int64 id -> slot of a dynamic table, by open addressing over one int64 array.

Linear probing at load <= 1/2, held in one [cells, 2] int64 array of (key, slot) and probed for a whole
batch at once in numpy on zero-copy views: first every id's home cell, then 8-cell windows for the few
left. A cell stores the full int64 key and a hit compares it exactly, so every int64 is its own row
whatever its value (no modulus, no collisions). A sorted key array with searchsorted was tried first:
at 1M keys its binary search (20 dependent loads per id) cost ~290 us per 2k distinct ids against
~20 us for a home-cell gather. The index is derived state, rebuilt from the slot keys on load and
after eviction (no tombstones).
"""

from __future__ import annotations

import numpy as np
import torch

from recforge.hashing import splitmix64

PROBE_WINDOW = 8


class KeyIndex:
    """int64 key -> slot by open addressing (linear probing), vectorized over batches of keys."""

    def __init__(self, size: int = 0) -> None:
        cells = 16
        while cells < 2 * size:
            cells *= 2
        self.table = torch.zeros(cells, 2, dtype=torch.int64)  # per cell: key, slot (-1 = empty)
        self.table[:, 1] = -1
        self.size = 0

    def _home(self, keys: torch.Tensor) -> torch.Tensor:
        hashed = splitmix64(keys.contiguous().numpy().view(np.uint64)) & np.uint64(len(self.table) - 1)
        return torch.from_numpy(hashed.astype(np.int64))

    def find(self, keys: torch.Tensor) -> torch.Tensor:
        """Slot per key, -1 where absent (numpy on zero-copy views: half the per-op cost of torch here).

        Cells are read with `take` along axis 0 (one contiguous 16-byte copy per cell), ~5x faster than
        fancy-indexing the [cells, 2] array; the probe rounds gather whole windows the same way.
        """
        table, wanted = self.table.numpy(), keys.contiguous().numpy()
        mask = len(table) - 1
        pos = self._home(keys).numpy()
        home = table.take(pos, axis=0)  # most ids resolve at their home cell
        home_key, home_slot = home[:, 0], home[:, 1]
        out = np.where(home_key == wanted, home_slot, -1)  # an empty cell's slot is -1 already
        go = (home_slot >= 0) & (home_key != wanted)
        if not go.any():
            return torch.from_numpy(out)
        active = np.flatnonzero(go)
        wanted, pos = wanted[active], (pos[active] + 1) & mask
        window = np.arange(PROBE_WINDOW)
        while len(active):  # the rest read PROBE_WINDOW cells per round
            probe = table.take(((pos[:, None] + window) & mask).reshape(-1), axis=0).reshape(-1, PROBE_WINDOW, 2)
            slot = probe[:, :, 1]
            hit = (slot >= 0) & (probe[:, :, 0] == wanted[:, None])
            stop = hit | (slot < 0)  # the key is found before the first empty cell, or is absent
            first = stop.argmax(axis=1)
            rows = np.arange(len(active))
            done = stop[rows, first]
            out[active[done]] = np.where(hit[rows, first], slot[rows, first], -1)[done]
            go = ~done
            active, wanted, pos = active[go], wanted[go], (pos[go] + PROBE_WINDOW) & mask
        return torch.from_numpy(out)

    def insert(self, keys: torch.Tensor, slots: torch.Tensor) -> None:
        """Add distinct keys that are not in the index yet (doubling the cells past load 1/2)."""
        if 2 * (self.size + len(keys)) > len(self.table):
            old = self.table[self.table[:, 1] >= 0]
            bigger = KeyIndex(self.size + len(keys))
            bigger.insert(old[:, 0].clone(), old[:, 1].clone())
            self.table = bigger.table
        idx, pos = torch.arange(len(keys)), self._home(keys)
        mask = len(self.table) - 1
        entries = torch.stack([keys, slots], dim=1)
        while len(idx):
            free = self.table[pos, 1] < 0
            cells, inverse = torch.unique(pos[free], return_inverse=True)
            # one winner per free cell (the lowest index, so layouts are reproducible); the rest probe on
            winner = torch.full((len(cells),), len(keys)).scatter_reduce_(0, inverse, idx[free], "amin")
            self.table[cells] = entries[winner]
            placed = torch.zeros(len(keys), dtype=torch.bool)
            placed[winner] = True
            left = ~placed[idx]
            idx, pos = idx[left], (pos[left] + 1) & mask
        self.size += len(keys)
