"""Scoring a model over evaluation batches: outputs are collected first and metrics computed once over all of them.

The two steps are apart so that several training processes can pool their collected outputs (exact AUC over
every rank's rows, `train/distributed/evaluation.py`) before the one metric computation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from recforge.batch import Batch
from recforge.config.tasks import Task
from recforge.train.metrics import MetricSpec, compute, parse_metrics


def autocast(precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CPU (AVX-512 bf16 kernels) or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict_logits(
    model: nn.Module, batches: Iterable[Batch], precision: str = "fp32"
) -> Iterator[tuple[Batch, np.ndarray]]:
    """(batch, float64 outputs [B] or [B, T]) per batch, in eval mode without gradients."""
    model.eval()
    with torch.inference_mode(), autocast(precision):
        for batch in batches:
            yield batch, model(batch).float().numpy().astype(np.float64)


@dataclass
class Outputs:
    """Everything the metrics need from an evaluation pass: label columns, model outputs [N, T], group keys."""

    labels: dict[str, np.ndarray]
    columns: np.ndarray
    keys: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return len(self.columns)

    @staticmethod
    def concat(parts: list[Outputs]) -> Outputs:
        """The rows of every part, in order (parts without rows are skipped)."""
        parts = [p for p in parts if p.rows]
        if not parts:
            return Outputs({}, np.zeros((0, 0)), {})
        return Outputs(
            {k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels},
            np.concatenate([p.columns for p in parts]),
            {k: np.concatenate([p.keys[k] for p in parts]) for k in parts[0].keys},
        )


def collect_outputs(
    model: nn.Module, batches: Iterable[Batch], tasks: tuple[Task, ...], precision: str = "fp32"
) -> Outputs:
    """The labels of `tasks`, the model's outputs and the batches' extra (group-key) columns over all batches."""
    labels: dict[str, list[np.ndarray]] = {t.label: [] for t in tasks}
    outputs: list[np.ndarray] = []
    keys: dict[str, list[np.ndarray]] = {}
    for batch, out in predict_logits(model, batches, precision):
        for name in labels:
            labels[name].append(batch.labels[name].numpy())
        outputs.append(out.reshape(len(out), -1))
        for name, values in batch.extras.items():
            keys.setdefault(name, []).append(np.asarray(values))
    if not outputs:
        return Outputs({}, np.zeros((0, 0)), {})
    return Outputs(
        {k: np.concatenate(v) for k, v in labels.items()},
        np.concatenate(outputs),
        {k: np.concatenate(v) for k, v in keys.items()},
    )


def score_outputs(outputs: Outputs, tasks: tuple[Task, ...], mean: bool = False) -> dict[str, float]:
    """Each task's metrics (`ctr/auc`; bare names for an unnamed task); `mean` adds bare means over tasks."""
    if not outputs.rows:
        return {}
    metrics: dict[str, float] = {}
    for t, task in enumerate(tasks):
        found = compute(
            parse_metrics(list(task.metrics)),
            outputs.labels[task.label],
            outputs.columns[:, t],
            outputs.keys,
            link="sigmoid" if task.loss == "bce" else "identity",
        )
        metrics.update({task.key(k): v for k, v in found.items()})
    if mean:
        for name in dict.fromkeys(m for task in tasks for m in task.metrics):
            metrics[name] = float(np.mean([metrics[t.key(name)] for t in tasks if name in t.metrics]))
    return metrics


def evaluate(
    model: nn.Module, batches: Iterable[Batch], specs: list[MetricSpec], label: str, precision: str = "fp32"
) -> dict[str, float]:
    """Metrics of a single-task model over all batches (scores gathered, then computed once)."""
    task = Task("", label, metrics=tuple(s.name for s in specs))
    return evaluate_tasks(model, batches, (task,), precision)


def evaluate_tasks(
    model: nn.Module, batches: Iterable[Batch], tasks: tuple[Task, ...], precision: str = "fp32", mean: bool = False
) -> dict[str, float]:
    """Each task's metrics over all batches of this process (`ctr/auc`; `mean` adds bare means over tasks)."""
    return score_outputs(collect_outputs(model, batches, tasks, precision), tasks, mean)
