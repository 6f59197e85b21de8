"""The jobs behind the CLI, each a thin composition of library calls (ranking, recall, quickstart)."""

from recforge.pipeline.quickstart import QuickstartResult, quickstart
from recforge.pipeline.rank import (
    RunResult,
    check,
    demo_recommendations,
    quickstart_config,
    seed_everything,
    train,
)
from recforge.pipeline.recall import RecallRun, check_recall, i2i_config, recall_eval, recall_train, run_i2i_job

__all__ = [
    "QuickstartResult",
    "RecallRun",
    "RunResult",
    "check",
    "check_recall",
    "demo_recommendations",
    "i2i_config",
    "quickstart",
    "quickstart_config",
    "recall_eval",
    "recall_train",
    "run_i2i_job",
    "seed_everything",
    "train",
]
