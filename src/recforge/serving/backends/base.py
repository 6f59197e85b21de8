"""The backend contract: a runtime that turns a model Batch into click probabilities, chosen by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from recforge.batch import Batch
from recforge.bundle import Bundle
from recforge.registry import Registry


class Backend(Protocol):
    """Scores the rows of a Batch; built once per loaded bundle, then called from any request thread."""

    name: str

    def probabilities(self, batch: Batch) -> np.ndarray:
        """Click probabilities, float64 [B]; a multi-task bundle's task scores [B, T] (`bundle.tasks` order)."""
        ...


BackendFactory = Callable[[Bundle, "int | None"], Backend]
BACKENDS: Registry[BackendFactory] = Registry("serving backend")


def make_backend(name: str, bundle: Bundle, threads: int | None = None) -> Backend:
    """The backend registered as `name` for `bundle`; `threads` caps its intra-op threads (None: library default)."""
    return BACKENDS.get(name, yaml_path="serving.backend")(bundle, threads)
