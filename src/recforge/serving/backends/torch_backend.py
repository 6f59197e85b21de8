"""The default backend: the bundle's torch model in inference mode, exactly what `recforge predict` runs."""

from __future__ import annotations

import numpy as np
import torch

from recforge.batch import Batch
from recforge.bundle import Bundle
from recforge.models.outputs import scores
from recforge.serving.backends.base import BACKENDS


@BACKENDS.register("torch")
class TorchBackend:
    """sigmoid(model(batch)) with the same ops as bundle.predict.score_table, so both give the same numbers."""

    name = "torch"

    def __init__(self, bundle: Bundle, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)  # process-wide: torch has no per-model thread pool
        self.model = bundle.model.eval()
        self.losses = bundle.losses

    def probabilities(self, batch: Batch) -> np.ndarray:
        with torch.inference_mode():
            outputs = self.model(batch).float()
        return scores(outputs, self.losses).numpy().astype(np.float64)
