"""Feature configs: one pydantic class per `kind:`, registered with its reference check; the fit/transform
logic lives in recforge.features."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from recforge.config.feature_kinds import (
    FeatureBase,
    FeatureConfig,
    Strict,
    Where,
    crossable_kinds,
    feature_kind,
)
from recforge.errors import ConfigError

__all__ = ["FeatureBase", "FeatureConfig", "Strict"]


class StaticStorage(Strict):
    """Default storage: a fixed-size table (vocab rows or hash buckets)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"kind": "static"}]})

    kind: Literal["static"] = "static"


class CounterAdmission(Strict):
    """Admit an id into a dynamic table after `min_count` occurrences in training lookups (exact counts)."""

    kind: Literal["counter"]
    min_count: int = Field(2, ge=1)


class BloomAdmission(Strict):
    """Admit after `min_count` occurrences, counted in a counting Bloom filter of bounded memory
    (sized for `capacity` distinct ids at false-positive rate `fp_rate`; a false positive admits early)."""

    kind: Literal["bloom"]
    min_count: int = Field(2, ge=1, le=255)
    capacity: int = Field(1_000_000, ge=1)
    fp_rate: float = Field(0.01, gt=0, lt=1)


class Eviction(Strict):
    """What `DynamicTable.evict` removes (at checkpoint/export time and on demand); unset = never."""

    max_idle_steps: int | None = Field(None, ge=0, description="Rows not updated for more steps than this.")
    min_norm: float | None = Field(None, gt=0, description="Rows whose L2 norm is below this.")
    max_rows: int | None = Field(None, ge=1, description="Keep at most this many rows (least frequent go first).")


SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bytes(value: object) -> object:
    """`64MB` / `1.5GiB` / `4096` -> an int byte count (SI and binary units); anything else passes through."""
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
    if match is None or match.group(2).lower() not in SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size: write e.g. 67108864, 64MB or 64MiB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


class TierStorage(Strict):
    """Tiered rows: the hot ones in RAM within `ram_bytes` (values, optimizer state and row counters), the rest
    in a memory-mapped row file; a lookup promotes the cold rows it reads, demoting the coldest hot ones."""

    ram_bytes: Annotated[int, BeforeValidator(parse_bytes)] = Field(
        ge=1, description="RAM for hot rows: an int or a size such as 64MB / 64MiB."
    )
    path: str | None = Field(
        None, description="Directory for the row file (working storage, one per table); default: the temp dir."
    )
    policy: Literal["lfu", "lru"] = Field(
        "lfu", description="Which hot rows make room: least frequently (training lookups) or least recently read."
    )


class DynamicStorage(Strict):
    """A collision-free table keyed by the raw int64 id (or 64-bit hash of a string id) that grows on demand."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kind": "dynamic", "initial_capacity": 4},
                {"kind": "dynamic", "admission": {"kind": "bloom", "min_count": 2, "capacity": 1000}},
                {"kind": "dynamic", "tier": {"ram_bytes": "1KiB", "policy": "lru"}},
            ]
        },
    )

    kind: Literal["dynamic"]
    initial_capacity: int = Field(1024, ge=1, description="Rows allocated up front; grows x2 when full.")
    admission: Annotated[CounterAdmission | BloomAdmission, Field(discriminator="kind")] | None = None
    eviction: Eviction = Eviction()
    default: Literal["zero"] | float = Field(
        "zero", description="Vector (every element this value) that not-yet-admitted or unknown ids read."
    )
    tier: TierStorage | None = Field(None, description="Keep only the hot rows in RAM (see TierStorage).")


class MultiHashStorage(Strict):
    """`hashes` independent hashes of the raw id, each into its own table of `buckets` rows, combined per id:
    two ids share a vector only when all their buckets coincide (the rows of one table are still shared)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"kind": "multi_hash", "buckets": 16, "hashes": 2, "combine": "concat"}]},
    )

    kind: Literal["multi_hash"]
    buckets: int = Field(ge=2, description="Rows of each of the `hashes` tables.")
    hashes: int = Field(2, ge=1, le=8, description="Independent hash functions (and tables).")
    combine: Literal["sum", "mean", "concat"] = Field(
        "sum",
        description="How the k rows make one vector; concat gives each table dim/k columns "
        "(summed instead where dim is not a multiple of k, e.g. an FM model's dim-1 linear term).",
    )


Storage = Annotated[StaticStorage | DynamicStorage | MultiHashStorage, Field(discriminator="kind")]


