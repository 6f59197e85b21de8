"""Data sources by name: each turns the `data:` block of the config into RawTables."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa

from recforge.config.schema import DataConfig
from recforge.config.tables import CatalogTable, TableFile
from recforge.data.criteo import load_criteo
from recforge.data.movielens import load_movielens
from recforge.data.raw import RawTables
from recforge.data.synthetic import generate_synthetic
from recforge.data.tablefile import read_table_file
from recforge.errors import ConfigError
from recforge.registry import Registry

log = logging.getLogger(__name__)

Source = Callable[[DataConfig], RawTables]
SOURCES: Registry[Source] = Registry("data source")


def _path(cfg: DataConfig) -> str:
    if not cfg.path:
        raise ConfigError("data.path", f"source {cfg.source!r} needs a path", fix="set `data.path` to the data")
    return cfg.path


@SOURCES.register("movielens")
def movielens_source(cfg: DataConfig) -> RawTables:
    """A MovieLens directory (RecBole atomic, raw 100K or raw 1M) at `data.path`."""
    return load_movielens(_path(cfg))


@SOURCES.register("criteo")
def criteo_source(cfg: DataConfig) -> RawTables:
    """A Criteo-format TSV file at `data.path`."""
    return load_criteo(_path(cfg))


@SOURCES.register("synthetic")
def synthetic_source(cfg: DataConfig) -> RawTables:
    """The embedded synthetic e-commerce world sized by `data.synthetic`."""
    return generate_synthetic(cfg.synthetic)


@SOURCES.register("tables")
def tables_source(cfg: DataConfig) -> RawTables:
    """Warehouse-style behavior, user and item files (Parquet/CSV, paths or fsspec URLs) in `data.tables`."""
    tables = cfg.tables
    if tables is None:
        raise ConfigError(
            "data.tables",
            "source 'tables' needs a `tables:` block",
            fix="set `data.tables.behavior` (and users/items)",
        )
    read: dict[str, pa.Table | None] = {}
    counts: dict[str, int] = {}
    for name in ("behavior", "users", "items"):
        spec = getattr(tables, name)
        read[name] = None
        if isinstance(spec, CatalogTable):
            raise ConfigError(
                f"data.tables.{name}.table",
                f"{spec.table!r} is a table of Spark's catalog, which engine 'duckdb' cannot read",
                fix="set `engine: spark` (with `spark.conf` pointing at the metastore), or give the table's files",
            )
        if spec is not None:
            read[name], table_counts = read_table_file(spec, f"data.tables.{name}")
            counts.update({f"{name}_{key}": value for key, value in table_counts.items()})
    assert read["behavior"] is not None  # required by TablesConfig
    return RawTables(
        behavior=read["behavior"],
        users=read["users"],
        items=read["items"],
        user_key=tables.user_key,
        item_key=tables.item_key,
        origin=tables.behavior.path if isinstance(tables.behavior, TableFile) else tables.behavior.table,
        counts=counts,
    )


def load_source(cfg: DataConfig) -> RawTables:
    """RawTables for `cfg.source`; 'samples' has none (its files are already split samples)."""
    if cfg.source == "samples":
        raise ConfigError(
            "data.source",
            "source 'samples' has no raw tables to load",
            fix="use build_samples, which returns its files",
        )
    raw = SOURCES.get(cfg.source, yaml_path="data.source")(cfg)
    log.info("source %s (%s): %s", cfg.source, raw.origin, raw.summary())
    return raw
