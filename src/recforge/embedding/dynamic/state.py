"""What a dynamic table's state is, shared by `DynamicTable`, `TieredTable` and the delta files.

Everything (slot keys, vectors, freq, steps, optimizer state, admission counters) is a tensor in the
module's state_dict, so bundles and checkpoints store it in safetensors; loading replaces the arrays
whatever their size. `read_rows` is the one way rows are read by slot, tiered or not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

# per-slot arrays (first dim = capacity); the optimizer ones may be empty until that optimizer is used
SLOT_ARRAYS = ("weight", "alive", "slot_keys", "freq", "last_step", "opt_sum", "opt_m", "opt_v", "opt_steps")
STATE = (*SLOT_ARRAYS, "step", "pending_keys", "pending_counts", "bloom")


def read_rows(weight: torch.Tensor, default_row: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """Rows of `weight` at `slots`, the default vector where a slot is -1 (not admitted)."""
    valid = slots >= 0
    if bool(valid.all()):
        return weight.index_select(0, slots)
    rows = weight.index_select(0, slots.clamp(min=0))
    return torch.where(valid.unsqueeze(1), rows, default_row)


def resized(value: torch.Tensor, length: int) -> torch.Tensor:
    """A copy of `value` with `length` rows: kept rows copied, new rows zero (as DynamicTable grows)."""
    if value.shape[0] == length:
        return value.clone()
    out = torch.zeros(length, *value.shape[1:], dtype=value.dtype)
    keep = min(length, value.shape[0])
    out[:keep] = value[:keep]
    return out


def checked_state(
    state_dict: Mapping[str, Any],
    prefix: str,
    template: Callable[[str], torch.Tensor],
    strict: bool,
    problems: tuple[list[str], list[str], list[str]],
) -> dict[str, torch.Tensor]:
    """The STATE arrays under `prefix` whose dtype and trailing shape fit `template(name)`; missing keys,
    unexpected keys and misfits go to `problems` (torch's missing_keys, unexpected_keys, error_msgs)."""
    missing_keys, unexpected_keys, error_msgs = problems
    arrays: dict[str, torch.Tensor] = {}
    for name in STATE:
        key = prefix + name
        if key not in state_dict:
            missing_keys.append(key)
            continue
        value, current = state_dict[key], template(name)
        if value.dtype != current.dtype or value.shape[1:] != current.shape[1:]:
            error_msgs.append(
                f"{key}: {tuple(value.shape)} {value.dtype} does not fit {tuple(current.shape)} {current.dtype}"
            )
            continue
        arrays[name] = value
    if strict:
        unexpected_keys.extend(
            k for k in state_dict if k.startswith(prefix) and k[len(prefix) :].split(".")[0] not in STATE
        )
    return arrays
