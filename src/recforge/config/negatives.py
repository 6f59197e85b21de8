"""`data.negatives`: sampled negatives for logs that hold positives only (views, clicks, purchases)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recforge.config.features import Strict


class NegativesConfig(Strict):
    """Per positive log row, `per_positive` rows with the same user, time and context but another item, label 0."""

    per_positive: int = Field(4, ge=1, le=1000, description="Sampled negatives per positive row.")
    by: Literal["uniform", "popularity"] = Field(
        "uniform", description="uniform over the log's items, or in proportion to each item's rows in the log."
    )
    exclude_seen: bool = Field(True, description="Never sample an item the user has any row with in the log.")
    seed: int = 2020
