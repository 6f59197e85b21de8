"""`recforge features autocross`: samples -> fitted features -> proxy cross search -> a config with the crosses."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from recforge.config import CrossFeatureConfig, PipelineConfig
from recforge.config.tasks import is_multitask
from recforge.data import build_samples
from recforge.data.readers import iter_batches, read_schema, read_table
from recforge.errors import ConfigError
from recforge.features import FeatureSet
from recforge.train.autocross import AutoCrossResult, Codes, SearchOptions, codes_of, search_crosses
from recforge.train.autocross_criteria import CRITERIA

log = logging.getLogger(__name__)
CROSS_INPUT_KINDS = ("id", "numeric", "lookup")  # single-valued features a `cross` can read


@dataclass
class AutoCrossRun:
    result: AutoCrossResult
    crosses: list[dict[str, Any]]  # feature entries for the config, in acceptance order
    candidates: list[str]
    rows: dict[str, int]  # sampled rows per split


def sample(table: pa.Table, rows: int, seed: int) -> pa.Table:
    """At most `rows` rows, drawn without replacement with a seeded generator (all rows when fewer)."""
    if table.num_rows <= rows:
        return table
    pick = np.sort(np.random.default_rng(seed).choice(table.num_rows, rows, replace=False))
    return table.take(pa.array(pick))


def autocross(
    cfg: PipelineConfig, work_dir: str | Path, options: SearchOptions = SearchOptions(), rows: int = 200_000
) -> AutoCrossRun:
    """Search crosses of the config's single-valued features on its train / valid samples."""
    if is_multitask(cfg):
        raise ConfigError(
            "tasks",
            "autocross scores crosses against one label; this config has several tasks",
            fix="run it on a single-task copy of the config (drop `tasks:`, set data.label)",
        )
    samples = build_samples(cfg.data, Path(work_dir) / "samples", engine=cfg.engine, spark=cfg.spark)
    if samples.valid is None:
        raise ConfigError(
            "data.split",
            "autocross scores crosses on a valid split, and this config makes none",
            fix="give data.split a valid share (e.g. ratios: [0.8, 0.1, 0.1])",
        )
    features = FeatureSet.from_config(cfg)
    features.fit(iter_batches(samples.train, columns=features.input_columns(), batch_rows=cfg.data.read_rows))
    columns = list(dict.fromkeys([*features.input_columns(), cfg.data.label, options.holdout_key]))
    train_rows = sample(read_columns(samples.train, columns, options.holdout_key), rows, cfg.train.seed)
    valid_rows = sample(read_columns(samples.valid, columns, options.holdout_key), rows, cfg.train.seed)
    train = features.transform(train_rows, source=samples.train)
    valid = features.transform(valid_rows, source=samples.valid)
    fields: dict[str, Codes] = {}
    candidates: list[str] = []
    for j, spec in enumerate(features.schema().id_fields):
        fields[spec.name] = codes_of(train.ids[:, j].numpy(), valid.ids[:, j].numpy())
        if features.features[spec.name].kind in CROSS_INPUT_KINDS:
            candidates.append(spec.name)
    left_out = [f.name for f in features.schema().fields if f.kind != "id"]
    if left_out:
        log.info("autocross: the proxy leaves out multi-valued and dense fields %s", left_out)
    if len(candidates) < 2:
        raise ConfigError(
            "features",
            f"autocross needs two single-valued features to cross, found {candidates}",
            fix=f"add id or bucketized numeric features (kinds {', '.join(CROSS_INPUT_KINDS)})",
        )
    existing = tuple(frozenset(c.inputs) for c in cfg.features if isinstance(c, CrossFeatureConfig))
    criterion = CRITERIA.get(options.criterion, yaml_path="--criterion")
    keys = [table[options.holdout_key].to_numpy(zero_copy_only=False) for table in (train_rows, valid_rows)]
    result = search_crosses(
        fields,
        train.labels[cfg.data.label].numpy(),
        valid.labels[cfg.data.label].numpy(),
        candidates,
        options,
        existing,
        rows=criterion(keys[0], keys[1], options.holdout_share, cfg.train.seed),
    )
    taken = {c.name for c in cfg.features}
    crosses = [cross_entry(a.inputs, a.cells, cfg, taken) for a in result.accepted]
    return AutoCrossRun(result, crosses, candidates, {"train": train.size, "valid": valid.size})


def read_columns(path: str, columns: list[str], holdout_key: str) -> pa.Table:
    """`columns` of a sample file; a missing hold-out key is named with its option (the samples must carry it)."""
    available = set(read_schema(path).names)
    if holdout_key not in available:
        raise ConfigError(
            "--holdout-key",
            f"the samples have no column {holdout_key!r} to hold users out by",
            fix=f"name the user column of the samples (one of: {', '.join(sorted(available))})",
        )
    return read_table(path, columns)


def cross_entry(inputs: tuple[str, ...], cells: int, cfg: PipelineConfig, taken: set[str]) -> dict[str, Any]:
    """A `kind: cross` feature for the config: ~10 buckets per value combination seen (1e3..1e6)."""
    name = "_x_".join(inputs)
    while name in taken:
        name += "_auto"
    taken.add(name)
    sides = {c.side for c in cfg.features if c.name in inputs}
    buckets = int(min(10**6, max(1_000, 10 ** math.ceil(math.log10(max(cells, 1) * 10)))))
    side = sides.pop() if len(sides) == 1 else "context"
    return {"name": name, "kind": "cross", "side": side, "inputs": list(inputs), "buckets": buckets}


def with_crosses(tree: dict[str, Any], crosses: list[dict[str, Any]]) -> dict[str, Any]:
    """The config tree with the cross features appended to `features` (the tree itself is not changed)."""
    out = dict(tree)
    out["features"] = [*tree.get("features", []), *crosses]
    return out
