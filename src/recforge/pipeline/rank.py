"""Ranking jobs as thin compositions of library calls: samples -> features -> model -> train -> bundle."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import yaml

from recforge.bundle import Bundle, load_bundle, save_bundle
from recforge.bundle.topk import side_columns, top_items_for_user
from recforge.config import PipelineConfig
from recforge.config.tasks import Task, is_multitask, model_tasks, pipeline_tasks
from recforge.data import SamplePaths, build_samples
from recforge.data.probe import check_data
from recforge.data.readers import iter_batches, read_table
from recforge.errors import ConfigError
from recforge.features import FeatureSet
from recforge.ids import first_rows
from recforge.models import build_model, model_options
from recforge.progress import stage
from recforge.train import BatchLoader, Trainer, TrainResult, evaluate_tasks, make_trainer, trainer_family
from recforge.train.distill import TEACHER_COLUMN, attach_teacher_logits
from recforge.train.metrics import parse_metrics

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    out_dir: Path
    bundle: Path
    metrics: dict[str, Any]
    samples: SamplePaths
    train: TrainResult


def quickstart_config() -> dict[str, Any]:
    """The embedded default pipeline (synthetic e-commerce world, DeepFM)."""
    text = resources.files("recforge").joinpath("presets/quickstart.yaml").read_text()
    return dict(yaml.safe_load(text))


def check(cfg: PipelineConfig) -> None:
    """Checks that need the registries (model block, metric names); run before any work starts."""
    if not cfg.features:
        raise ConfigError("features", "ranking needs at least one feature", fix="list the features to rank with")
    model_options(cfg.model)
    trainer_family(cfg)
    parse_metrics(cfg.eval.metrics)
    for i, task in enumerate(pipeline_tasks(cfg)):
        for metric in parse_metrics(list(task.metrics)):
            if task.loss == "mse" and metric.kind == "logloss":
                raise ConfigError(f"tasks[{i}].metrics", f"{task.name}: logloss needs 0/1 labels", fix="use mse or auc")
    if cfg.train.distill is not None and is_multitask(cfg):
        raise ConfigError(
            "train.distill", "distillation learns one soft label: it needs a single-task model", fix="drop `tasks:`"
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def group_keys(cfg: PipelineConfig) -> tuple[str, ...]:
    names = [*cfg.eval.metrics, *(m for t in pipeline_tasks(cfg) for m in t.metrics)]
    return tuple(dict.fromkeys(m.key for m in parse_metrics(names) if m.key))


def train(
    cfg: PipelineConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    warm_start: str | Path | None = None,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Build samples, fit features (or reuse a warm-start bundle's), train, evaluate, export a bundle.

    `on_eval` is called with each evaluation row (tuning reports and prunes there).
    """
    out = _start_run(cfg, Path(out_dir))
    tasks = pipeline_tasks(cfg)
    with stage("samples", cfg.train.progress):
        samples = build_samples(cfg.data, out / "samples", *task_labels_by_loss(tasks))
    with stage("features", cfg.train.progress):
        features, parent = _features(cfg, out, samples, resume, warm_start)
    model = build_model(features.schema(), cfg.model, tasks=model_tasks(cfg))
    if warm_start is not None and not resume:
        model.load_state_dict(load_bundle(warm_start).model.state_dict())
    keys = group_keys(cfg)

    def loader(path: str, shuffle: bool, batch_size: int, extras: tuple[str, ...] | None = None) -> BatchLoader:
        return BatchLoader(
            path,
            features,
            batch_size,
            read_rows=cfg.data.read_rows,
            shuffle=shuffle,
            mode=cfg.train.cache,
            shuffle_buffer=cfg.train.shuffle_buffer,
            seed=cfg.train.seed,
            extras=extras if extras is not None else keys if not shuffle else (),
        )

    train_loader = _train_loader(cfg, samples, out, loader)
    valid_loader = loader(samples.valid, False, cfg.eval.batch_size) if samples.valid else None
    trainer = make_trainer(trainer_family(cfg), model, cfg, out)
    if isinstance(trainer, Trainer):
        trainer.on_eval = on_eval
    elif on_eval is not None:
        log.info("model %s trains in one pass: no per-epoch evaluations to report", cfg.model.name)
    result = trainer.fit(train_loader, valid_loader, resume=resume)
    test: dict[str, Any] = {}
    if samples.test:
        with stage("evaluate test", cfg.train.progress):
            test = evaluate_tasks(
                model, loader(samples.test, False, cfg.eval.batch_size), tasks, mean=is_multitask(cfg)
            )
    report = train_loader.report.summary()
    if report:
        log.warning("training values mapped to defaults (missing / out of vocabulary / truncated): %s", report)
    metrics = run_metrics(result, test, samples, model, report)
    bundle = save_bundle(out / "bundle", cfg, features, model, metrics, parent=parent)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return RunResult(out, bundle, metrics, samples, result)


