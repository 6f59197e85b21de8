"""The jobs behind the CLI, each a thin composition of library calls (ranking, recall, quickstart)."""

from recforge.pipeline.rank import (
    RunResult,
    check,
    demo_recommendations,
    quickstart,
    quickstart_config,
    seed_everything,
    train,
)
from recforge.pipeline.recall import RecallRun, check_recall, recall_eval, recall_train

__all__ = [
    "RecallRun",
    "RunResult",
    "check",
    "check_recall",
    "demo_recommendations",
    "quickstart",
    "quickstart_config",
    "recall_eval",
    "recall_train",
    "seed_everything",
    "train",
]
