"""Recall jobs: behavior log -> interactions -> every channel fitted and evaluated -> recall bundle."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from recforge.config import PipelineConfig
from recforge.config.i2i import I2IConfig
from recforge.config.loader import load_tree, validate_block
from recforge.config.recall import RecallConfig
from recforge.data.probe import check_data
from recforge.data.raw import RawTables
from recforge.data.sources import load_source
from recforge.errors import ConfigError
from recforge.pipeline.rank import seed_everything
from recforge.progress import stage
from recforge.recall.build import build_recall_data
from recforge.recall.channels import FitContext, channel_options
from recforge.recall.evaluate import MERGED, evaluate_split
from recforge.recall.i2i import run_i2i, write_i2i
from recforge.recall.i2i.job import OutputFormat
from recforge.recall.interactions import RecallData
from recforge.recall.model import RecallModel

log = logging.getLogger(__name__)


@dataclass
class RecallRun:
    out_dir: Path
    bundle: Path
    metrics: dict[str, Any]


def check_recall(cfg: PipelineConfig) -> RecallConfig:
    """The `recall:` block, with every channel's options validated before any work starts."""
    if cfg.recall is None:
        raise ConfigError("recall", "this config has no `recall:` block", fix="add recall.channels (see examples/)")
    for i, channel in enumerate(cfg.recall.channels):
        channel_options(channel, i)
    return cfg.recall


def fit_context(cfg: PipelineConfig, raw: RawTables, data: RecallData) -> FitContext:
    recall = check_recall(cfg)
    return FitContext(
        vocab=data.vocab,
        valid=data.valid,
        users=raw.users,
        items=raw.items,
        user_key=raw.user_key,
        item_key=raw.item_key,
        features=cfg.features,
        embedding_dim=cfg.embedding_dim,
        seed=recall.seed,
        progress=recall.progress,
    )


def evaluate(model: RecallModel, data: RecallData, recall: RecallConfig) -> dict[str, Any]:
    """`{"valid": merged, "test": merged, "channels": {name: {"valid", "test", "fit_seconds"}}}`."""
    by_split = {
        split: evaluate_split(model, data, split, recall.eval, recall.progress)
        for split in ("valid", "test")
        if getattr(data, split) is not None
    }
    channels = {
        name: {**{split: result[name] for split, result in by_split.items()}, "fit_seconds": model.fit_seconds[name]}
        for name in model.channels
    }
    merged = {split: result[MERGED] for split, result in by_split.items()}
    return {**merged, "channels": channels, "counts": data.counts}


def recall_train(cfg: PipelineConfig, out_dir: str | Path) -> RecallRun:
    """Fit every channel of `cfg.recall`, evaluate each and the merge, save the bundle to OUT/recall."""
    recall = check_recall(cfg)
    check_data(cfg.data)  # before the run directory exists: a bad path leaves nothing behind
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(recall.seed)
    if recall.threads:
        torch.set_num_threads(recall.threads)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.dump(), sort_keys=False))
    with stage("recall data", recall.progress):
        raw = load_source(cfg.data)
        data = build_recall_data(raw, recall.interactions)
    model = RecallModel.fit(recall, data.train, fit_context(cfg, raw, data))
    model.counts = data.counts
    bundle = model.save(out / "recall")
    metrics = evaluate(model, data, recall)
    _write_metrics(out, metrics)
    return RecallRun(out, bundle, metrics)


def recall_eval(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Re-evaluate the recall bundle of a `recall train` run on the data its config names (overridable)."""
    from recforge.config import load_config

    run = Path(run_dir)
    cfg = load_config(run / "config.yaml", overrides)
    recall = check_recall(cfg)
    model = RecallModel.load(run / "recall")
    data = build_recall_data(load_source(cfg.data), recall.interactions)
    if not (data.vocab.user_ids.equals(model.vocab.user_ids) and data.vocab.item_ids.equals(model.vocab.item_ids)):
        raise ConfigError(
            "data",
            f"the data gives {data.vocab.n_users} users / {data.vocab.n_items} items, "
            f"the bundle was fitted on {model.vocab.n_users} / {model.vocab.n_items}",
            fix="evaluate on the data and interaction settings the bundle was trained with",
        )
    return evaluate(model, data, recall)


def _write_metrics(out: Path, metrics: dict[str, Any]) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for name, values in metrics["channels"].items():
        path = out / "channels" / name / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=1))


def i2i_config(config_file: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> I2IConfig:
    """The i2i job's options: a YAML of I2IConfig keys (optional) with `--set key=value` overrides."""
    tree = load_tree(config_file) if config_file else {}
    return validate_block(I2IConfig, tree, str(config_file or ""), overrides)


def run_i2i_job(input_path: str, out_path: str, cfg: I2IConfig, fmt: OutputFormat = "parquet") -> dict[str, Any]:
    """The warehouse job: behavior table in, per item (user) its top-N neighbours out; returns the counts."""
    result = run_i2i(input_path, cfg)
    write_i2i(result, out_path, fmt)
    return result.stats
