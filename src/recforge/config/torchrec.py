"""`train.distributed.torchrec`: how TorchRec's planner may shard the embedding tables (validation only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recforge.config.features import Strict

ShardingChoice = Literal["auto", "table_wise", "row_wise"]


class TorchRecConfig(Strict):
    """Sharding of the embedding tables when `train.distributed.embeddings: torchrec`."""

    sharding: ShardingChoice = Field(
        "auto",
        description="auto: TorchRec's planner picks table-wise or row-wise per table; table_wise / row_wise force "
        "one for every table.",
    )
    tables: dict[str, ShardingChoice] = Field(
        default_factory=dict,
        description="Per-table override of `sharding`, by table name (a feature's name, or its `of` feature's).",
        examples=[{"user_id": "row_wise", "category_id": "table_wise"}],
    )
