"""Admission of unknown ids into a dynamic table: exact pending counts or a counting Bloom filter.

An unknown id seen in a training lookup is counted (exactly, in sorted pending arrays, or in a
counting Bloom filter of bounded memory) and admitted once it reaches `min_count`, in that same lookup.
The counters are tensors the table keeps in its state_dict; these functions only compute on them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from recforge.config.features import BloomAdmission, CounterAdmission
from recforge.hashing import splitmix64


def bloom_layout(admission: BloomAdmission | CounterAdmission | None) -> tuple[int, int]:
    """(counters, hashes per key) of the Bloom filter `admission` asks for; (0, 0) for exact counting."""
    if not isinstance(admission, BloomAdmission):
        return 0, 0
    size = math.ceil(-admission.capacity * math.log(admission.fp_rate) / math.log(2) ** 2)
    return size, max(1, round(size / admission.capacity * math.log(2)))


def merge_sorted(
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


def find_sorted(keys: torch.Tensor, values: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """values[position of each wanted key in sorted `keys`], -1 where absent."""
    if len(keys) == 0:
        return torch.full_like(wanted, -1)
    wanted = wanted.contiguous()
    pos = torch.searchsorted(keys, wanted).clamp_(max=len(keys) - 1)
    return torch.where(keys[pos] == wanted, values[pos], -1)


def exact_count(
    pending_keys: torch.Tensor, pending_counts: torch.Tensor, keys: torch.Tensor, counts: torch.Tensor, min_count: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Counts so far of sorted unknown `keys` after adding `counts`, and the new pending (keys, counts):
    keys reaching `min_count` leave the pending arrays, the rest are kept or merged in."""
    pos = find_sorted(pending_keys, torch.arange(len(pending_keys)), keys)
    known = pos >= 0
    total = counts.clone()
    total[known] += pending_counts[pos[known]]
    done = total >= min_count
    pending_counts[pos[known & ~done]] = total[known & ~done]
    if (known & done).any():  # admitted: no longer pending
        drop = torch.ones(len(pending_keys), dtype=torch.bool)
        drop[pos[known & done]] = False
        pending_keys, pending_counts = pending_keys[drop], pending_counts[drop]
    fresh = ~known & ~done
    if fresh.any():
        pending_keys, pending_counts = merge_sorted(pending_keys, pending_counts, keys[fresh], total[fresh])
    return total, pending_keys, pending_counts


def bloom_count(bloom: torch.Tensor, hashes: int, keys: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Add counts to `hashes` counters per key in `bloom` (in place, saturating at 255); the estimate is
    their minimum."""
    h1 = splitmix64(keys.numpy().view(np.uint64))
    h2 = splitmix64(h1) | np.uint64(1)
    with np.errstate(over="ignore"):
        probes = h1[:, None] + np.arange(hashes, dtype=np.uint64)[None, :] * h2[:, None]
    at = torch.from_numpy((probes % np.uint64(len(bloom))).astype(np.int64)).sort(dim=1).values
    add = counts.unsqueeze(1).expand_as(at).clone()
    add[:, 1:][at[:, 1:] == at[:, :-1]] = 0  # a key whose probes coincide counts once per counter
    uniq, inverse = torch.unique(at.reshape(-1), return_inverse=True)
    added = torch.zeros(len(uniq), dtype=torch.int64).index_add_(0, inverse, add.reshape(-1))
    bloom[uniq] = (bloom[uniq].long() + added).clamp_(max=255).to(torch.uint8)
    return bloom[at].long().min(dim=1).values
