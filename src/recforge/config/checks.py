"""Cross-field checks pydantic cannot express; each error names the YAML path of the feature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from recforge.config.schema import PipelineConfig
from recforge.config.tasks import metric_names, task_labels
from recforge.errors import ConfigError

CROSSABLE = ("id", "tag", "numeric")


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
        check = REFERENCE_CHECKS.get(f.kind)
        if check is not None:
            check(cfg, f, kinds, Where(where, file))
        if f.source in labels:
            raise ConfigError(
                where, f"reads the label column {f.source!r}", fix="a label cannot be a feature", file=file
            )
    check_data_source(cfg, file)
    check_tasks(cfg, file)
    if cfg.train.early_stop is not None:
        metric = cfg.train.early_stop.metric
        if metric not in metric_names(cfg):
            raise ConfigError(
                "train.early_stop.metric",
                f"{metric!r} is not computed",
                fix=f"use one of: {', '.join(metric_names(cfg))}",
                file=file,
            )


class Where(NamedTuple):
    """The YAML path of the feature being checked and the file it came from (for ConfigError)."""

    path: str
    file: str


def _check_sequence(cfg: PipelineConfig, f: Any, kinds: dict[str, str], where: Where) -> None:
    """`of` names an id feature, whose table the sequence shares (so no other `dim`)."""
    if kinds.get(f.of) != "id":
        ids = sorted(n for n, k in kinds.items() if k == "id")
        raise ConfigError(
            where.path,
            f"'of: {f.of}' must name an id feature",
            fix=f"use one of {', '.join(ids) or '(none)'}",
            file=where.file,
        )
    of = next(c for c in cfg.features if c.name == f.of)
    if of.kind == "id" and of.hash_buckets is None and f.dim not in (None, of.dim):
        raise ConfigError(
            where.path,
            f"dim {f.dim} differs from {f.of}'s; a sequence shares its table",
            fix="drop `dim:` here",
            file=where.file,
        )


def _check_cross(cfg: PipelineConfig, f: Any, kinds: dict[str, str], where: Where) -> None:
    """Every input is a crossable feature, and at most one is a tag."""
    for name in f.inputs:
        if kinds.get(name) not in CROSSABLE:
            raise ConfigError(
                where.path,
                f"input {name!r} must be an id, tag or numeric feature",
                fix=f"use feature names among: {', '.join(n for n, k in kinds.items() if k in CROSSABLE)}",
                file=where.file,
            )
    if sum(kinds[n] == "tag" for n in f.inputs) > 1:
        raise ConfigError(where.path, "at most one input of a cross may be a tag feature", file=where.file)


# per feature kind, the references it makes to other features (kinds without any are absent)
REFERENCE_CHECKS: dict[str, Callable[[PipelineConfig, Any, dict[str, str], Where], None]] = {
    "sequence": _check_sequence,
    "cross": _check_cross,
}


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
