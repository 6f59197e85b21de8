"""Printing helpers the command groups share: metric lines and right-aligned tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer

RECALL_METRICS = ("recall", "ndcg", "mrr", "hit", "precision")


def cell(value: Any) -> str:
    """A table cell: floats to 4 significant digits, a float vector as its first components, None as '-'."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and all(isinstance(v, float) for v in value[:4]):
        shown = ", ".join(f"{v:.3f}" for v in value[:4])
        return f"[{shown}{', ...' if len(value) > 4 else ''}]"
    return "-" if value is None else str(value)


def echo_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Print `rows` as right-aligned columns under a header (all columns of the first row by default)."""
    if not rows:
        typer.echo("(no rows)")
        return
    names = list(columns if columns is not None else rows[0])
    cells = [[cell(r[c]) for c in names] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(names)]
    typer.echo("  ".join(c.rjust(w) for c, w in zip(names, widths, strict=True)))
    for row in cells:
        typer.echo("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def print_metrics(metrics: dict[str, object]) -> None:
    """One line per split (valid, test) of a ranking run's metrics, then the training speed."""
    for split in ("valid", "test"):
        values = metrics.get(split) or {}
        assert isinstance(values, dict)
        shown = "  ".join(
            f"{k}={v:.4f}" for k, v in values.items() if (isinstance(v, float) and "loss" not in k) or k == "logloss"
        )
        typer.echo(f"{split:>5}: {shown}")
    train = metrics.get("train")
    if isinstance(train, dict):
        typer.echo(f"train: {train['samples_per_s']:,.0f} samples/s over {train['steps']} steps")


def print_recall_metrics(metrics: dict[str, Any]) -> None:
    """A row per recall channel (and the merged list) and configured k: recall/ndcg/mrr/hit/precision."""
    from recforge.recall.table import recall_table

    for line in recall_table(metrics):
        typer.echo(line)
