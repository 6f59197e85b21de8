"""The `recall:` block: which behavior rows are interactions, the channels, their merge and evaluation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recforge.config.features import Strict
from recforge.config.split import SplitConfig

RecallMetric = Literal["recall", "ndcg", "mrr", "hit", "precision", "coverage"]
RECALL_METRICS: tuple[RecallMetric, ...] = ("recall", "ndcg", "mrr", "hit", "precision", "coverage")

# RecBole's general-recommendation quick-start protocol, applied where the config leaves a value unset.
PRESETS: dict[str, dict[str, Any]] = {
    "recbole_general": {
        "positive": "rating >= 3",
        "min_user_interactions": 10,
        "min_item_interactions": 10,
        "split": {"method": "per_user", "ratios": [0.8, 0.1, 0.1], "holdout_rounding": "floor"},
    },
}


def merge_under(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """`given` over `base`, mapping by mapping: a key set in a nested block keeps the block's other preset keys."""
    out = dict(base)
    for key, value in given.items():
        out[key] = (
            merge_under(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return out


class InteractionsConfig(Strict):
    """How behavior rows become (user, item, weight, time) interactions and how they are split."""

    preset: Literal["recbole_general"] | None = Field(
        None,
        description="recbole_general: rating >= 3, 10-core users and items, per-user random 8:1:1 "
        "(valid/test get floor(n/10) rows each, as RecBole). Explicit keys override the preset.",
    )
    positive: str | None = Field(None, description="DuckDB SQL filter over behavior rows, e.g. `rating >= 3`.")
    weight: str | None = Field(
        None, description="DuckDB SQL expression for the interaction weight (default 1.0), e.g. `1 + 2 * buy`."
    )
    user_column: str | None = Field(None, description="User id column (default: the source's user key).")
    item_column: str | None = Field(None, description="Item id column (default: the source's item key).")
    time_column: str | None = Field("timestamp", description="Unix-seconds column, used by time decay and splits.")
    min_user_interactions: int = Field(0, ge=0, description="Iterative k-core: drop users with fewer rows.")
    min_item_interactions: int = Field(0, ge=0, description="Iterative k-core: drop items with fewer rows.")
    duplicates: Literal["max", "sum", "first"] = Field(
        "max", description="Repeated (user, item) rows in one split collapse to one with this weight."
    )
    split: SplitConfig = SplitConfig(method="per_user")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("preset"), str):
            return merge_under(PRESETS.get(data["preset"], {}), data)  # an unknown name fails on `preset` itself
        return data


class ChannelConfig(BaseModel):
    """One recall channel; `type` picks a registered channel, its other keys are that channel's options."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Unique channel name (provenance label).")
    type: str | None = Field(None, description="Registered channel type (default: `name`).")
    quota: int = Field(100, ge=1, description="Candidates this channel contributes per user.")
    weight: float = Field(1.0, gt=0, description="This channel's weight in the merge.")

    @property
    def kind(self) -> str:
        return self.type or self.name


class MergeConfig(Strict):
    """How channel candidates become one list: deduplicated, provenance kept, cold users get popular items."""

    strategy: Literal["rrf", "round_robin", "priority"] = Field(
        "rrf",
        description="rrf: sum of weight/(rrf_k + rank) over channels; round_robin: interleave by quota; "
        "priority: channels in config order.",
    )
    rrf_k: float = Field(60.0, gt=0, description="Rank offset of reciprocal-rank fusion.")
    k: int = Field(200, ge=1, description="Length of the merged list.")
    fallback: Literal["popular", "none"] = Field("popular", description="Fill short or cold-user lists.")


class RecallEvalConfig(Strict):
    ks: list[int] = Field(default_factory=lambda: [10, 20, 50], description="Cut-offs for every metric.")
    metrics: list[RecallMetric] = Field(default_factory=lambda: list(RECALL_METRICS))
    user_batch: int = Field(1024, ge=1, description="Users scored per block (bounds memory of dense scores).")


class RecallConfig(Strict):
    """Everything `recforge recall train` needs beside the `data:` block."""

    interactions: InteractionsConfig = InteractionsConfig()
    channels: list[ChannelConfig] = Field(min_length=1)
    merge: MergeConfig = MergeConfig()
    eval: RecallEvalConfig = RecallEvalConfig()
    seed: int = 2020
    threads: int | None = Field(None, ge=1, description="torch/BLAS threads (default: all cores).")
    progress: bool = True

    @model_validator(mode="after")
    def _unique_names(self) -> RecallConfig:
        names = [c.name for c in self.channels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"channel names must be unique, repeated: {dupes}")
        return self
