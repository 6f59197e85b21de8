"""The validation gate: a new model version is published only if held-out data says it is fit to serve.

Checks, all on the same held-out rows: finite weights; finite, non-constant scores; absolute floors
(AUC, logloss); and the largest allowed drop against the version being served now. A rejected
version is recorded in the stream with its reasons and never becomes visible to followers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from recforge.bundle import Bundle, load_bundle, task_scores
from recforge.bundle.bundle import MANIFEST
from recforge.bundle.stream import current, prune, publish, record_rejection, version_dir, versions
from recforge.bundle.verdict import gate_verdict
from recforge.config.gate import GateConfig
from recforge.config.tasks import pipeline_tasks
from recforge.errors import DataError
from recforge.train.metrics import auc, logloss

log = logging.getLogger(__name__)


@dataclass
class GateResult:
    version: str
    passed: bool
    reasons: list[str]
    metrics: dict[str, float]
    serving: dict[str, float] = field(default_factory=dict)
    published: Path | None = None
    pruned: list[str] = field(default_factory=list)

    def verdict(self, judge: str) -> dict[str, Any]:
        """What the published version's manifest records (`gate`), so rollback knows it passed."""
        return gate_verdict(self.passed, self.reasons, self.metrics, judge=judge, serving=self.serving)


def holdout_metrics(bundle: Bundle, holdout: pa.Table) -> tuple[dict[str, float], np.ndarray]:
    """AUC, logloss and the score distribution of `bundle` on the held-out rows (multi-task: its first task)."""
    label = pipeline_tasks(bundle.config)[0].label
    if label not in holdout.column_names:
        raise DataError(f"the held-out data has no label column {label!r} (columns: {holdout.column_names})")
    labels = np.asarray(holdout[label].to_numpy(zero_copy_only=False), dtype=np.float64)
    scores = task_scores(bundle, holdout)[:, 0]
    finite = np.isfinite(scores)
    metrics = {
        "rows": float(len(scores)),
        "nan_scores": float((~finite).sum()),
        "score_mean": float(scores[finite].mean()) if finite.any() else float("nan"),
        "score_std": float(scores[finite].std()) if finite.any() else float("nan"),
    }
    if finite.all() and 0 < labels.sum() < len(labels):
        metrics["auc"] = auc(labels, scores)
        metrics["logloss"] = logloss(labels, scores)
    return metrics, scores


def _nonfinite_weights(bundle: Bundle) -> list[str]:
    return [
        name for name, t in bundle.model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()
    ]


def judge(candidate: Bundle, holdout: pa.Table, rules: GateConfig, serving: Bundle | None = None) -> GateResult:
    """Every check that fails adds a reason; the version passes when there is none."""
    reasons: list[str] = []
    bad = _nonfinite_weights(candidate)
    if bad:
        reasons.append(f"non-finite weights in {bad[:5]}")
    metrics, _ = holdout_metrics(candidate, holdout)
    if metrics["nan_scores"]:
        reasons.append(f"{int(metrics['nan_scores'])} non-finite scores")
    if not metrics["score_std"] >= rules.min_score_std:
        reasons.append(
            f"score std {metrics['score_std']:.2e} < {rules.min_score_std:g}: the model barely discriminates"
        )
    if "auc" not in metrics:
        reasons.append("AUC undefined on the held-out rows (one label class only, or NaN scores)")
    if rules.min_auc is not None and metrics.get("auc", 0.0) < rules.min_auc:
        reasons.append(f"auc {metrics.get('auc', float('nan')):.4f} < floor {rules.min_auc}")
    if rules.max_logloss is not None and metrics.get("logloss", float("inf")) > rules.max_logloss:
        reasons.append(f"logloss {metrics.get('logloss', float('nan')):.4f} > ceiling {rules.max_logloss}")
    base: dict[str, float] = {}
    if serving is not None:
        base, _ = holdout_metrics(serving, holdout)
        if rules.max_auc_drop is not None and "auc" in base and "auc" in metrics:
            drop = base["auc"] - metrics["auc"]
            if drop > rules.max_auc_drop:
                reasons.append(f"auc {metrics['auc']:.4f} is {drop:.4f} below the serving version's {base['auc']:.4f}")
        if rules.max_logloss_rise is not None and "logloss" in base and "logloss" in metrics:
            rise = metrics["logloss"] - base["logloss"]
            if rise > rules.max_logloss_rise:
                reasons.append(f"logloss rose {rise:.4f} over the serving version's {base['logloss']:.4f}")
    return GateResult(candidate.version, not reasons, reasons, metrics, base)


def publish_gated(
    bundle_dir: str | Path, stream: str | Path, holdout: pa.Table, rules: GateConfig, hold: str | None = None
) -> GateResult:
    """Judge `bundle_dir` against the stream's serving version; publish it if it passes, else record why not.

    `hold` is a reason publishing is stopped from outside (e.g. a raised drift alarm): the version is
    judged and recorded as rejected with that reason whatever its metrics.
    """
    candidate = load_bundle(bundle_dir)
    base = Path(stream)
    version_dir(base, candidate.version, where=f"{Path(bundle_dir) / MANIFEST}: version")  # refused before judging
    serving = load_bundle(current(base).path) if base.is_dir() and versions(base) else None
    result = judge(candidate, holdout, rules, serving)
    if hold:
        result.reasons.append(f"publishing is on hold: {hold}")
        result.passed = False
    public: dict[str, Any] = {"metrics": result.metrics, "serving": result.serving}
    if not result.passed:
        record_rejection(base, result.version, result.reasons, public)
        log.warning("version %s rejected by the gate: %s", result.version, "; ".join(result.reasons))
        return result
    result.published = publish(bundle_dir, base, verdict=result.verdict("recforge model publish"))
    result.pruned = prune(base, rules.keep)
    log.info("version %s passed the gate and is published (auc %.4f)", result.version, result.metrics.get("auc", 0))
    return result
