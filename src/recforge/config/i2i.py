"""Config of the warehouse-style similarity job (ItemCF, Swing, UserCF); the logic lives in recforge.recall.i2i."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recforge.config.features import Strict

SECONDS_PER_UNIT = {"seconds": 1.0, "hours": 3600.0, "days": 86400.0}

Engine = Literal["duckdb", "numpy", "spark"]


class TimeDecay(Strict):
    """Hyperbolic decay of a co-occurrence: weight = 1 / (1 + |t_i - t_j| / tau), so it halves at |Δt| = tau."""

    tau: float = Field(gt=0, description="Time at which a pair's contribution halves, in `unit`.")
    unit: Literal["seconds", "hours", "days"] = Field("days", description="Unit of `tau`; timestamps are unix seconds.")

    @property
    def tau_seconds(self) -> float:
        return self.tau * SECONDS_PER_UNIT[self.unit]


class I2IConfig(Strict):
    """One similarity job: a behavior table in, the top-N most similar items (or users) per item (or user) out."""

    method: Literal["itemcf", "swing", "usercf"] = Field(
        "itemcf", description="itemcf: item co-occurrence; swing: Alibaba's Swing; usercf: user co-occurrence."
    )
    similarity: Literal["cosine", "jaccard", "asymmetric_cosine"] = Field(
        "cosine",
        description="itemcf/usercf: co / sqrt(n_i n_j); co / (n_i + n_j - co) (Tanimoto when weighted); "
        "co / (n_i^alpha n_j^(1-alpha)).",
    )
    alpha: float = Field(0.5, ge=0, le=1, description="asymmetric_cosine: exponent on the source item's count n_i.")
    penalty: bool = Field(
        False,
        description="itemcf: weight each user by 1/log(1+|items of user|) (IUF); "
        "usercf: weight each item by 1/log(1+|users of item|).",
    )
    time_decay: TimeDecay | None = Field(None, description="itemcf/usercf: decay pairs far apart in time.")
    min_co_count: int = Field(1, ge=1, description="itemcf/usercf: drop pairs with fewer shared users (items).")
    swing_alpha: float = Field(1.0, ge=0, description="swing: smoothing in 1 / (alpha + |I_u ∩ I_v|).")
    swing_user_weight: bool = Field(True, description="swing: weight users u, v by 1/sqrt(|I_u|) * 1/sqrt(|I_v|).")
    max_users_per_item: int = Field(
        500, ge=2, description="swing: keep at most this many users per item (see `swing_keep`); bounds the work."
    )
    swing_keep: Literal["recent", "random"] = Field(
        "recent",
        description="swing: which users an item over the cap keeps: most recent (needs `time_col`, ties by user id) "
        "or a sample fixed by `seed`.",
    )
    seed: int = Field(2020, description="Seed of the `swing_keep: random` sample.")
    top_n: int = Field(100, ge=1, description="Neighbors kept per item (user).")
    behaviors: list[str] | None = Field(
        None, min_length=1, description="Keep only rows whose behavior is one of these, e.g. ['buy']."
    )
    behavior_weights: dict[str, float] | None = Field(
        None,
        min_length=1,
        description="Weight per behavior, e.g. {click: 1, buy: 4}; rows with other behaviors are dropped and counted.",
    )
    dedupe: Literal["max", "sum"] = Field(
        "max", description="How repeated (user, item) rows collapse: strongest weight, or total weight."
    )
    strict: bool = Field(
        False, description="Raise on null ids, unmapped behaviors and non-positive weights instead of dropping them."
    )
    engine: Engine = Field(
        "duckdb",
        description="duckdb: embedded, in process; numpy: in-process scipy, fastest for data that fits in memory; "
        "spark: pyspark, local or a cluster (`spark_master`). All give the same lists.",
    )
    spark_master: str = Field("local[2]", description="Spark master URL, e.g. local[4], spark://host:7077, yarn.")
    spark_conf: dict[str, str] = Field(
        default_factory=dict, description="Extra Spark settings, e.g. {spark.executor.memory: 8g}."
    )
    user_col: str = Field("user_id", description="Input column with user ids (integers or strings).")
    item_col: str = Field("item_id", description="Input column with item ids (integers or strings).")
    behavior_col: str = Field("behavior", description="Input column read by `behaviors` and `behavior_weights`.")
    weight_col: str | None = Field(
        None, description="Optional numeric weight column; multiplied by the behavior weight (default weight 1)."
    )
    time_col: str = Field(
        "timestamp", description="Unix seconds or date/timestamp; read only by `time_decay` and `swing_keep: recent`."
    )
