"""Recall metrics as a narrow text table: one row per channel and k, so every configured k shows and the
table fits an 80-column terminal however many ks there are."""

from __future__ import annotations

from typing import Any

from recforge.config.recall import RECALL_METRICS


def metric_ks(values: dict[str, Any]) -> list[int]:
    """The ks of `name@k` keys, ascending."""
    return sorted({int(key.rsplit("@", 1)[1]) for key in values if "@" in key and key.rsplit("@", 1)[1].isdigit()})


def recall_table(metrics: dict[str, Any], split: str = "test") -> list[str]:
    """Lines of a table of `split` metrics (falling back to valid) for each channel and the merged list."""
    rows = [*metrics.get("channels", {}).items(), ("merged", metrics)]
    scores = {name: values.get(split) or values.get("valid") or {} for name, values in rows}
    names = [m for m in RECALL_METRICS if any(f"{m}@" in key for s in scores.values() for key in s)]
    ks = sorted({k for s in scores.values() for k in metric_ks(s)})
    width = max([len(name) for name in scores] + [len(split)])
    lines = [f"{split:<{width}}  {'k':>4}  " + "  ".join(f"{m:>9}" for m in names)]
    for name, values in scores.items():
        for k in ks:
            cells = "  ".join(f"{values.get(f'{m}@{k}', float('nan')):9.4f}" for m in names)
            lines.append(f"{name:<{width}}  {k:>4}  {cells}")
    return lines