@feature_kind("id", crossable=True)
class IdFeatureConfig(FeatureBase):
    """A categorical id: vocab (min_count, OOV row 0) or hash buckets."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "city", "kind": "id", "side": "user", "min_count": 2}]}
    )

    kind: Literal["id"]
    min_count: int = Field(1, ge=1, description="Values seen fewer times map to the OOV row 0.")
    max_vocab: int | None = Field(None, ge=1, description="Keep only the most frequent values.")
    hash_buckets: int | None = Field(None, ge=2, description="Hash into this many rows, no vocab.")
    storage: Storage = StaticStorage()

    @model_validator(mode="after")
    def _raw_key_storage_has_no_vocab(self) -> IdFeatureConfig:
        kind = self.storage.kind
        if kind != "static" and (self.hash_buckets or self.max_vocab or self.min_count > 1):
            hint = (
                "use storage.admission.min_count to admit ids after N occurrences"
                if kind == "dynamic"
                else "storage.buckets sets the table size"
            )
            raise ValueError(
                f"storage kind {kind!r} keys rows by the raw id: drop hash_buckets / max_vocab / min_count ({hint})"
            )
        return self


@feature_kind("numeric", crossable=True)
class NumericFeatureConfig(FeatureBase):
    """A number: bucketized to an id (boundaries or fitted quantiles) or kept dense (raw/standard/log)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "price", "kind": "numeric", "side": "item", "n_buckets": 4}]},
    )

    kind: Literal["numeric"]
    transform: Literal["bucket", "raw", "standard", "minmax", "log"] = "bucket"
    boundaries: list[float] | None = Field(None, min_length=1)
    n_buckets: int = Field(10, ge=2, description="Quantile buckets fitted on train when no boundaries.")
    fill: float = Field(0.0, description="Dense value used for null/NaN/inf (counted and logged).")


@feature_kind("tag", crossable=True)
class TagFeatureConfig(FeatureBase):
    """A multi-valued column (Arrow list or a `sep`-joined string), optionally `tag:weight`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "genres", "kind": "tag", "side": "item", "sep": "|", "max_len": 3}]},
    )

    kind: Literal["tag"]
    sep: str | None = Field(None, description="Separator when the column is a string.")
    weight_sep: str | None = Field(None, description="e.g. ':' for 'drama:0.7' pairs.")
    max_len: int = Field(16, ge=1)
    min_count: int = Field(1, ge=1)
    hash_buckets: int | None = Field(None, ge=2)
    pooling: Literal["mean", "sum"] = "mean"


def _check_sequence(cfg: Any, f: Any, kinds: dict[str, str], where: Where) -> None:
    """`of` names an id feature, whose table the sequence shares (so no other `dim`)."""
    if kinds.get(f.of) != "id":
        ids = sorted(n for n, k in kinds.items() if k == "id")
        raise ConfigError(
            where.path,
            f"'of: {f.of}' must name an id feature",
            fix=f"use one of {', '.join(ids) or '(none)'}",
            file=where.file,
        )
    of = next(c for c in cfg.features if c.name == f.of)
    if of.hash_buckets is None and f.dim not in (None, of.dim):
        raise ConfigError(
            where.path,
            f"dim {f.dim} differs from {f.of}'s; a sequence shares its table",
            fix="drop `dim:` here",
            file=where.file,
        )


@feature_kind("sequence", check=_check_sequence)
class SequenceFeatureConfig(FeatureBase):
    """A behavior sequence of another id feature's values (shares its vocab and table)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "clicks", "kind": "sequence", "side": "user", "of": "item_id", "max_len": 4}]
        },
    )

    kind: Literal["sequence"]
    of: str = Field(description="The id feature whose values the sequence holds.")
    sep: str | None = None
    max_len: int = Field(50, ge=1)
    pooling: Literal["mean", "sum"] = "mean"
    attrs: list[str] = Field(
        default_factory=list,
        description="Id or tag features of the same side as `of` (e.g. category) that describe each element; "
        "fitted as an item -> attribute map on train and emitted aligned with the sequence.",
    )


def _check_cross(cfg: Any, f: Any, kinds: dict[str, str], where: Where) -> None:
    """Every input is a crossable feature, and at most one is a tag."""
    crossable = crossable_kinds()
    for name in f.inputs:
        if kinds.get(name) not in crossable:
            raise ConfigError(
                where.path,
                f"input {name!r} must be a feature of a crossable kind ({', '.join(crossable)})",
                fix=f"use feature names among: {', '.join(n for n, k in kinds.items() if k in crossable)}",
                file=where.file,
            )
    if sum(kinds[n] == "tag" for n in f.inputs) > 1:
        raise ConfigError(where.path, "at most one input of a cross may be a tag feature", file=where.file)


@feature_kind("cross", check=_check_cross)
class CrossFeatureConfig(FeatureBase):
    """Hash of the combined raw values of two or more features (cartesian for multi-valued inputs)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "user_x_item", "kind": "cross", "inputs": ["user_id", "item_id"], "buckets": 97}]
        },
    )

    kind: Literal["cross"]
    inputs: list[str] = Field(min_length=2)
    buckets: int = Field(100_000, ge=2)
    max_len: int = Field(32, ge=1, description="Cap on crossed values per row when an input is multi-valued.")


@feature_kind("lookup")
class LookupFeatureConfig(FeatureBase):
    """Value from a map-typed column by key (e.g. a user's click count for the item's category)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "category_clicks",
                    "kind": "lookup",
                    "side": "user",
                    "map_column": "clicks_by",
                    "key": "category",
                }
            ]
        },
    )

    kind: Literal["lookup"]
    map_column: str
    key: str = Field(description="Column holding the key to look up.")
    transform: Literal["bucket", "raw", "standard", "log"] = "raw"
    boundaries: list[float] | None = Field(None, min_length=1)
    n_buckets: int = Field(10, ge=2)
    fill: float = 0.0
