"""A memory-mapped file of fixed-size records, one per slot: the cold tier of a tiered embedding table.

A record holds everything a row carries (vector, optimizer state, counters) side by side, so reading or
writing a cold row touches one place on disk, not one per array. Reads and writes take a whole batch
of slots at once (numpy fancy indexing on the mapping). The file grows by truncating it longer (new
records read as zeros, as a grown in-RAM table's do) and is working storage: checkpoints and bundles
still go through the table's state_dict.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

COPY_CHUNK = 1 << 16  # records per chunk when whole arrays move into the file


def record_dtype(dim: int, adam: bool) -> np.dtype:
    """One dynamic-table row as a record: vector, optimizer state (Adam moments when `adam`), counters."""
    fields: list[tuple[str, type, tuple[int, ...]]] = [("weight", np.float32, (dim,))]
    if adam:
        fields += [("opt_m", np.float32, (dim,)), ("opt_v", np.float32, (dim,))]
    fields += [("opt_sum", np.float32, ()), ("freq", np.int64, ()), ("last_step", np.int64, ())]
    fields += [("opt_steps", np.int64, ())]
    return np.dtype(fields, align=True)


class RowFile:
    """`capacity` records of `dtype` (a structured numpy dtype) in the file at `path`, mapped read-write."""

    def __init__(self, path: Path, dtype: np.dtype, capacity: int) -> None:
        self.path, self.dtype = path, dtype
        with open(path, "wb") as handle:
            handle.truncate(max(capacity, 1) * dtype.itemsize)  # sparse zeros; a mapping needs >= 1 byte
        self.capacity = capacity
        self._map()

    def _map(self) -> None:
        records = max(self.capacity, 1)
        # plain ndarrays over the mapping (np.memmap's subclass costs on every small gather): records as
        # [n, itemsize] bytes for batch reads and writes (a 2-d byte take is ~6x a structured gather),
        # and the same memory as structured records for field views
        mapping = np.memmap(self.path, dtype=np.uint8, mode="r+", shape=(records, self.dtype.itemsize))
        self.bytes: np.ndarray = np.asarray(mapping)
        self.rows: np.ndarray = self.bytes.view(self.dtype).reshape(records)

    @property
    def nbytes(self) -> int:
        return self.capacity * self.dtype.itemsize

    def resize(self, capacity: int) -> None:
        """Grow to `capacity` records; existing records keep their slots, new ones are zero."""
        if capacity <= self.capacity:
            return
        os.truncate(self.path, capacity * self.dtype.itemsize)
        self.capacity = capacity
        self._map()  # views of the old mapping stay valid: the file only grew

    def fill(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Write whole per-slot arrays, one per record field, chunk by chunk (never a second full copy in
        RAM); an empty array (Adam moments a table never used) leaves its field zero."""
        for start in range(0, self.capacity, COPY_CHUNK):
            stop = min(start + COPY_CHUNK, self.capacity)
            chunk = np.zeros(stop - start, dtype=self.dtype)
            for name in self.dtype.names or ():
                if arrays[name].shape[0]:
                    chunk[name] = arrays[name][start:stop]
            self.rows[start:stop] = chunk

    def read(self, slots: np.ndarray) -> np.ndarray:
        """Records of `slots` (a copy)."""
        return self.bytes.take(slots, axis=0).view(self.dtype).reshape(len(slots))

    def write(self, slots: np.ndarray, records: np.ndarray) -> None:
        self.bytes[slots] = records.view(np.uint8).reshape(len(slots), self.dtype.itemsize)

    def field(self, name: str) -> np.ndarray:
        """One field over every slot: a strided view of the mapping (writes go to the file)."""
        return self.rows[: self.capacity][name]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Unmap and delete the file (views still held elsewhere keep their pages until dropped)."""
        self.rows = np.empty(0, dtype=self.dtype)
        self.bytes = np.empty((0, self.dtype.itemsize), dtype=np.uint8)
        Path(self.path).unlink(missing_ok=True)
