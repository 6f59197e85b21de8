"""A dynamic table whose rows live in two tiers (`storage: {kind: dynamic, tier: {ram_bytes: 64MB}}`).

Hot tier: a fixed number of rows in RAM, sized so that everything kept per hot row (vector, optimizer
state, freq / last_step / step counters and the cache's own bookkeeping) fits `ram_bytes`. Cold tier:
every slot's record in a memory-mapped row file (`row_file.RowFile`). The table's row arrays
(`weight`, `opt_*`, `freq`, `last_step`) are the hot rows; the DynamicTable code that reads and
updates rows (lookups, the fused optimizer) runs on them unchanged.

A lookup (training or serving: both read through the tiers) first resolves ids to slots exactly as a
DynamicTable does (same index, admission, slot numbers), then maps slots to hot rows: cold slots are
promoted in one batch (one gather from the file), taking free hot rows; when those run out, a chunk
of the coldest hot rows (`tier_policy`: `lfu` or `lru`) is demoted at once, writing back the ones
changed since promotion. Rows a lookup reads are held hot until its backward has applied their update.

Not in the budget: the key directory every table keeps in RAM for every id (the open-addressing index,
16 bytes per cell at load <= 1/2, plus slot keys, alive flag, slot -> hot row map and the delta dirty
mask, ~14 bytes per slot). `directory_bytes()` reports it.

The state_dict is the same as a DynamicTable's with the same history (same keys, shapes and values,
dead slots included), so bundles, checkpoints and delta chains move between the two; its row arrays
are views of the row file (after writing back the dirty hot rows), so saving streams from the file.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recforge.config.features import DynamicStorage, TierStorage
from recforge.embedding.dynamic.optimizer import check_optimizer
from recforge.embedding.dynamic.state import SLOT_ARRAYS, STATE, checked_state
from recforge.embedding.dynamic.table import DynamicTable
from recforge.embedding.row_file import RowFile, record_dtype
from recforge.embedding.tables import init_rows
from recforge.embedding.tier_policy import coldest, coldness, demotion_count
from recforge.errors import ConfigError

DIRECTORY = ("alive", "slot_keys")  # per-slot arrays that stay in RAM (the rest are hot rows / records)
BOOKKEEPING_BYTES = 8 + 8 + 8 + 4 + 1 + 1  # per hot row: its slot, stamp, free-stack entry, pins, busy, dirty


class TieredTable(DynamicTable):
    """DynamicTable with at most `tier.ram_bytes` of rows in RAM; the rest in a memory-mapped row file."""

    def __init__(self, dim: int, config: DynamicStorage, name: str = "table") -> None:
        super().__init__(dim, config)
        if config.tier is None:
            raise ValueError("TieredTable needs storage.tier")
        self.tier: TierStorage = config.tier
        self.name = name
        root = Path(self.tier.path) if self.tier.path else None
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self.directory = Path(tempfile.mkdtemp(prefix=f"recforge-{name}-", dir=root))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.directory), True)
        self.adam_state = False  # whether records carry opt_m / opt_v
        self._files = 0
        self._held: dict[int, np.ndarray] = {}
        self.promoted = 0  # rows read from the row file / written back to it (for benches and tests)
        self.demoted = 0
        self.written_back = 0
        self._lock = threading.RLock()  # serving looks up from many threads, and every lookup moves rows
        self._relayout({name: getattr(self, name) for name in SLOT_ARRAYS})  # the zero rows made above

    # ------------------------------------------------------------------ layout
    def _record_dtype(self) -> np.dtype:
        return record_dtype(self.dim, self.adam_state)

    @property
    def row_fields(self) -> tuple[str, ...]:
        """The slot arrays kept per row in the hot and cold tiers."""
        return tuple(self._record_dtype().names or ())

    def row_bytes(self) -> int:
        """RAM one hot row costs: its fields and the cache bookkeeping."""
        dtype = self._record_dtype()
        return sum(dtype[name].itemsize for name in dtype.names or ()) + BOOKKEEPING_BYTES

    def _relayout(self, arrays: dict[str, torch.Tensor]) -> None:
        """Move full per-slot arrays (as DynamicTable holds them) into a new row file; empty hot tier."""
        capacity = int(arrays["alive"].shape[0])
        self.adam_state = self.adam_state or int(arrays["opt_m"].shape[0]) > 0
        dtype = self._record_dtype()
        self._files += 1
        new = RowFile(self.directory / f"rows-{self._files}.bin", dtype, capacity)
        new.fill({name: arrays[name].numpy() for name in dtype.names or ()})
        old = getattr(self, "file", None)
        self.file = new
        if old is not None:  # after the copy: `arrays` may be views of the old file
            old.close()
        self.alive = arrays["alive"].detach().clone()
        self.slot_keys = arrays["slot_keys"].detach().clone()
        self._slot_row = np.full(capacity, -1, dtype=np.int32)
        self._reset_hot()

    def _reset_hot(self) -> None:
        """An empty hot tier of as many rows as `ram_bytes` pays for."""
        rows = self.tier.ram_bytes // self.row_bytes()
        if rows < 1:
            raise ConfigError(
                "storage.tier.ram_bytes",
                f"{self.tier.ram_bytes} bytes hold no row of {self.name!r} ({self.row_bytes()} bytes each)",
                fix="raise ram_bytes",
            )
        self.hot_rows = rows
        for name in ("weight", "opt_m", "opt_v", "opt_sum", "freq", "last_step", "opt_steps"):
            template = super().slot_array(name)
            hot = rows if name in self.row_fields else 0
            setattr(self, name, torch.zeros(hot, *template.shape[1:], dtype=template.dtype))
        self._cache_slot = np.full(rows, -1, dtype=np.int64)  # slot held by each hot row, -1 = free
        self._stamp = np.zeros(rows, dtype=np.int64)  # lookup tick of the last read
        self._free = np.arange(rows - 1, -1, -1, dtype=np.int64)  # stack of free hot rows (top = end)
        self._n_free = rows
        self._pins = np.zeros(rows, dtype=np.int32)  # lookups waiting for their backward
        self._busy = np.zeros(rows, dtype=bool)  # rows of the lookup being resolved
        self._hot_dirty = np.zeros(rows, dtype=bool)  # changed since promotion: written back on demotion
        self._tick = 0
        self._held = {}
        self._rng = np.random.default_rng(0)  # demotion samples: runs repeat exactly

    # ------------------------------------------------------------------ public
    @property
    def capacity(self) -> int:
        return int(self.alive.shape[0])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        with self._lock:
            return super().forward(ids)

    def __deepcopy__(self, memo: dict[int, Any]) -> TieredTable:
        """A twin with its own row file holding the same state (a plain deep copy would share the file)."""
        twin = TieredTable(self.dim, self.config, name=self.name)
        twin.configure_optimizer(self.optimizer, self.lr)
        twin.load_state_dict(self.state_dict())
        twin.dirty, twin.tombstones = self.dirty.clone(), [t.clone() for t in self.tombstones]
        memo[id(self)] = twin
        return twin.train(self.training)

    def resident_bytes(self) -> int:
        """Bytes the hot tier holds in RAM (never above `tier.ram_bytes`)."""
        arrays: list[Any] = [getattr(self, name) for name in ("weight", "opt_m", "opt_v", "opt_sum", "freq")]
        arrays += [self.last_step, self.opt_steps, self._cache_slot, self._stamp, self._free]
        arrays += [self._pins, self._busy, self._hot_dirty]
        return sum(int(a.nbytes) for a in arrays)

    def directory_bytes(self) -> int:
        """RAM for the per-key directory outside the budget (index, slot keys, alive, slot map, dirty)."""
        index = int(self.index.table.nbytes)
        return index + sum(int(a.nbytes) for a in (self.alive, self.slot_keys, self._slot_row, self.dirty))

    def hot_slots(self) -> np.ndarray:
        """The slots whose rows are in RAM now."""
        return self._cache_slot[self._cache_slot >= 0]

    def configure_optimizer(self, kind: str, lr: float) -> None:
        check_optimizer(kind)
        self.optimizer, self.lr = kind, lr
        if kind != "rowwise_adagrad" and not self.adam_state:  # records gain opt_m / opt_v (zeros)
            arrays = {name: self.slot_array(name) for name in SLOT_ARRAYS}
            self.adam_state = True
            self._relayout(arrays)

    def slot_array(self, name: str) -> torch.Tensor:
        """Per-slot array: the directory's own, or a view of the row file after writing back hot rows."""
        if name in DIRECTORY:
            return super().slot_array(name)
        if name not in self.row_fields:  # opt_m / opt_v of a table that never ran Adam
            return torch.zeros(0, self.dim)
        self.flush()
        return torch.from_numpy(self.file.field(name))

    def flush(self) -> None:
        """Write every changed hot row back to the row file (they stay hot)."""
        self._write_back(np.flatnonzero(self._hot_dirty))

    def _write_back(self, rows: np.ndarray) -> None:
        """Write the changed ones of hot `rows` to their records, in slot order (neighbours share pages)."""
        dirty = rows[self._hot_dirty[rows]]
        if len(dirty):
            dirty = dirty[np.argsort(self._cache_slot[dirty])]
            self.file.write(self._cache_slot[dirty], self._records(dirty))
            self._hot_dirty[dirty] = False
            self.written_back += len(dirty)

    # --------------------------------------------------------------- hot tier
    def _records(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows), dtype=self.file.dtype)
        for name in self.row_fields:
            out[name] = getattr(self, name).numpy()[rows]
        return out

    def _allocate(self, count: int) -> np.ndarray:
        """`count` free hot rows, demoting the coldest unpinned rows when short."""
        if self._n_free < count:
            self._demote(count - self._n_free)
        self._n_free -= count
        return self._free[self._n_free : self._n_free + count].copy()

    def _demote(self, short: int) -> None:
        """Move at least `short` (and 1/16 of the hot rows, when that many may go) rows to the row file."""
        movable = np.flatnonzero((self._cache_slot >= 0) & ~self._busy & (self._pins == 0))
        available = len(movable)
        if available < short:
            raise ConfigError(
                "storage.tier.ram_bytes",
                f"table {self.name!r} holds {self.hot_rows} hot rows but one step needs "
                f"{self.hot_rows - available + short} of them in RAM at once",
                fix=f"raise ram_bytes to at least {(self.hot_rows - available + short) * self.row_bytes()}",
            )
        count = demotion_count(available, short, self.hot_rows)
        if count < available:
            score = coldness(self.tier.policy, self._stamp[movable], self.freq.numpy()[movable], self._tick)
            movable = movable[coldest(score, count, short, self._rng)]
        self._write_back(movable)
        self._drop(movable)
        self.demoted += len(movable)

    def _drop(self, rows: np.ndarray) -> None:
        """Hot rows back onto the free stack (their slots read from the file again)."""
        self._slot_row[self._cache_slot[rows]] = -1
        self._cache_slot[rows] = -1
        self._free[self._n_free : self._n_free + len(rows)] = rows
        self._n_free += len(rows)

    def _promote(self, slots: np.ndarray, distinct: bool = False) -> np.ndarray:
        """Hot row of each slot (>= 0; repeats allowed unless `distinct`), reading the cold ones from the
        row file in one batch."""
        rows = self._slot_row[slots].astype(np.int64)  # int32 per slot (RAM); torch indexes with int64
        cold = rows < 0
        if cold.any():
            hot = rows[~cold]
            self._busy[hot] = True
            need = slots[cold] if distinct else np.unique(slots[cold])
            try:
                new = self._allocate(len(need))
            finally:
                self._busy[hot] = False
            records = self.file.read(need)
            for name in self.row_fields:
                getattr(self, name).numpy()[new] = records[name]
            self._cache_slot[new] = need
            self._slot_row[need] = new
            self.promoted += len(need)
            if distinct:
                rows[cold] = new
            else:
                rows = self._slot_row[slots].astype(np.int64)
        self._tick += 1
        self._stamp[rows] = self._tick
        return rows

    def _train_rows(self, slots: torch.Tensor) -> torch.Tensor:
        at = slots.numpy()
        hit = at >= 0
        every = bool(hit.all())
        rows = self._promote(at if every else at[hit], distinct=True)
        self._hot_dirty[rows] = True  # freq moves now; backward updates the rest
        if every:
            return torch.from_numpy(rows)
        out = np.full(len(at), -1, dtype=np.int64)
        out[hit] = rows
        return torch.from_numpy(out)

    def _serve(self, slots: torch.Tensor) -> torch.Tensor:
        """Vectors through the tiers; a lookup with more distinct ids than half the hot rows goes in chunks."""
        hit = slots >= 0
        wanted = slots[hit].numpy()
        half = max(1, self.hot_rows // 2)
        if len(wanted) <= half:
            rows = slots.clone()
            rows[hit] = torch.from_numpy(self._promote(wanted))
            return self.read(rows)
        distinct, inverse = np.unique(wanted, return_inverse=True)
        vectors = torch.empty(len(distinct), self.dim)
        for start in range(0, len(distinct), half):
            rows = torch.from_numpy(self._promote(distinct[start : start + half]))
            vectors[start : start + len(rows)] = self.weight.index_select(0, rows)
        out = self.default_row.expand(len(slots), self.dim).clone()
        out[hit] = vectors[torch.from_numpy(inverse)]
        return out

    def _hold(self, rows: torch.Tensor, ctx: Any) -> None:
        held = rows.numpy()  # ctx keeps `rows` unchanged until backward
        if held.size and held.min() < 0:
            held = held[held >= 0]
        self._pins[held] += 1  # distinct rows: a plain scatter
        self._held[id(ctx)] = held
        weakref.finalize(ctx, self._unpin, id(ctx), self._pins)  # a graph freed without backward

    def _release(self, ctx: Any) -> None:
        self._unpin(id(ctx), self._pins)

    def _unpin(self, key: int, pins: np.ndarray) -> None:
        held = self._held.pop(key, None)
        if held is not None and pins is self._pins:
            pins[held] -= 1

    def _fresh_rows(self, slots: torch.Tensor) -> None:
        """New slots start hot: initial vector and zero state in free hot rows (written to disk on demotion)."""
        rows = self._allocate(len(slots))
        at = torch.from_numpy(rows)
        self.weight[at] = init_rows(len(slots), self.dim)
        for name in self.row_fields:
            if name != "weight":
                getattr(self, name)[at] = 0
        self.last_step[at] = self.step
        self._cache_slot[rows] = slots.numpy()
        self._slot_row[slots.numpy()] = rows
        self._hot_dirty[rows] = True
        self._tick += 1
        self._stamp[rows] = self._tick

    def _grow(self) -> None:
        self._resize(max(2 * self.capacity, 1))

    def _resize(self, capacity: int) -> None:
        """Grow the directory and the row file to `capacity` slots (new ones empty, their records zero)."""
        extra = capacity - self.capacity
        self.alive = torch.cat([self.alive, torch.zeros(extra, dtype=torch.bool)])
        self.slot_keys = torch.cat([self.slot_keys, torch.zeros(extra, dtype=torch.int64)])
        self._slot_row = np.concatenate([self._slot_row, np.full(extra, -1, dtype=np.int32)])
        self.file.resize(capacity)

    def write_slots(
        self,
        lengths: dict[str, int],
        slots: torch.Tensor,
        rows: dict[str, torch.Tensor],
        state: dict[str, torch.Tensor],
    ) -> None:
        """A delta's rows go straight to the row file (O(changed rows + hot rows), not O(table)); the hot tier
        restarts empty. A delta that shrinks the table or switches Adam state takes DynamicTable's full path."""
        if lengths["alive"] < self.capacity or (lengths["opt_m"] > 0) != self.adam_state:
            super().write_slots(lengths, slots, rows, state)
            return
        self.flush()
        self._reset_hot()  # hot copies of changed slots would be stale
        if lengths["alive"] > self.capacity:
            self._resize(lengths["alive"])
        records = np.zeros(len(slots), dtype=self.file.dtype)
        for name in self.row_fields:
            records[name] = rows[name].numpy()
        self.file.write(slots.numpy(), records)
        self.alive[slots] = rows["alive"]
        self.slot_keys[slots] = rows["slot_keys"]
        for name, value in state.items():
            setattr(self, name, value.detach().clone())
        self._reindex()

    def _remove(self, victims: torch.Tensor) -> None:
        slots = torch.nonzero(victims).squeeze(1).numpy()
        rows = self._slot_row[slots]
        rows = rows[rows >= 0]
        self._write_back(rows)  # a dead slot keeps its last values, as in a DynamicTable
        self._drop(rows)
        super()._remove(victims)

    # ------------------------------------------------------------ state dict
    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        """DynamicTable's state: per-slot arrays from the row file (views), the rest as they are."""
        for name in STATE:
            destination[prefix + name] = self.slot_array(name) if name in SLOT_ARRAYS else getattr(self, name)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """Every per-slot array goes to a new row file (the hot tier starts empty); the rest replaces in RAM."""
        problems = (missing_keys, unexpected_keys, error_msgs)
        arrays = checked_state(state_dict, prefix, self._template, strict, problems)
        if len(arrays) != len(STATE):
            return
        for name in STATE:
            if name not in SLOT_ARRAYS:
                setattr(self, name, arrays[name].detach().clone())
        self.adam_state = self.optimizer != "rowwise_adagrad"
        with self._lock:
            self._relayout({name: arrays[name] for name in SLOT_ARRAYS})
            self._reindex()

    def _template(self, name: str) -> torch.Tensor:
        """An empty tensor with the dtype and trailing shape of state array `name`."""
        if name not in SLOT_ARRAYS or name in DIRECTORY:
            return super().slot_array(name)
        return torch.zeros(0, self.dim) if name in ("weight", "opt_m", "opt_v") else super().slot_array(name)[:0]
