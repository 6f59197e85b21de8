"""Recall channels; importing this package registers every built-in channel in `CHANNELS`."""

from recforge.recall.channels import (
    bpr,
    ease,
    graph,
    matrix_factorization,
    mind,  # noqa: F401  (registers)
    neighbors,
    popular,
    spark_als,
    two_tower,
)
from recforge.recall.channels.base import (
    CHANNELS,
    Candidates,
    FitContext,
    Query,
    RecallChannel,
    ScoringChannel,
    build_channel,
    channel_options,
    register_channel,
)

__all__ = [
    "CHANNELS",
    "Candidates",
    "FitContext",
    "Query",
    "RecallChannel",
    "ScoringChannel",
    "bpr",
    "build_channel",
    "channel_options",
    "ease",
    "graph",
    "matrix_factorization",
    "neighbors",
    "popular",
    "register_channel",
    "spark_als",
    "two_tower",
]
