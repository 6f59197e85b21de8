"""Ranking jobs as thin compositions of library calls: samples -> features -> model -> train -> bundle."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import yaml
from torch import nn

from recforge.bundle import Bundle, load_bundle, save_bundle
from recforge.bundle.bundle import read_bundle_manifest
from recforge.bundle.topk import side_columns, top_items_for_user
from recforge.config import PipelineConfig
from recforge.config.schema import TrackingConfig
from recforge.config.tasks import is_multitask, model_tasks, pipeline_tasks
from recforge.data import SamplePaths, build_samples
from recforge.data.probe import check_data
from recforge.data.readers import read_table
from recforge.errors import ConfigError
from recforge.features import FeatureSet
from recforge.ids import first_rows
from recforge.models import build_model, model_options
from recforge.pipeline.spark_features import feature_engine
from recforge.progress import stage
from recforge.train import BatchLoader, Trainer, TrainResult, make_trainer, trainer_family
from recforge.train.checkpoint import CHECKPOINT
from recforge.train.distill import TEACHER_COLUMN, attach_teacher_logits
from recforge.train.distributed.checks import check_distributed
from recforge.train.distributed.context import DistContext, process_group, route_logs
from recforge.train.distributed.dcp_checkpoint import is_dcp_checkpoint
from recforge.train.distributed.evaluation import evaluate_all_ranks
from recforge.train.distributed.loader import ShardedBatchLoader
from recforge.train.distributed.trainer import DistributedTrainer
from recforge.train.families import ModelTrainer, can_resume
from recforge.train.metrics import parse_metrics
from recforge.train.tracking import TRACKERS, Tracker, tracked_run

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    out_dir: Path
    bundle: Path
    metrics: dict[str, Any]
    samples: SamplePaths
    train: TrainResult
    main: bool = True  # False in a non-main training process, which writes no run outputs


def quickstart_config() -> dict[str, Any]:
    """The embedded default pipeline (synthetic e-commerce world, DeepFM)."""
    text = resources.files("recforge").joinpath("presets/quickstart.yaml").read_text()
    return dict(yaml.safe_load(text))


def check(cfg: PipelineConfig, world_size: int = 1) -> None:
    """Checks that need the registries (model block, metric names) and what `world_size` processes
    need to train together; run before any work starts."""
    if not cfg.features:
        raise ConfigError("features", "ranking needs at least one feature", fix="list the features to rank with")
    model_options(cfg.model)
    parse_metrics(cfg.eval.metrics)
    TRACKERS.get(cfg.train.tracking.kind, yaml_path="train.tracking.kind")
    for i, task in enumerate(pipeline_tasks(cfg)):
        for metric in parse_metrics(list(task.metrics)):
            if task.loss == "mse" and metric.kind == "logloss":
                raise ConfigError(f"tasks[{i}].metrics", f"{task.name}: logloss needs 0/1 labels", fix="use mse or auc")
    if cfg.train.distill is not None and is_multitask(cfg):
        raise ConfigError(
            "train.distill", "distillation learns one soft label: it needs a single-task model", fix="drop `tasks:`"
        )
    check_distributed(cfg, world_size)
    feature_engine(cfg).check(cfg, world_size)


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

    `resume` goes on from OUT/checkpoint; without one it says so before any work and starts fresh.
    `on_eval` is called with each evaluation row (tuning reports and prunes there); so is the experiment
    tracker `train.tracking` names, which then logs the finished run (metrics, bundle, report).
    """
    ctx = DistContext.from_env()  # several processes when launched by torchrun (`recforge train --nproc N`)
    check(cfg, ctx.world_size)
    check_data(cfg.data)  # nothing is written before the checks pass: a bad config leaves no run directory
    out = Path(out_dir)
    tracking = cfg.train.tracking if ctx.is_main else TrackingConfig()  # one tracked run: rank 0's
    with tracked_run(tracking, out, cfg.dump()) as tracker:
        out.mkdir(parents=True, exist_ok=True)
        with process_group(ctx):
            route_logs(ctx, out)
            result = _train(cfg, out, ctx, resume, warm_start, on_eval, tracker)
        tracker.log_run(out)
    return result


