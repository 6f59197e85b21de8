"""Feature-store options: the `serving.store` block, validated here so the store kinds own their settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recforge.config import yaml_path
from recforge.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntityOptions(_Strict):
    """One entity (user, item, shop...): where its table lives and which column is its key."""

    path: str | None = Field(
        None, description="Parquet file or directory, or CSV (any fsspec URL); required by the embedded store."
    )
    key: str | None = Field(None, description="Key column; default `{entity}_id`.")


class StoreOptions(_Strict):
    """How the service looks up user and item features: in process (embedded) or in Redis."""

    kind: str = Field("embedded", description="Registered store kind: embedded | redis.")
    url: str = Field("redis://127.0.0.1:6379/0", description="redis: server URL (redis://, rediss://, unix://).")
    prefix: str = Field("recforge", min_length=1, description="redis: namespace; rows live at PREFIX:ENTITY:KEY.")
    timeout_ms: float = Field(50.0, gt=0, description="redis: connect and read timeout of one lookup round trip.")
    retry_min_ms: float = Field(100.0, gt=0, description="redis: first wait before retrying a failed server.")
    retry_max_ms: float = Field(5_000.0, gt=0, description="redis: the wait doubles after each failure up to this.")
    ttl_s: int | None = Field(None, ge=1, description="redis: rows written by `push` expire after this many seconds.")
    batch_rows: int = Field(1_000, ge=1, description="redis: rows per pipelined write in `push`.")
    push_timeout_s: float = Field(30.0, gt=0, description="redis: socket timeout of `push` (batch writes).")
    entities: dict[str, EntityOptions] = Field(
        default_factory=dict, description="Entity name -> table and key, e.g. {user: {path: users.parquet}}."
    )
    fallback: StoreOptions | None = Field(
        None, description="redis: an (embedded) store answering while Redis is unreachable; else defaults."
    )

    @field_validator("entities")
    @classmethod
    def _entity_names(cls, value: dict[str, EntityOptions]) -> dict[str, EntityOptions]:
        bad = [name for name in value if not name or ":" in name]
        if bad:
            raise ValueError(f"entity names must be non-empty and free of ':', got {bad}")
        return value

    def key_of(self, entity: str) -> str:
        """The key column of `entity`: configured, or `{entity}_id`."""
        options = self.entities.get(entity)
        return (options.key if options else None) or f"{entity}_id"

    def resolved(self, base_dir: str | Path | None) -> StoreOptions:
        """A copy whose relative local entity paths are taken relative to `base_dir` (the config's folder)."""
        if base_dir is None:
            return self
        entities = {
            name: e.model_copy(update={"path": _resolve(e.path, Path(base_dir))}) for name, e in self.entities.items()
        }
        fallback = self.fallback.resolved(base_dir) if self.fallback else None
        return self.model_copy(update={"entities": entities, "fallback": fallback})


def _resolve(path: str | None, base_dir: Path) -> str | None:
    if path is None or "://" in path or Path(path).is_absolute():
        return path
    return str(base_dir / path)


def parse_store_options(raw: StoreOptions | dict[str, Any], *, where: str = "serving.store") -> StoreOptions:
    """Validated options; every problem is reported at once with its YAML path under `where`."""
    if isinstance(raw, StoreOptions):
        return raw
    try:
        return StoreOptions.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            given = e.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"  {'.'.join(filter(None, [where, yaml_path(tuple(e['loc']))]))}: {e['msg']}{shown}")
        raise ConfigError(where, f"{len(lines)} problem(s):\n" + "\n".join(lines)) from None
