"""Build a feature store from its options: the registry picks the kind, so adding a kind needs no edit here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recforge.serving.store.base import STORES, FeatureStore
from recforge.serving.store.options import StoreOptions, parse_store_options


def build_store(
    options: StoreOptions | dict[str, Any], *, base_dir: str | Path | None = None, where: str = "serving.store"
) -> FeatureStore:
    """The store `options` describe; relative entity paths are taken relative to `base_dir`."""
    parsed = parse_store_options(options, where=where).resolved(base_dir)
    return STORES.get(parsed.kind, yaml_path=f"{where}.kind").from_options(parsed)
