"""What a pipeline must satisfy to train in several processes, checked before any process starts work."""

from __future__ import annotations

from recforge.config.schema import PipelineConfig
from recforge.errors import ConfigError
from recforge.train.distributed.placement import check_placement
from recforge.train.families import trainer_family


def check_distributed(cfg: PipelineConfig, world_size: int) -> None:
    """ConfigError for a setting `world_size` processes cannot train with (nothing to check for one)."""
    check_placement(cfg, world_size)
    if world_size <= 1:
        return
    family = trainer_family(cfg)
    if family != "sgd":
        raise ConfigError(
            "train.trainer",
            f"the {family!r} trainer of model {cfg.model.name!r} runs in one process only",
            fix="train it without --nproc / torchrun, or pick a model trained by SGD",
        )
    for i, feature in enumerate(cfg.features):
        if getattr(getattr(feature, "storage", None), "kind", None) == "dynamic":
            raise ConfigError(
                f"features[{i}].storage",
                f"{feature.name}: a dynamic (growing) embedding table cannot be trained by several processes: "
                "each would grow its own rows",
                fix="train it in one process, or give the feature a fixed-size table (vocab or hash_buckets)",
            )
    if cfg.train.batch_size % world_size:
        raise ConfigError(
            "train.batch_size",
            f"{cfg.train.batch_size} is the global batch and does not split evenly over {world_size} processes",
            fix=f"use a multiple of {world_size}",
        )
    if cfg.train.distill is not None:
        raise ConfigError(
            "train.distill", "distillation trains in one process only", fix="train the student without --nproc"
        )
