"""Blocks shared by the models; each model file composes these and holds nothing else."""

from recforge.models.layers.capsule import CapsuleRouting, squash
from recforge.models.layers.cross import CrossNetV2
from recforge.models.layers.fm import FactorizationMachine
from recforge.models.layers.mlp import MLP, MLPConfig

__all__ = ["MLP", "CapsuleRouting", "CrossNetV2", "FactorizationMachine", "MLPConfig", "squash"]
