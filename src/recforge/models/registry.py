"""Model registry: `@register_model("deepfm", config=DeepFMConfig)`; `build_model` validates `model:`.

A single-task model returns logits [B]; one registered with `multitask=True` returns [B, T], one column
per name in `schema.tasks` (filled by `build_model` from the pipeline's `tasks:` block).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from torch import nn

from recforge.config.loader import format_validation_error
from recforge.config.schema import ModelConfig
from recforge.errors import ConfigError
from recforge.registry import Registry
from recforge.schema import InputSchema

MODELS: Registry[type[nn.Module]] = Registry("model")
MODEL_CONFIGS: dict[str, type[BaseModel]] = {}
MODEL_TRAINERS: dict[str, str] = {}  # model name -> trainer family in recforge.train.TRAINERS
MULTITASK: set[str] = set()


def register_model(
    name: str, *, config: type[BaseModel], trainer: str = "sgd", multitask: bool = False
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Register a model class with the pydantic class that validates its `model:` block.

    `trainer` names the family that fits it: `sgd` (the mini-batch loop) unless the model is fitted
    another way (`gbdt_lr`: boosted trees, then L-BFGS over their leaves). `multitask`: it returns [B, T].
    """

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        MODEL_CONFIGS[name] = config
        MODEL_TRAINERS[name] = trainer
        if multitask:
            MULTITASK.add(name)
        return MODELS.register(name)(cls)

    return add


def model_options(cfg: ModelConfig) -> BaseModel:
    """The `model:` block (minus `name`) validated by the chosen model's config class."""
    MODELS.get(cfg.name, yaml_path="model.name")
    extra: dict[str, Any] = dict(cfg.model_extra or {})
    try:
        return MODEL_CONFIGS[cfg.name].model_validate(extra)
    except ValidationError as err:
        raise format_validation_error(
            err, model=MODEL_CONFIGS[cfg.name], overrides=cfg.overrides, prefix="model"
        ) from None


def model_trainer(cfg: ModelConfig) -> str:
    """The trainer family registered for the model named in `model.name`."""
    MODELS.get(cfg.name, yaml_path="model.name")
    return MODEL_TRAINERS[cfg.name]


def check_tasks(name: str, tasks: Sequence[str]) -> None:
    """A multi-task model needs a `tasks:` block; a single-task model takes at most one task."""
    if name in MULTITASK and not tasks:
        raise ConfigError(
            "tasks",
            f"model {name!r} is multi-task and needs a `tasks:` block",
            fix="list e.g. {name: ctr, label: click}",
        )
    if name not in MULTITASK and len(tasks) > 1:
        raise ConfigError(
            "model.name",
            f"{name!r} predicts one objective but {len(tasks)} tasks are configured",
            fix=f"use a multi-task model ({', '.join(sorted(MULTITASK))}) or one task",
        )


def build_model(schema: InputSchema, cfg: ModelConfig, tasks: Sequence[str] = ()) -> nn.Module:
    """A fresh model for the fitted features in `schema`; `tasks` names a multi-task model's outputs."""
    model_cls: Any = MODELS.get(cfg.name, yaml_path="model.name")
    check_tasks(cfg.name, tasks)
    if cfg.name in MULTITASK:
        schema = dataclasses.replace(schema, tasks=tuple(tasks))
    return model_cls(schema, model_options(cfg))  # type: ignore[no-any-return]
