"""How sample rows are assigned to train / valid / test."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recforge.config.features import Strict


class SplitConfig(Strict):
    method: Literal["random", "per_user", "leave_last", "by_date"] = "random"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 2020
    key_columns: tuple[str, ...] | None = Field(
        None,
        min_length=1,
        description="Columns whose values key each row's split hash (the log's identity, e.g. [user_id, item_id, "
        "timestamp]): copies of one log with other side columns then split alike. Default: every integer, string, "
        "boolean, date and timestamp column of the sample rows.",
    )
    user_column: str = "user_id"
    time_column: str = "timestamp"
    holdout_rounding: Literal["nearest", "floor"] = Field(
        "nearest",
        description="per_user: nearest rounds each user's train and valid cut points; floor gives valid and "
        "test floor(n * ratio) rows each and train the rest (RecBole's split_by_ratio).",
    )
    valid_from: str | None = Field(None, description="by_date: first date (inclusive) of valid.")
    test_from: str | None = Field(None, description="by_date: first date (inclusive) of test.")
