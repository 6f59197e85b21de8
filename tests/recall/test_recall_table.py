"""The recall table shows every configured k and fits an 80-column terminal."""

from __future__ import annotations

from recforge.recall.table import recall_table

METRICS = ("recall", "ndcg", "mrr", "hit", "precision")


def scores(base: float) -> dict[str, float]:
    return {f"{m}@{k}": base + k / 1000 for m in METRICS for k in (10, 20, 50)}


def test_every_configured_k_shows_in_80_columns() -> None:
    metrics = {"test": scores(0.3), "channels": {"ease": {"test": scores(0.1)}, "itemcf": {"test": scores(0.2)}}}
    lines = recall_table(metrics)
    assert lines[0].split() == ["test", "k", *METRICS]
    assert [line.split()[:2] for line in lines[1:]] == [
        [name, k] for name in ("ease", "itemcf", "merged") for k in ("10", "20", "50")
    ]
    assert lines[2].split()[2] == "0.1200" and max(len(line) for line in lines) <= 80