def _train(
    cfg: PipelineConfig,
    out: Path,
    ctx: DistContext,
    resume: bool,
    warm_start: str | Path | None,
    on_eval: Callable[[dict[str, Any]], None] | None,
    tracker: Tracker,
) -> RunResult:
    """`train` in this process: rank 0 builds the samples and features first, the other ranks reuse them."""
    if not ctx.is_main:  # progress bars and run outputs are rank 0's
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"progress": False})})
    if resume and not can_resume(trainer_family(cfg), out):
        log.warning("no checkpoint in %s: starting fresh", out / CHECKPOINT)
        resume = False
    seed_everything(cfg.train.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if ctx.is_main:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.dump(), sort_keys=False))
    samples, features, parent = ctx.main_first(lambda again: _prepare(cfg, out, resume or again, warm_start))
    model = build_model(features.schema(), cfg.model, tasks=model_tasks(cfg))
    if warm_start is not None and not resume:
        model.load_state_dict(load_bundle(warm_start).model.state_dict())
    if ctx.several:
        seed_everything(cfg.train.seed + ctx.rank)  # each rank its own dropout masks
    loaders = _Loaders(cfg, features, ctx)
    with stage("model inputs", cfg.train.progress):  # the Spark engine transforms every split here
        inputs = feature_engine(cfg).inputs(cfg, features, samples, out, group_keys(cfg))
    train_loader = _train_loader(cfg, inputs, out, loaders)
    trainer = _make_trainer(cfg, model, out, ctx, resume)
    if isinstance(trainer, Trainer):
        trainer.on_eval = tracker.log_eval if on_eval is None else _both(on_eval, tracker.log_eval)
    elif on_eval is not None:
        log.info("model %s trains in one pass: no per-epoch evaluations to report", cfg.model.name)
    valid_loader = loaders(inputs.valid, False, cfg.eval.batch_size) if inputs.valid else None
    result = trainer.fit(train_loader, valid_loader, resume=resume)
    defaults = ctx.sum_counts(train_loader.report.summary())
    metrics = _metrics(cfg, model, result, inputs, defaults, loaders, partial(evaluate_all_ranks, ctx))
    bundle = out / "bundle"
    if ctx.is_main:
        save_bundle(bundle, cfg, features, model, metrics, parent=parent)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    ctx.barrier()  # the bundle is whole before any rank returns
    return RunResult(out, bundle, metrics, samples, result, ctx.is_main)


def _prepare(
    cfg: PipelineConfig, out: Path, reuse: bool, warm_start: str | Path | None
) -> tuple[SamplePaths, FeatureSet, str | None]:
    """The run's samples and fitted features (`reuse`: those already in `out`, when they fit)."""
    with stage("samples", cfg.train.progress):
        samples = run_samples(cfg, out / "samples", reuse)
    with stage("features", cfg.train.progress):
        features, parent = _features(cfg, out, samples, reuse, warm_start)
    return samples, features, parent


def _make_trainer(cfg: PipelineConfig, model: nn.Module, out: Path, ctx: DistContext, resume: bool) -> ModelTrainer:
    """The model's trainer family; the multi-process trainer under torchrun or to resume its DCP checkpoint."""
    if ctx.several or (resume and is_dcp_checkpoint(out)):
        return DistributedTrainer(model, cfg, out, ctx)
    return make_trainer(trainer_family(cfg), model, cfg, out)


def _both(
    first: Callable[[dict[str, Any]], None], second: Callable[[dict[str, Any]], None]
) -> Callable[[dict[str, Any]], None]:
    """One eval hook calling `first`, then `second` (the tracker logs a row even when tuning then prunes on it)."""

    def hook(row: dict[str, Any]) -> None:
        try:
            first(row)
        finally:
            second(row)

    return hook


def run_samples(cfg: PipelineConfig, out: Path, resume: bool = False) -> SamplePaths:
    """The run's samples; a resumed run keeps those its first run finished (what its checkpoint trained on).

    `samples.json`, written after the files, names them and the data config and labels they were built for.
    """
    tasks = pipeline_tasks(cfg)
    labels = tuple(t.label for t in tasks if t.loss == "bce")
    targets = tuple(t.label for t in tasks if t.loss == "mse")
    recipe = {"data": cfg.data.model_dump(mode="json"), "labels": list(labels), "targets": list(targets)}
    record = out / "samples.json"
    if resume and record.exists():
        saved = json.loads(record.read_text())
        if saved["recipe"] == recipe:
            log.info("resume: reusing the samples in %s", out)
            return SamplePaths(**saved["samples"])
    samples = build_samples(cfg.data, out, labels=labels, targets=targets, engine=cfg.engine, spark=cfg.spark)
    out.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name("samples.json.tmp")
    tmp.write_text(json.dumps({"recipe": recipe, "samples": asdict(samples)}))
    tmp.replace(record)
    return samples


