"""Model registry: `@register_model("deepfm", config=DeepFMConfig)`; `build_model` validates `model:`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from torch import nn

from recforge.config.loader import yaml_path
from recforge.config.schema import ModelConfig
from recforge.errors import ConfigError
from recforge.registry import Registry
from recforge.schema import InputSchema

MODELS: Registry[type[nn.Module]] = Registry("model")
MODEL_CONFIGS: dict[str, type[BaseModel]] = {}
MODEL_TRAINERS: dict[str, str] = {}  # model name -> trainer family in recforge.train.TRAINERS


def register_model(
    name: str, *, config: type[BaseModel], trainer: str = "sgd"
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Register a model class with the pydantic class that validates its `model:` block.

    `trainer` names the family that fits it: `sgd` (the mini-batch loop) unless the model is fitted
    another way (`gbdt_lr`: boosted trees, then L-BFGS over their leaves).
    """

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        MODEL_CONFIGS[name] = config
        MODEL_TRAINERS[name] = trainer
        return MODELS.register(name)(cls)

    return add


def model_options(cfg: ModelConfig) -> BaseModel:
    """The `model:` block (minus `name`) validated by the chosen model's config class."""
    MODELS.get(cfg.name, yaml_path="model.name")
    extra: dict[str, Any] = dict(cfg.model_extra or {})
    try:
        return MODEL_CONFIGS[cfg.name].model_validate(extra)
    except ValidationError as err:
        lines = [f"  model.{yaml_path(tuple(e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in err.errors()]
        raise ConfigError("model", f"{cfg.name}: {len(lines)} problem(s):\n" + "\n".join(lines)) from None


def model_trainer(cfg: ModelConfig) -> str:
    """The trainer family registered for the model named in `model.name`."""
    MODELS.get(cfg.name, yaml_path="model.name")
    return MODEL_TRAINERS[cfg.name]


def build_model(schema: InputSchema, cfg: ModelConfig) -> nn.Module:
    """A fresh model for the fitted features in `schema`."""
    model_cls: Any = MODELS.get(cfg.name, yaml_path="model.name")
    return model_cls(schema, model_options(cfg))  # type: ignore[no-any-return]
