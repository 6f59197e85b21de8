"""`DynamicTable`: a collision-free embedding table keyed by int64 ids that grows on demand.

Slots are found through the `KeyIndex` (index.py); slots freed by eviction (eviction.py) are reused,
and when none is free the slot arrays double in size. Rows carry the vector, the number of training
lookups since admission (`freq`) and the table step of their last update (`last_step`). The table
step counts training lookups (forward calls in train mode), which is the trainer's global step for a
table read once per step. Unknown ids go through admission (admission.py); until admitted they read
the default vector and get no gradient; eval mode never inserts or counts. The row update runs
fused into backward (optimizer.py); the state is described in state.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from recforge.config.features import DynamicStorage
from recforge.embedding.dynamic.admission import bloom_count, bloom_layout, exact_count
from recforge.embedding.dynamic.eviction import eviction_mask
from recforge.embedding.dynamic.index import KeyIndex
from recforge.embedding.dynamic.optimizer import check_optimizer, lazy_adam, rowwise_adagrad
from recforge.embedding.dynamic.state import SLOT_ARRAYS, checked_state, read_rows, resized
from recforge.embedding.tables import init_rows


class DynamicTable(nn.Module):
    """int64 id -> row, collision-free and growing; admission, eviction and a fused row-wise optimizer."""

    weight: torch.Tensor
    alive: torch.Tensor
    slot_keys: torch.Tensor
    freq: torch.Tensor
    last_step: torch.Tensor
    opt_sum: torch.Tensor
    opt_m: torch.Tensor
    opt_v: torch.Tensor
    opt_steps: torch.Tensor
    step: torch.Tensor
    pending_keys: torch.Tensor
    pending_counts: torch.Tensor
    bloom: torch.Tensor
    default_row: torch.Tensor

    def __init__(self, dim: int, config: DynamicStorage | None = None) -> None:
        super().__init__()
        self.config = config or DynamicStorage(kind="dynamic")
        self.dim = dim
        cap = self.config.initial_capacity
        admission = self.config.admission
        self.min_count = admission.min_count if admission is not None else 1
        bloom_size, self.bloom_hashes = bloom_layout(admission)
        i64 = torch.int64
        for name, value in {
            "weight": torch.zeros(cap, dim),
            "alive": torch.zeros(cap, dtype=torch.bool),
            "slot_keys": torch.zeros(cap, dtype=i64),
            "freq": torch.zeros(cap, dtype=i64),
            "last_step": torch.zeros(cap, dtype=i64),
            "opt_sum": torch.zeros(cap),
            "opt_m": torch.zeros(0, dim),
            "opt_v": torch.zeros(0, dim),
            "opt_steps": torch.zeros(cap, dtype=i64),
            "step": torch.zeros((), dtype=i64),
            "pending_keys": torch.zeros(0, dtype=i64),
            "pending_counts": torch.zeros(0, dtype=i64),
            "bloom": torch.zeros(bloom_size, dtype=torch.uint8),
        }.items():
            self.register_buffer(name, value)
        fill = 0.0 if self.config.default == "zero" else float(self.config.default)
        self.register_buffer("default_row", torch.full((dim,), fill), persistent=False)
        self.optimizer, self.lr = "rowwise_adagrad", 0.01
        self.index = KeyIndex()
        self._scratch = np.empty(0, dtype=np.int32)  # _distinct_slots' work array (capacity cells, not state)
        self.anchor = torch.zeros((), requires_grad=True)  # lets backward reach the table (never updated)
        # delta checkpoints (embedding/delta.py; not state): rows changed and keys evicted since the last save
        self.dirty = torch.zeros(0, dtype=torch.bool)
        self.tombstones: list[torch.Tensor] = []

    # ------------------------------------------------------------------ public
    def __len__(self) -> int:
        return self.index.size

    @property
    def keys(self) -> torch.Tensor:
        """The ids in the table, in slot order."""
        return self.slot_keys[self.alive]

    @property
    def capacity(self) -> int:
        return int(self.weight.shape[0])

    def configure_optimizer(self, kind: str, lr: float) -> None:
        """The row update backward applies: 'rowwise_adagrad', or 'sparse_adam' / 'dense_adam' (lazy Adam)."""
        check_optimizer(kind)
        self.optimizer, self.lr = kind, lr
        if kind != "rowwise_adagrad" and self.opt_m.shape[0] != self.capacity:
            self.opt_m = torch.zeros(self.capacity, self.dim)
            self.opt_v = torch.zeros(self.capacity, self.dim)

    def slot_array(self, name: str) -> torch.Tensor:
        """One of SLOT_ARRAYS over every slot (first dim = capacity, or 0 for unused optimizer state).

        Here the module's own buffer; a tiered table gathers it from its tiers. Code that reads rows by
        slot outside the lookup path (eviction, deltas, inspection) goes through this.
        """
        return getattr(self, name)  # type: ignore[no-any-return]

    def rows_of(self, ids: torch.Tensor) -> torch.Tensor:
        """Slot per id (any shape), -1 for ids not in the table; never inserts."""
        return self.index.find(ids.reshape(-1)).view(ids.shape)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[...] int64 ids -> [..., D]; in train mode counts, admits and hooks the row update into backward."""
        flat = ids.reshape(-1)
        if not self.training:
            return self._serve(self.index.find(flat)).view(*ids.shape, self.dim)
        slots, inverse = self._train_slots(flat)  # per distinct id
        if torch.is_grad_enabled():
            out = _FusedLookup.apply(self.anchor, self, slots, inverse)
        else:
            out = self.read(slots).index_select(0, inverse)
        return out.view(*ids.shape, self.dim)

    @torch.no_grad()
    def evict(self, step: int | None = None) -> int:
        """Drop rows idle for more than max_idle_steps, with norm below min_norm, then the least frequent
        (ties: longer idle, then smaller id) above max_rows; returns how many rows went."""
        now = int(self.step) if step is None else step
        victims = eviction_mask(self.config.eviction, now, self.alive, self.slot_keys, self.slot_array)
        count = int(victims.sum())
        if count:
            self._remove(victims)
        return count

    def _remove(self, victims: torch.Tensor) -> None:
        """Drop the rows of the slots in the `victims` mask (their slots become free)."""
        self.alive &= ~victims
        self.tombstones.append(self.slot_keys[victims])
        self.mark_dirty(torch.nonzero(victims).squeeze(1))
        self._reindex()

    def write_slots(
        self,
        lengths: dict[str, int],
        slots: torch.Tensor,
        rows: dict[str, torch.Tensor],
        state: dict[str, torch.Tensor],
    ) -> None:
        """Apply changed rows by slot (a delta): slot arrays resized to `lengths` (new rows zero, as the table
        grows), `rows[name]` written at `slots`, and the rest of the state (`step`, admission) replaced."""
        full: dict[str, torch.Tensor] = {}
        for array in SLOT_ARRAYS:
            value = resized(self.slot_array(array), lengths[array])
            if value.shape[0]:
                value[slots] = rows[array]
            full[array] = value
        self.load_state_dict({**full, **state})

    def mark_dirty(self, slots: torch.Tensor) -> None:
        """Record rows changed since the last delta save (the dirty mask grows with the slot arrays)."""
        if len(self.dirty) < self.capacity:
            self.dirty = torch.cat([self.dirty, torch.zeros(self.capacity - len(self.dirty), dtype=torch.bool)])
        self.dirty[slots] = True

    def _reindex(self) -> None:
        slots = torch.nonzero(self.alive).squeeze(1)
        self.index = KeyIndex(len(slots))
        self.index.insert(self.slot_keys[slots], slots)

    # --------------------------------------------------------------- lookups
    @torch.no_grad()
    def _train_slots(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row per distinct id (-1: not admitted) and the inverse map; counts, admits, bumps freq."""
        self.step += 1
        found = self.index.find(flat)
        if bool((found >= 0).all()):  # every id has a row: distinct ids are distinct slots, no sort needed
            slots, inverse, counts = self._distinct_slots(found)
        else:
            uniq, inverse, counts = torch.unique(flat, return_inverse=True, return_counts=True)
            slots = torch.empty_like(uniq).scatter_(0, inverse, found)  # duplicates agree
            missing = slots < 0
            slots[missing] = self._admit(uniq[missing], counts[missing])
        # every row this step changes (freq, admission, and the update backward applies) is marked here
        self.mark_dirty(slots[slots >= 0])
        rows = self._train_rows(slots)
        at, add = rows.numpy(), counts.numpy()
        hit = at >= 0
        freq = self.freq.numpy()
        freq[at[hit]] += add[hit]  # distinct rows: a plain scatter
        return rows, inverse

    def _train_rows(self, slots: torch.Tensor) -> torch.Tensor:
        """Where the rows of distinct `slots` (-1: none) are read and updated: here the slots themselves; a
        tiered table promotes cold rows into RAM and answers their hot rows."""
        return slots

    def _serve(self, slots: torch.Tensor) -> torch.Tensor:
        """Vectors of an eval lookup's slots (repeats allowed, -1: the default); nothing is counted."""
        return self.read(slots)

    def read(self, slots: torch.Tensor) -> torch.Tensor:
        """Rows at (hot-tier) `slots`, the default vector where a slot is -1; nothing is counted or moved."""
        return read_rows(self.weight, self.default_row, slots)

    def _hold(self, rows: torch.Tensor, ctx: Any) -> None:
        """Keep `rows` where they are until `ctx`'s backward (a tiered table must not demote them)."""

    def _release(self, ctx: Any) -> None:
        """The backward of `ctx` ran: its rows may move again."""

    def _distinct_slots(self, found: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Distinct slots of a lookup (all >= 0), inverse and counts, without torch.unique's sort (~3x its
        speed at 4k ids): each slot's cell of a capacity-sized scratch array names one position holding it."""
        if len(self._scratch) < self.capacity:
            self._scratch = np.empty(self.capacity, dtype=np.int32)
        at = found.numpy()
        pos = np.arange(len(at), dtype=np.int32)
        self._scratch[at] = pos  # with repeats one position wins (whichever): all of them read it back
        rep = self._scratch[at]
        first = rep == pos
        inverse = (np.cumsum(first) - 1)[rep]  # rank of the representative among the distinct slots
        counts = np.bincount(inverse, minlength=int(first.sum()))
        return torch.from_numpy(at[first]), torch.from_numpy(inverse), torch.from_numpy(counts)

    def _admit(self, keys: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Count sorted unknown keys; insert those reaching min_count. Slot per key, -1 if not admitted."""
        if self.min_count <= 1:
            admitted = torch.ones(len(keys), dtype=torch.bool)
        elif self.bloom_hashes:
            admitted = self._bloom_count(keys, counts) >= self.min_count
        else:
            admitted = self._exact_count(keys, counts) >= self.min_count
        out = torch.full_like(keys, -1)
        if admitted.any():
            out[admitted] = self._insert(keys[admitted])
        return out

    def _insert(self, keys: torch.Tensor) -> torch.Tensor:
        """Give sorted new keys the lowest free slots (growing x2 when short) and fresh rows."""
        free = torch.nonzero(~self.alive).squeeze(1)
        while len(free) < len(keys):
            self._grow()
            free = torch.nonzero(~self.alive).squeeze(1)
        slots = free[: len(keys)]
        self.alive[slots] = True
        self.slot_keys[slots] = keys
        self._fresh_rows(slots)
        self.index.insert(keys, slots)
        return slots

    def _exact_count(self, keys: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        total, self.pending_keys, self.pending_counts = exact_count(
            self.pending_keys, self.pending_counts, keys, counts, self.min_count
        )
        return total

    def _bloom_count(self, keys: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return bloom_count(self.bloom, self.bloom_hashes, keys, counts)

    def _fresh_rows(self, slots: torch.Tensor) -> None:
        """New rows for new slots: initial vector, zero counters and optimizer state."""
        self.weight[slots] = init_rows(len(slots), self.dim)
        self.freq[slots] = 0
        self.last_step[slots] = self.step
        self.opt_sum[slots] = 0.0
        self.opt_steps[slots] = 0
        if self.opt_m.shape[0]:
            self.opt_m[slots] = 0.0
            self.opt_v[slots] = 0.0

    def _grow(self) -> None:
        cap = self.capacity
        for name in SLOT_ARRAYS:
            old = getattr(self, name)
            if old.shape[0] == cap:
                new = torch.zeros(max(2 * cap, 1), *old.shape[1:], dtype=old.dtype)
                new[:cap] = old
                setattr(self, name, new)

    # ------------------------------------------------------------- optimizer
    @torch.no_grad()
    def _apply_grad(self, slots: torch.Tensor, valid: torch.Tensor, grad: torch.Tensor) -> None:
        """Row-wise update of the admitted rows a lookup read (one per distinct id), fused in backward."""
        if not valid.any():
            return
        if bool(valid.all()):
            uniq, g = slots, grad.float()
        else:
            uniq, g = slots[valid], grad[valid].float()
        self.last_step.index_fill_(0, uniq, int(self.step))
        if self.optimizer == "rowwise_adagrad":
            rowwise_adagrad(self.weight, self.opt_sum, uniq, g, self.lr)
        else:
            lazy_adam(self.weight, (self.opt_m, self.opt_v, self.opt_steps), uniq, g, self.lr)

    # ------------------------------------------------------------ state dict
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
        """Replace every array (sizes vary with the number of ids) instead of copying into it."""
        problems = (missing_keys, unexpected_keys, error_msgs)
        for name, value in checked_state(state_dict, prefix, lambda n: getattr(self, n), strict, problems).items():
            setattr(self, name, value.detach().clone())
        if self.optimizer != "rowwise_adagrad" and self.opt_m.shape[0] != self.capacity:
            self.configure_optimizer(self.optimizer, self.lr)
        self._reindex()


class _FusedLookup(torch.autograd.Function):
    """rows[inverse] forward; backward sums the gradient per distinct id and applies the table's update."""

    @staticmethod
    def forward(
        ctx: Any, anchor: torch.Tensor, table: DynamicTable, slots: torch.Tensor, inverse: torch.Tensor
    ) -> torch.Tensor:
        ctx.table, ctx.slots, ctx.inverse = table, slots, inverse
        table._hold(slots, ctx)
        return table.read(slots).index_select(0, inverse)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, None, None]:
        table: DynamicTable = ctx.table
        # index_put_ with accumulate: ~2x faster than index_add_ on CPU for this [ids, D] -> [distinct, D] sum
        summed = torch.zeros(len(ctx.slots), table.dim).index_put_((ctx.inverse,), grad.float(), accumulate=True)
        table._apply_grad(ctx.slots, ctx.slots >= 0, summed)
        table._release(ctx)
        return None, None, None, None


def dynamic_tables(model: nn.Module) -> list[DynamicTable]:
    """Every dynamic (and tiered) table in `model`."""
    return [m for m in model.modules() if isinstance(m, DynamicTable)]


def evict_all(model: nn.Module) -> int:
    """Run every dynamic table's eviction (each on its own step); rows evicted in all."""
    return sum(table.evict() for table in dynamic_tables(model))
