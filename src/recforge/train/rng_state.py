"""Every random stream a training step draws from, captured with a checkpoint and restored on resume.

A resumed run must draw the same dropout masks and new embedding rows as the uninterrupted run
would: torch's global generator (torch dropout, row init), the NumPy generators modules hold
(FastDropout's masks) and the Python / NumPy globals. The loader's shuffle is not here: it is
seeded by epoch number (BatchLoader.epoch), so the data position alone restores it.
"""

from __future__ import annotations

import random
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from recforge.errors import BundleError


def module_generators(model: nn.Module) -> dict[str, np.random.Generator]:
    """NumPy generators held by the model's modules, keyed `module.attribute` (e.g. `deep.mlp.2.rng`)."""
    return {
        f"{name}.{attr}" if name else attr: value
        for name, module in model.named_modules()
        for attr, value in vars(module).items()
        if isinstance(value, np.random.Generator)
    }


def capture(model: nn.Module) -> dict[str, Any]:
    """The state of every generator, as tensors and plain values (what `save_state` stores)."""
    kind, key, pos, has_gauss, gauss = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, key.tolist(), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
        "modules": {name: gen.bit_generator.state for name, gen in module_generators(model).items()},
    }


def restore(model: nn.Module, state: dict[str, Any], where: str) -> None:
    """Put every generator back where `capture` found it; `where` names the checkpoint in errors."""
    generators = module_generators(model)
    if set(generators) != set(state["modules"]):
        raise BundleError(
            f"{where}: the checkpoint's random generators {sorted(state['modules'])} do not match the model's "
            f"{sorted(generators)}\n  fix: resume with the config the run was started with, or train without --resume"
        )
    torch.set_rng_state(state["torch"])
    kind, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    for name, generator in generators.items():
        generator.bit_generator.state = state["modules"][name]
