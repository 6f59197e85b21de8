"""Feature stores behind one interface: embedded (Arrow in process) or Redis, picked by `kind`.

store = build_store({"kind": "redis", "url": "redis://127.0.0.1:6379/0", "prefix": "shop"})
rows = store.get("user", [17, 42])             # [{"user_id": 17, "age": 31, ...}, None]
table = store.get_table("item", item_ids, ["price", "category_id"])
"""

from recforge.serving.store.base import STORES, FeatureStore, Lookup, StoreError, StoreStats
from recforge.serving.store.build import build_store
from recforge.serving.store.codec import ENCODING
from recforge.serving.store.embedded import EmbeddedStore
from recforge.serving.store.options import EntityOptions, StoreOptions, parse_store_options
from recforge.serving.store.push import PushReport
from recforge.serving.store.redis_store import RedisStore
from recforge.serving.store.sources import (
    EntitySource,
    config_sources,
    entity_sources,
    file_source,
    pipeline_sources,
    push_entities,
)

__all__ = [
    "ENCODING",
    "STORES",
    "EmbeddedStore",
    "EntityOptions",
    "EntitySource",
    "FeatureStore",
    "Lookup",
    "PushReport",
    "RedisStore",
    "StoreError",
    "StoreOptions",
    "StoreStats",
    "build_store",
    "config_sources",
    "entity_sources",
    "file_source",
    "parse_store_options",
    "pipeline_sources",
    "push_entities",
]
