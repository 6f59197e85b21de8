"""Blocks shared by the models; each model file composes these and holds nothing else."""

from recforge.models.layers.cross import CrossNetV2
from recforge.models.layers.fm import FactorizationMachine
from recforge.models.layers.mlp import MLP, MLPConfig

__all__ = ["MLP", "CrossNetV2", "FactorizationMachine", "MLPConfig"]
