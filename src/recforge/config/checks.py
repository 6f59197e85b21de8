"""Cross-field checks pydantic cannot express; each error names the YAML path of the feature."""

from __future__ import annotations

from recforge.config.feature_kinds import FEATURE_CONFIGS, Where
from recforge.config.schema import PipelineConfig
from recforge.config.tasks import metric_names, task_labels
from recforge.errors import ConfigError


def check_references(cfg: PipelineConfig, file: str = "") -> None:
    """Unique feature names; `of`, `inputs` name features of the right kind; label is not a feature."""
    kinds: dict[str, str] = {}
    for i, f in enumerate(cfg.features):
        if f.name in kinds:
            raise ConfigError(
                f"features[{i}]", f"name {f.name!r} is used twice", fix="give each feature its own name", file=file
            )
        kinds[f.name] = f.kind
    labels = task_labels(cfg)
    for i, f in enumerate(cfg.features):
        where = f"features[{i}] ({f.name})"
        check = FEATURE_CONFIGS.get(f.kind).check
        if check is not None:
            check(cfg, f, kinds, Where(where, file))
        if f.source in labels:
            raise ConfigError(
                where, f"reads the label column {f.source!r}", fix="a label cannot be a feature", file=file
            )
    check_data_source(cfg, file)
    check_tasks(cfg, file)
    if cfg.train.epochs == "auto" and cfg.train.early_stop is None:
        raise ConfigError(
            "train.epochs", "`auto` trains until early stop, which is off", fix="set train.early_stop", file=file
        )
    if cfg.train.early_stop is not None:
        metric = cfg.train.early_stop.metric
        if metric not in metric_names(cfg):
            raise ConfigError(
                "train.early_stop.metric",
                f"{metric!r} is not computed",
                fix=f"use one of: {', '.join(metric_names(cfg))}",
                file=file,
            )


def check_data_source(cfg: PipelineConfig, file: str = "") -> None:
    """The files the chosen `data.source` needs are named."""
    if cfg.data.source == "samples" and not cfg.data.train:
        raise ConfigError(
            "data.train", "source 'samples' needs a train file", fix="set data.train (and data.valid)", file=file
        )
    if cfg.data.source in ("movielens", "criteo") and not cfg.data.path:
        raise ConfigError("data.path", f"source {cfg.data.source!r} needs a path", fix="--set data.path=DIR", file=file)
    if cfg.data.negatives is not None and (cfg.data.label_rule is not None or cfg.data.source == "samples"):
        raise ConfigError(
            "data.negatives",
            "sampled negatives are for a log of positives (no `label_rule`, not prebuilt samples)",
            fix="remove `data.label_rule` (log rows are the positives) or `data.negatives`",
            file=file,
        )
    if cfg.data.source == "tables" and cfg.data.tables is None:
        raise ConfigError("data.tables", "source 'tables' needs `tables: {behavior: ...}`", file=file)


def check_tasks(cfg: PipelineConfig, file: str = "") -> None:
    """Task names and labels are unique; `rank_by` weighs tasks that exist."""
    tasks = cfg.tasks or []
    for kind in ("name", "label"):
        seen: set[str] = set()
        for i, task in enumerate(tasks):
            value = getattr(task, kind)
            if value in seen:
                raise ConfigError(
                    f"tasks[{i}].{kind}",
                    f"{value!r} is used by an earlier task",
                    fix=f"give each task its own {kind}",
                    file=file,
                )
            seen.add(value)
    names = [t.name for t in tasks]
    for name in cfg.rank_by or {}:
        if name not in names:
            raise ConfigError(
                f"rank_by.{name}",
                "is not a task",
                fix=f"weigh tasks among: {', '.join(names) or '(no tasks: block)'}",
                file=file,
            )
