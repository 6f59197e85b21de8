"""Which rows a dynamic table evicts: idle too long, norm too small, then the least frequent over max_rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from recforge.config.features import Eviction


def eviction_mask(
    rules: Eviction, now: int, alive: torch.Tensor, slot_keys: torch.Tensor, slot_array: Callable[[str], torch.Tensor]
) -> torch.Tensor:
    """Mask over slots of the rows to drop at table step `now`. Over `max_rows` the least frequent go first
    (ties: longer idle, then smaller id). `slot_array` reads per-slot arrays lazily (a tiered table
    gathers them from its row file), so norms and frequencies are read only when a rule needs them."""
    last_step = slot_array("last_step")
    victims = torch.zeros(len(alive), dtype=torch.bool)
    if rules.max_idle_steps is not None:
        victims |= alive & (now - last_step > rules.max_idle_steps)
    if rules.min_norm is not None:
        victims |= alive & (slot_array("weight").norm(dim=1) < rules.min_norm)
    if rules.max_rows is not None:
        kept = torch.nonzero(alive & ~victims).squeeze(1)
        excess = len(kept) - rules.max_rows
        if excess > 0:
            freq = slot_array("freq")
            order = np.lexsort((slot_keys[kept].numpy(), last_step[kept].numpy(), freq[kept].numpy()))
            victims[kept[torch.from_numpy(order[:excess])]] = True
    return victims
