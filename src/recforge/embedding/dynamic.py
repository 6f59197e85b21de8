"""A collision-free embedding table keyed by int64 ids that grows on demand (`storage: {kind: dynamic}`).

Index (`KeyIndex`): an open-addressing hash table (linear probing, load <= 1/2) held in one
[cells, 2] int64 array of (key, slot), probed for a whole batch at once in numpy on zero-copy views:
first every id's home cell, then 8-cell windows for the few left. A cell stores the full int64 key and
a hit compares it exactly, so every int64 is its own row whatever its value (no modulus, no
collisions). A sorted key array with searchsorted was tried first: at 1M keys its binary search (20
dependent loads per id) cost ~290 us per 2k distinct ids against ~20 us for a home-cell gather. The
index is derived state, rebuilt from the slot keys on load and after eviction. Slots freed by eviction
are reused; when none is free the slot arrays double in size.

Rows carry the vector, the number of training lookups since admission (`freq`) and the table step of
their last update (`last_step`). The table step counts training lookups (forward calls in train mode),
which is the trainer's global step for a table read once per step.

Admission: an unknown id seen in a training lookup is counted (exactly, or in a counting Bloom filter
of bounded memory) and admitted once it reaches `min_count`, in that same lookup. Until then it reads
the default vector and gets no gradient; eval mode treats ids the same way and never inserts or counts.

Optimizer (design choice): the row update runs inside the table, fused into backward (a custom
autograd function over the gathered rows), with the optimizer state kept per row in the table's own
slot arrays, so it is allocated, reset, evicted and saved with the row. The trainer's optimizers
never see a dynamic table (it has no nn.Parameter); `build_optimizers` hands the table
`train.optimizer.sparse` and its lr. `rowwise_adagrad` runs the same rule as `RowwiseAdagrad`;
`sparse_adam` and `dense_adam` run lazy (row-wise) Adam with per-row step counts. Users switch
optimizers in config exactly as for static tables; weight decay does not apply to dynamic rows.

Everything (slot keys, vectors, freq, steps, optimizer state, admission counters) is a tensor in the
module's state_dict, so bundles and checkpoints store it in safetensors; loading replaces the arrays
whatever their size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from recforge.config.features import BloomAdmission, DynamicStorage
from recforge.embedding.tables import TABLES, init_rows
from recforge.schema import TableSpec

# per-slot arrays (first dim = capacity); the optimizer ones may be empty until that optimizer is used
SLOT_ARRAYS = ("weight", "alive", "slot_keys", "freq", "last_step", "opt_sum", "opt_m", "opt_v", "opt_steps")
STATE = (*SLOT_ARRAYS, "step", "pending_keys", "pending_counts", "bloom")
ADAM_BETAS = (0.9, 0.999)
PROBE_WINDOW = 8
EPS = 1e-8


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer on uint64 (stable across processes and machines)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))  # type: ignore[no-any-return]


def _merge(
    keys: torch.Tensor, values: torch.Tensor, new_keys: torch.Tensor, new_values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Insert sorted, distinct `new_keys` (none already in sorted `keys`) with their values in one O(n + m) pass."""
    at = torch.searchsorted(keys, new_keys) + torch.arange(len(new_keys))
    old = torch.ones(len(keys) + len(new_keys), dtype=torch.bool)
    old[at] = False
    merged_keys = torch.empty(len(old), dtype=keys.dtype)
    merged_values = torch.empty(len(old), dtype=values.dtype)
    merged_keys[at], merged_keys[old] = new_keys, keys
    merged_values[at], merged_values[old] = new_values, values
    return merged_keys, merged_values


class KeyIndex:
    """int64 key -> slot by open addressing (linear probing), vectorized over batches of keys.

    Derived state: rebuilt from the table's slot keys on load and after eviction (no tombstones).
    """

    def __init__(self, size: int = 0) -> None:
        cells = 16
        while cells < 2 * size:
            cells *= 2
        self.table = torch.zeros(cells, 2, dtype=torch.int64)  # per cell: key, slot (-1 = empty)
        self.table[:, 1] = -1
        self.size = 0

    def _home(self, keys: torch.Tensor) -> torch.Tensor:
        hashed = _mix64(keys.contiguous().numpy().view(np.uint64)) & np.uint64(len(self.table) - 1)
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