@dataclass
class _Loaders:
    """BatchLoaders over sample files with the pipeline's features, read size, cache and shuffle seed;
    under several processes each loads its rank's share with its part of the (global) batch size."""

    cfg: PipelineConfig
    features: FeatureSet
    ctx: DistContext = field(default_factory=DistContext)

    def __call__(self, path: str, shuffle: bool, batch_size: int, extras: tuple[str, ...] | None = None) -> BatchLoader:
        """Evaluation loaders (no shuffle) carry the group-metric keys as extras unless `extras` says otherwise."""
        common: dict[str, Any] = {
            "read_rows": self.cfg.data.read_rows,
            "shuffle": shuffle,
            "mode": self.cfg.train.cache,
            "shuffle_buffer": self.cfg.train.shuffle_buffer,
            "seed": self.cfg.train.seed,
            "extras": extras if extras is not None else group_keys(self.cfg) if not shuffle else (),
        }
        if not self.ctx.several:
            return BatchLoader(path, self.features, batch_size, **common)
        share = max(batch_size // self.ctx.world_size, 1)
        rank, world = self.ctx.rank, self.ctx.world_size
        return ShardedBatchLoader(path, self.features, share, **common, rank=rank, world_size=world)


def _train_loader(cfg: PipelineConfig, samples: SamplePaths, out: Path, loaders: _Loaders) -> BatchLoader:
    """The shuffled training loader; under distillation over the rows scored once by the teacher."""
    if cfg.train.distill is None:
        return loaders(samples.train, True, cfg.train.batch_size)
    if trainer_family(cfg) != "sgd":
        raise ConfigError(
            "train.distill", f"model {cfg.model.name!r} is not trained by SGD, so it cannot learn soft labels"
        )
    scored = attach_teacher_logits(
        cfg.train.distill.teacher, samples.train, out / "samples" / "train_teacher.parquet", cfg.data.read_rows
    )
    return loaders(str(scored), True, cfg.train.batch_size, extras=(TEACHER_COLUMN,))


def _metrics(
    cfg: PipelineConfig,
    model: nn.Module,
    result: TrainResult,
    samples: SamplePaths,
    defaults: dict[str, Any],
    loaders: _Loaders,
    evaluate: Callable[..., dict[str, float]],
) -> dict[str, Any]:
    """metrics.json: the exported model's valid and test metrics, training counters, values mapped to defaults."""
    test: dict[str, Any] = {}
    if samples.test:
        with stage("evaluate test", cfg.train.progress):
            test = evaluate(
                model, loaders(samples.test, False, cfg.eval.batch_size), pipeline_tasks(cfg), mean=is_multitask(cfg)
            )
    if defaults:
        log.warning("training values mapped to defaults (missing / out of vocabulary / truncated): %s", defaults)
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
        "defaults": defaults,
        "samples": samples.counts,
    }


def _features(
    cfg: PipelineConfig, out: Path, samples: SamplePaths, resume: bool, warm_start: str | Path | None
) -> tuple[FeatureSet, str | None]:
    """Fitted features and the parent version: features are reused on resume / warm start (so embedding
    rows keep their meaning), else fitted; a resumed warm start still names its parent."""
    saved = out / "features"
    if resume and saved.exists():
        parent = read_bundle_manifest(Path(warm_start))["version"] if warm_start is not None else None
        return FeatureSet.load(saved), parent
    if warm_start is not None:
        parent = load_bundle(warm_start)
        parent.features.save(saved)
        return parent.features, parent.version
    features = FeatureSet.from_config(cfg)
    feature_engine(cfg).fit(cfg, features, samples)
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


__all__ = ["RunResult", "check", "demo_recommendations", "quickstart_config", "run_samples", "train"]
