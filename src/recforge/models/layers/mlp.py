"""Multi-layer perceptron with its config; reports `output_dim` so models can chain blocks."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn.utils import skip_init

from recforge.models.layers.dropout import FastDropout

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class MLPConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: tuple[int, ...] = Field((256, 128, 64), min_length=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    activation: Literal["relu", "gelu", "silu", "tanh"] = "relu"
    batch_norm: bool = False
    dropout_first: bool = Field(
        False, description="Drop before each linear layer (inputs included, as RecBole does) instead of after."
    )
    init: Literal["xavier_normal", "torch_default"] = Field(
        "xavier_normal",
        description="Linear weights: xavier_normal with zero bias (RecBole, FuxiCTR; +0.002-0.004 test AUC on "
        "ml-100k DeepFM) or torch's kaiming-uniform default.",
    )


def linear(in_dim: int, out_dim: int, init: str) -> nn.Linear:
    """A linear layer initialized once by `init` (skip_init: no wasted default draw first)."""
    if init == "torch_default":
        return nn.Linear(in_dim, out_dim)
    layer = skip_init(nn.Linear, in_dim, out_dim)
    nn.init.xavier_normal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Module):
    """[B, in_dim] -> [B, hidden[-1]] (or [B, out_dim] with a final linear layer)."""

    def __init__(self, in_dim: int, config: MLPConfig, out_dim: int | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for size in config.hidden:
            if config.dropout > 0 and config.dropout_first:
                layers.append(FastDropout(config.dropout))
            layers.append(linear(width, size, config.init))
            if config.batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(ACTIVATIONS[config.activation]())
            if config.dropout > 0 and not config.dropout_first:
                layers.append(FastDropout(config.dropout))
            width = size
        if out_dim is not None:
            layers.append(linear(width, out_dim, config.init))
            width = out_dim
        self.net = nn.Sequential(*layers)
        self.output_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]
