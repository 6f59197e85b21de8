"""Where the user and item tables of a push come from: explicit files, or a pipeline config's data source."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from recforge.config import PipelineConfig, load_config
from recforge.data import count_rows, iter_batches, load_source
from recforge.errors import ConfigError, DataError
from recforge.serving.store.options import StoreOptions
from recforge.serving.store.push import PushReport
from recforge.serving.store.redis_store import RedisStore

READ_ROWS = 65_536


@dataclass
class EntitySource:
    """One entity's rows to push: a table in memory, or a file streamed in record batches."""

    entity: str
    key: str
    origin: str
    data: pa.Table | Iterable[pa.RecordBatch]
    total_rows: int | None


def file_source(entity: str, path: str, key: str) -> EntitySource:
    """A Parquet file/directory or CSV, streamed (a file larger than RAM can be pushed)."""
    return EntitySource(entity, key, path, iter_batches(path, batch_rows=READ_ROWS), count_rows(path))


def config_sources(config: str | Path, overrides: Sequence[str] = ()) -> list[EntitySource]:
    """The user and item tables of a pipeline config's `data:` source (synthetic, movielens, tables...)."""
    cfg = load_config(config, list(overrides))
    if cfg.data.source == "samples":
        raise ConfigError(
            "data.source",
            "source 'samples' has no user or item tables",
            fix="pass --users/--items files instead",
            file=str(config),
        )
    return pipeline_sources(cfg, str(config))


def pipeline_sources(cfg: PipelineConfig, origin: str) -> list[EntitySource]:
    """The user and item tables of a validated pipeline config's data source; `origin` names it in errors."""
    raw = load_source(cfg.data)
    out = [
        EntitySource(entity, key, f"{origin} ({cfg.data.source})", table, table.num_rows)
        for entity, table, key in (("user", raw.users, raw.user_key), ("item", raw.items, raw.item_key))
        if table is not None
    ]
    if not out:
        raise DataError(
            f"{origin}: data source {cfg.data.source!r} has no user or item tables\n"
            "  fix: set data.tables.users/items, or pass --users/--items files"
        )
    return out


def entity_sources(
    config: str | Path | None,
    overrides: Sequence[str] = (),
    *,
    users: str | None = None,
    user_key: str | None = None,
    items: str | None = None,
    item_key: str | None = None,
) -> list[EntitySource]:
    """Sources for a push: explicit files win over the config's tables of the same entity."""
    if config is None and users is None and items is None:
        raise ConfigError(
            "features push", "nothing to push", fix="give a pipeline YAML, or --users FILE and/or --items FILE"
        )
    found = {s.entity: s for s in config_sources(config, overrides)} if config is not None else {}
    for entity, path, key in (("user", users, user_key), ("item", items, item_key)):
        if path is not None:
            found[entity] = file_source(entity, path, key or f"{entity}_id")
        elif key is not None and entity in found:
            found[entity].key = key
    return list(found.values())


def push_entities(sources: Sequence[EntitySource], options: StoreOptions, *, progress: bool = True) -> list[PushReport]:
    """Push every source to the Redis store of `options`; one report per entity."""
    with RedisStore(options) as store:
        return [store.push(s.entity, s.data, s.key, total_rows=s.total_rows, progress=progress) for s in sources]
