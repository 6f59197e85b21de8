"""Model outputs as task columns: a single-task model's logits [B] are one column of [B, T].

A task's loss names its link: `bce` outputs are logits (sigmoid gives the probability), `mse` outputs
are the prediction itself. Training, batch prediction and every serving backend use these two helpers,
so the three agree on what a score is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def task_columns(outputs: torch.Tensor) -> torch.Tensor:
    """[B] -> [B, 1]; [B, T] unchanged."""
    return outputs.unsqueeze(1) if outputs.dim() == 1 else outputs


def predictions(outputs: torch.Tensor, losses: Sequence[str]) -> torch.Tensor:
    """[B, T] (or [B]) outputs -> [B, T] predictions: sigmoid for bce tasks, the output itself for mse."""
    columns = task_columns(outputs)
    if all(loss == "bce" for loss in losses):
        return torch.sigmoid(columns)
    sigmoid = torch.tensor([loss == "bce" for loss in losses], device=columns.device)
    return torch.where(sigmoid, torch.sigmoid(columns), columns)


def scores(outputs: torch.Tensor, losses: Sequence[str]) -> torch.Tensor:
    """What serving returns: a single-task model's probabilities [B], a multi-task model's task scores [B, T]."""
    return torch.sigmoid(outputs) if outputs.dim() == 1 else predictions(outputs, losses)
