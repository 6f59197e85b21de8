"""The pipeline config of one date: the daily pipeline's YAML with the date's window or samples swapped in."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from recforge.config import PipelineConfig, build_config
from recforge.config.daily import DailyConfig
from recforge.config.loader import apply_override, load_tree, set_path
from recforge.config.tables import TableFile
from recforge.data import SamplePaths
from recforge.errors import ConfigError


def _tree(cfg: DailyConfig) -> dict[str, Any]:
    tree = load_tree(cfg.pipeline)
    for assignment in cfg.overrides:
        apply_override(tree, assignment)
    return tree


def base_config(cfg: DailyConfig) -> PipelineConfig:
    """The pipeline YAML with DAILY.yaml's overrides; it must read a `tables` source (the partitions feed it)."""
    pipeline = build_config(_tree(cfg), file=cfg.pipeline)
    if pipeline.data.source != "tables" or pipeline.data.tables is None:
        raise ConfigError(
            "data.source",
            f"the daily pipeline feeds date partitions into `data.tables.behavior`, but the source is "
            f"{pipeline.data.source!r}",
            fix="use `data.source: tables` with a behavior table (its path is replaced by each date's window)",
            file=cfg.pipeline,
        )
    return pipeline


def behavior_spec(cfg: DailyConfig) -> TableFile:
    """How each partition is parsed: the pipeline's behavior table options (columns, delimiter, bad lines)."""
    tables = base_config(cfg).data.tables
    assert tables is not None  # checked by base_config
    if not isinstance(tables.behavior, TableFile):
        raise ConfigError(
            "data.tables.behavior",
            "the daily pipeline feeds date partitions of files into the behavior table, not a catalog table",
            fix="point `behavior` at files, or run `recforge train --set data.date=D` per day on the catalog table",
            file=cfg.pipeline,
        )
    return tables.behavior


def window_config(cfg: DailyConfig, window: Path) -> PipelineConfig:
    """The pipeline reading the date window's behavior file (its `derive:` columns still computed)."""
    tree = _tree(cfg)
    derive = behavior_spec(cfg).derive
    set_path(tree, "data.tables.behavior", {"path": str(window), "derive": copy.deepcopy(derive)})
    return build_config(tree, file=cfg.pipeline)


def samples_config(cfg: DailyConfig, samples: SamplePaths) -> PipelineConfig:
    """The pipeline training on the date's prebuilt samples (no second sample build)."""
    tree = _tree(cfg)
    data = tree.setdefault("data", {})
    for key in ("tables", "negatives", "history", "label_rule"):
        data.pop(key, None)  # applied when the samples were built
    data.update({"source": "samples", "train": samples.train, "valid": samples.valid, "test": samples.test})
    return build_config(tree, file=cfg.pipeline)
