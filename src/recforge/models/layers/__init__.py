"""Blocks shared by the models; each model file composes these and holds nothing else."""

from recforge.models.layers.attention import (
    SequenceTransformer,
    TargetAttention,
    TargetAttentionConfig,
    TransformerConfig,
)
from recforge.models.layers.capsule import CapsuleRouting, squash
from recforge.models.layers.cross import CrossNetV2
from recforge.models.layers.fm import FactorizationMachine
from recforge.models.layers.mlp import MLP, MLPConfig
from recforge.models.layers.sequence import (
    Dedup,
    SequenceInputs,
    recency_ranks,
    sequence_fields,
    without_sequences,
)

__all__ = [
    "MLP",
    "CapsuleRouting",
    "CrossNetV2",
    "Dedup",
    "FactorizationMachine",
    "MLPConfig",
    "SequenceInputs",
    "SequenceTransformer",
    "TargetAttention",
    "TargetAttentionConfig",
    "TransformerConfig",
    "recency_ranks",
    "sequence_fields",
    "squash",
    "without_sequences",
]
