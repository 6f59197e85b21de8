"""Ranking-quality metrics of binary predictions: AUC, GAUC grouped by a key, logloss.

Metric names in YAML: `auc`, `logloss`, `gauc@COLUMN` (per-group AUC weighted by group size,
over groups with both classes, the usual industry definition), `mse` (of the predicted probability,
i.e. the Brier score, or of the raw output for a regression task).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recforge.errors import ConfigError

HIGHER_IS_BETTER = {"auc": True, "gauc": True, "logloss": False, "mse": False}


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank (what the Mann-Whitney AUC needs)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present.

    >>> auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    labels = np.asarray(labels) > 0.5
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities."""
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Size-weighted mean of per-group AUC over groups holding both classes (vectorized)."""
    labels = np.asarray(labels) > 0.5
    _, group = np.unique(groups, return_inverse=True)
    order = np.lexsort((np.asarray(scores, dtype=np.float64), group))
    g, y, s = group[order], labels[order], np.asarray(scores, dtype=np.float64)[order]
    # ranks within group with ties averaged: key = (group, score) runs
    new_run = np.concatenate([[True], (np.diff(g) != 0) | (np.diff(s) != 0)])
    run_id = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    run_len = np.diff(np.concatenate([run_start, [len(s)]]))
    group_start = np.flatnonzero(np.concatenate([[True], np.diff(g) != 0]))
    pos_in_group_start = np.repeat(group_start, np.diff(np.concatenate([group_start, [len(s)]])))
    first_rank = run_start[run_id] - pos_in_group_start + 1
    rank = first_rank + (run_len[run_id] - 1) / 2.0
    n_groups = g.max() + 1 if len(g) else 0
    n = np.bincount(g, minlength=n_groups).astype(np.float64)
    n_pos = np.bincount(g, weights=y, minlength=n_groups)
    n_neg = n - n_pos
    rank_sum = np.bincount(g, weights=rank * y, minlength=n_groups)
    valid = (n_pos > 0) & (n_neg > 0)
    if not valid.any():
        return float("nan")
    group_auc = (rank_sum[valid] - n_pos[valid] * (n_pos[valid] + 1) / 2) / (n_pos[valid] * n_neg[valid])
    return float(np.average(group_auc, weights=n[valid]))


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name: `gauc@user_id` -> kind gauc, key user_id."""

    name: str
    kind: str
    key: str | None = None

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.kind]


def parse_metrics(names: list[str]) -> list[MetricSpec]:
    specs = []
    for i, name in enumerate(names):
        kind, _, key = name.partition("@")
        if kind not in HIGHER_IS_BETTER or (kind == "gauc") != bool(key):
            raise ConfigError(
                f"eval.metrics[{i}]",
                f"unknown metric {name!r}",
                fix="use auc, logloss, mse or gauc@COLUMN (e.g. gauc@user_id)",
            )
        specs.append(MetricSpec(name, kind, key or None))
    return specs


def compute(
    specs: list[MetricSpec],
    labels: np.ndarray,
    logits: np.ndarray,
    keys: dict[str, np.ndarray],
    link: str = "sigmoid",
) -> dict[str, float]:
    """Every metric in `specs` from labels, outputs and the group-key columns they need.

    `link`: how an output becomes a prediction, `sigmoid` (logits of a bce task) or `identity` (regression).
    """
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64))) if link == "sigmoid" else logits.astype(np.float64)
    fns: dict[str, Callable[[MetricSpec], float]] = {
        "auc": lambda s: auc(labels, logits),
        "logloss": lambda s: logloss(labels, probs),
        "gauc": lambda s: gauc(labels, logits, keys[str(s.key)]),
        "mse": lambda s: float(np.mean((probs - np.asarray(labels, dtype=np.float64)) ** 2)),
    }
    return {s.name: fns[s.kind](s) for s in specs}