def _start_run(cfg: PipelineConfig, out: Path) -> Path:
    """Validate config and data paths, then create the run directory with its config.yaml and seed everything.

    Nothing is written before the checks pass, so a bad config or path leaves no run directory behind.
    """
    check(cfg)
    check_data(cfg.data)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.train.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.dump(), sort_keys=False))
    return out


def _train_loader(
    cfg: PipelineConfig, samples: SamplePaths, out: Path, loader: Callable[..., BatchLoader]
) -> BatchLoader:
    """The shuffled training batches; under distillation with the teacher's logits attached to each row."""
    if cfg.train.distill is None:
        return loader(samples.train, True, cfg.train.batch_size)
    if trainer_family(cfg) != "sgd":
        raise ConfigError(
            "train.distill", f"model {cfg.model.name!r} is not trained by SGD, so it cannot learn soft labels"
        )
    scored = attach_teacher_logits(
        cfg.train.distill.teacher, samples.train, out / "samples" / "train_teacher.parquet", cfg.data.read_rows
    )
    return loader(str(scored), True, cfg.train.batch_size, extras=(TEACHER_COLUMN,))


def task_labels_by_loss(tasks: Sequence[Task]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(0/1 label columns, regression label columns) of the tasks."""
    return tuple(t.label for t in tasks if t.loss == "bce"), tuple(t.label for t in tasks if t.loss == "mse")


def run_metrics(
    result: TrainResult, test: dict[str, Any], samples: SamplePaths, model: torch.nn.Module, report: dict[str, int]
) -> dict[str, Any]:
    """What metrics.json and the bundle manifest hold: best valid row, test, training stats, counts."""
    return {
        "valid": result.best or (result.history[-1] if result.history else {}),
        "test": test,
        "train": {
            "samples_per_s": result.samples_per_s,
            "steps": result.steps,
            "epochs": result.epochs,
            "best_step": result.best_step,
            "rows": samples.counts.get("train", 0),
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "defaults": report,
        "samples": samples.counts,
    }


def _features(
    cfg: PipelineConfig, out: Path, samples: SamplePaths, resume: bool, warm_start: str | Path | None
) -> tuple[FeatureSet, str | None]:
    """Fitted features: reused on resume / warm start (so embedding rows keep their meaning), else fitted."""
    saved = out / "features"
    if resume and saved.exists():
        return FeatureSet.load(saved), None
    if warm_start is not None:
        parent = load_bundle(warm_start)
        parent.features.save(saved)
        return parent.features, parent.version
    features = FeatureSet.from_config(cfg)
    features.fit(iter_batches(samples.train, columns=features.input_columns(), batch_rows=cfg.data.read_rows))
    features.save(saved)
    return features, None


def demo_recommendations(
    bundle: Bundle,
    samples: SamplePaths,
    n_users: int = 3,
    k: int = 5,
    candidates: Callable[[pa.Scalar], pa.Array | None] | None = None,
) -> dict[str, pa.Table]:
    """Top-k items for the first few test users, ranked by the bundle among `candidates(user_id)`.

    Without `candidates` (or when it returns None) every item seen in training is scored. The user
    key is the first user-side id feature, the item key the first item-side one; a pipeline without
    both gets no demo (an empty dict).
    """
    keys = {side: bundle.features.entity_key(side) for side in ("user", "item")}
    if keys["user"] is None or keys["item"] is None:
        return {}
    item_cols = [keys["item"], *(c for c in side_columns(bundle, "item") if c != keys["item"])]  # key first
    user_cols = [c for c in side_columns(bundle, "user") + side_columns(bundle, "context") if c not in item_cols]
    items = first_rows(read_table(samples.train, columns=item_cols), keys["item"])
    users = first_rows(read_table(samples.test or samples.train, columns=user_cols), keys["user"])
    out = {}
    for i in range(min(n_users, users.num_rows)):
        user = users[keys["user"]][i]
        pool = candidates(user) if candidates else None
        shown = items if pool is None else items.filter(pc.is_in(items[keys["item"]], value_set=pool))
        out[str(user.as_py())] = top_items_for_user(bundle, users.slice(i, 1), shown, k)
    return out


__all__ = ["RunResult", "check", "demo_recommendations", "quickstart_config", "train"]
