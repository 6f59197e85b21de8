"""The objectives a pipeline learns: one task on `data.label`, or the `tasks:` block of a multi-task model.

Every layer that trains, predicts or serves asks `pipeline_tasks(cfg)` instead of reading `data.label`,
so single- and multi-task pipelines share one code path. A single-task pipeline has one task with an
empty name: its metrics keep their bare names (`auc`) and its score column stays `score`. A multi-task
pipeline names each metric `task/metric` (`ctr/auc`) and also reports the bare name as the mean over
its tasks (`auc` = mean task AUC), so `early_stop: {metric: auc}` and gates keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

from recforge.config.schema import PipelineConfig


@dataclass(frozen=True)
class Task:
    """A resolved task: label column, loss (bce: sigmoid link; mse: identity), loss weight, metric names."""

    name: str
    label: str
    loss: str = "bce"
    weight: float = 1.0
    metrics: tuple[str, ...] = ("auc", "logloss")

    def key(self, metric: str) -> str:
        """`ctr/auc` for a named task, `auc` for the single unnamed one."""
        return f"{self.name}/{metric}" if self.name else metric


def pipeline_tasks(cfg: PipelineConfig) -> tuple[Task, ...]:
    """The tasks in model-output order (the columns of a multi-task model's [B, T] logits)."""
    if cfg.tasks is None:
        return (Task("", cfg.data.label, metrics=tuple(cfg.eval.metrics)),)
    return tuple(
        Task(
            t.name,
            t.label,
            t.loss,
            t.weight,
            tuple(t.metrics if t.metrics is not None else (cfg.eval.metrics if t.loss == "bce" else ["mse"])),
        )
        for t in cfg.tasks
    )


def is_multitask(cfg: PipelineConfig) -> bool:
    return cfg.tasks is not None


def model_tasks(cfg: PipelineConfig) -> tuple[str, ...]:
    """Output names a multi-task model is built with (none for a single-task pipeline)."""
    return tuple(t.name for t in pipeline_tasks(cfg)) if is_multitask(cfg) else ()


def task_labels(cfg: PipelineConfig) -> tuple[str, ...]:
    """Label columns the samples must hold, in task order."""
    return tuple(dict.fromkeys(t.label for t in pipeline_tasks(cfg)))


def rank_weights(cfg: PipelineConfig) -> dict[str, float]:
    """Task -> weight of its score in the ranking score (`rank_by`, default: the first task alone)."""
    tasks = pipeline_tasks(cfg)
    return dict(cfg.rank_by) if cfg.rank_by else {tasks[0].name: 1.0}


def metric_names(cfg: PipelineConfig) -> list[str]:
    """Every metric name the trainer reports: per task (prefixed) and, for several tasks, the bare means."""
    tasks = pipeline_tasks(cfg)
    names = [t.key(m) for t in tasks for m in t.metrics]
    if is_multitask(cfg):
        names += list(dict.fromkeys(m for t in tasks for m in t.metrics))
    return names


__all__ = ["Task", "is_multitask", "metric_names", "model_tasks", "pipeline_tasks", "rank_weights", "task_labels"]
