"""Recall channels; importing this package registers every built-in channel in `CHANNELS`."""

from recforge.recall.channels import ease, matrix_factorization, neighbors, popular
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
    "build_channel",
    "channel_options",
    "ease",
    "matrix_factorization",
    "neighbors",
    "popular",
    "register_channel",
]