def resized(value: torch.Tensor, length: int) -> torch.Tensor:
    """A copy of `value` with `length` rows: kept rows copied, new rows zero (as DynamicTable grows)."""
    if value.shape[0] == length:
        return value.clone()
    out = torch.zeros(length, *value.shape[1:], dtype=value.dtype)
    keep = min(length, value.shape[0])
    out[:keep] = value[:keep]
    return out


def _find(keys: torch.Tensor, values: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """values[position of each wanted key in sorted `keys`], -1 where absent."""
    if len(keys) == 0:
        return torch.full_like(wanted, -1)
    wanted = wanted.contiguous()
    pos = torch.searchsorted(keys, wanted).clamp_(max=len(keys) - 1)
    return torch.where(keys[pos] == wanted, values[pos], -1)


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
        self.bloom_hashes = 0
        bloom_size = 0
        if isinstance(admission, BloomAdmission):
            bloom_size = math.ceil(-admission.capacity * math.log(admission.fp_rate) / math.log(2) ** 2)
            self.bloom_hashes = max(1, round(bloom_size / admission.capacity * math.log(2)))
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
        if kind not in ("rowwise_adagrad", "sparse_adam", "dense_adam"):
            raise ValueError(f"dynamic tables support rowwise_adagrad, sparse_adam, dense_adam, not {kind!r}")
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
            out = _read(self, slots).index_select(0, inverse)
        return out.view(*ids.shape, self.dim)

    @torch.no_grad()
    def evict(self, step: int | None = None) -> int:
        """Drop rows idle for more than max_idle_steps, with norm below min_norm, then the least frequent
        (ties: longer idle, then smaller id) above max_rows; returns how many rows went."""
        rules = self.config.eviction
        now = int(self.step) if step is None else step
        alive, last_step = self.alive, self.slot_array("last_step")
        victims = torch.zeros(self.capacity, dtype=torch.bool)
        if rules.max_idle_steps is not None:
            victims |= alive & (now - last_step > rules.max_idle_steps)
        if rules.min_norm is not None:
            victims |= alive & (self.slot_array("weight").norm(dim=1) < rules.min_norm)
        if rules.max_rows is not None:
            kept = torch.nonzero(alive & ~victims).squeeze(1)
            excess = len(kept) - rules.max_rows
            if excess > 0:
                freq = self.slot_array("freq")
                order = np.lexsort((self.slot_keys[kept].numpy(), last_step[kept].numpy(), freq[kept].numpy()))
                victims[kept[torch.from_numpy(order[:excess])]] = True
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
        return _read(self, slots)

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
        pos = _find(self.pending_keys, torch.arange(len(self.pending_keys)), keys)
        known = pos >= 0
        total = counts.clone()
        total[known] += self.pending_counts[pos[known]]
        done = total >= self.min_count
        self.pending_counts[pos[known & ~done]] = total[known & ~done]
        if (known & done).any():  # admitted: no longer pending
            drop = torch.ones(len(self.pending_keys), dtype=torch.bool)
            drop[pos[known & done]] = False
            self.pending_keys, self.pending_counts = self.pending_keys[drop], self.pending_counts[drop]
        fresh = ~known & ~done
        if fresh.any():
            self.pending_keys, self.pending_counts = _merge(
                self.pending_keys, self.pending_counts, keys[fresh], total[fresh]
            )
        return total

    def _bloom_count(self, keys: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Add counts to k counters per key (saturating at 255); the estimate is their minimum."""
        h1 = _mix64(keys.numpy().view(np.uint64))
        h2 = _mix64(h1) | np.uint64(1)
        with np.errstate(over="ignore"):
            probes = h1[:, None] + np.arange(self.bloom_hashes, dtype=np.uint64)[None, :] * h2[:, None]
        at = torch.from_numpy((probes % np.uint64(len(self.bloom))).astype(np.int64)).sort(dim=1).values
        add = counts.unsqueeze(1).expand_as(at).clone()
        add[:, 1:][at[:, 1:] == at[:, :-1]] = 0  # a key whose probes coincide counts once per counter
        uniq, inverse = torch.unique(at.reshape(-1), return_inverse=True)
        added = torch.zeros(len(uniq), dtype=torch.int64).index_add_(0, inverse, add.reshape(-1))
        self.bloom[uniq] = (self.bloom[uniq].long() + added).clamp_(max=255).to(torch.uint8)
        return self.bloom[at].long().min(dim=1).values

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
        if self.optimizer == "rowwise_adagrad":  # slots are distinct: gather, update, scatter
            total = self.opt_sum.index_select(0, uniq).add_(g.square().mean(dim=1))
            self.opt_sum.index_copy_(0, uniq, total)
            scale = total.sqrt_().add_(EPS).reciprocal_().mul_(-self.lr)
            self.weight.index_add_(0, uniq, g * scale.unsqueeze(1))  # one read-modify-write pass
            return
        b1, b2 = ADAM_BETAS  # distinct slots: index_select / index_copy_ (cheaper than advanced indexing)
        m = self.opt_m.index_select(0, uniq).mul_(b1).add_(g, alpha=1 - b1)
        v = self.opt_v.index_select(0, uniq).mul_(b2).addcmul_(g, g, value=1 - b2)
        steps = self.opt_steps.index_select(0, uniq).add_(1)
        self.opt_m.index_copy_(0, uniq, m)
        self.opt_v.index_copy_(0, uniq, v)
        self.opt_steps.index_copy_(0, uniq, steps)
        t = steps.unsqueeze(1).float()
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        self.weight.index_add_(0, uniq, -self.lr * m_hat / (v_hat.sqrt() + EPS))

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
        for name in STATE:
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            value = state_dict[key]
            current = getattr(self, name)
            if value.dtype != current.dtype or value.shape[1:] != current.shape[1:]:
                error_msgs.append(
                    f"{key}: {tuple(value.shape)} {value.dtype} does not fit {tuple(current.shape)} {current.dtype}"
                )
                continue
            setattr(self, name, value.detach().clone())
        if strict:
            unexpected_keys.extend(
                k for k in state_dict if k.startswith(prefix) and k[len(prefix) :].split(".")[0] not in STATE
            )
        if self.optimizer != "rowwise_adagrad" and self.opt_m.shape[0] != self.capacity:
            self.configure_optimizer(self.optimizer, self.lr)
        self._reindex()


def _read(table: DynamicTable, slots: torch.Tensor) -> torch.Tensor:
    """Rows of the slots, the default vector where a slot is -1 (not admitted)."""
    valid = slots >= 0
    if bool(valid.all()):
        return table.weight.index_select(0, slots)
    rows = table.weight.index_select(0, slots.clamp(min=0))
    return torch.where(valid.unsqueeze(1), rows, table.default_row)


class _FusedLookup(torch.autograd.Function):
    """rows[inverse] forward; backward sums the gradient per distinct id and applies the table's update."""

    @staticmethod
    def forward(
        ctx: Any, anchor: torch.Tensor, table: DynamicTable, slots: torch.Tensor, inverse: torch.Tensor
    ) -> torch.Tensor:
        ctx.table, ctx.slots, ctx.inverse = table, slots, inverse
        table._hold(slots, ctx)
        return _read(table, slots).index_select(0, inverse)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, None, None]:
        table: DynamicTable = ctx.table
        # index_put_ with accumulate: ~2x faster than index_add_ on CPU for this [ids, D] -> [distinct, D] sum
        summed = torch.zeros(len(ctx.slots), table.dim).index_put_((ctx.inverse,), grad.float(), accumulate=True)
        table._apply_grad(ctx.slots, ctx.slots >= 0, summed)
        table._release(ctx)
        return None, None, None, None


@TABLES.register("dynamic")
def build_dynamic(spec: TableSpec, dim: int) -> nn.Module:
    """A DynamicTable, or with `tier:` set a TieredTable (hot rows in RAM, the rest in a row file)."""
    config = DynamicStorage.model_validate(spec.storage)
    if config.tier is None:
        return DynamicTable(dim, config)
    from recforge.embedding.tiered import TieredTable  # the tiered table builds on this module

    return TieredTable(dim, config, name=spec.name)


def dynamic_tables(model: nn.Module) -> list[DynamicTable]:
    return [m for m in model.modules() if isinstance(m, DynamicTable)]


def evict_all(model: nn.Module) -> int:
    """Run every dynamic table's eviction (each on its own step); rows evicted in all."""
    return sum(table.evict() for table in dynamic_tables(model))
