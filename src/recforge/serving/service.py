"""A running service's parts, built from a model path and a ServingConfig: what the HTTP app serves.

Everything heavy happens here at start (or on the watcher thread at a swap): the feature store, the
recall bundle, the item catalog, the ranking model with its item-side inputs precomputed and warmed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from recforge.bundle.stream import ModelVersion, current
from recforge.config.serving import ServingConfig
from recforge.data.readers import read_table
from recforge.errors import ConfigError
from recforge.recall.model import RecallModel
from recforge.serving.metrics import ServiceMetrics
from recforge.serving.predictor import Predictor
from recforge.serving.recommender import Catalog, Recommender
from recforge.serving.request_log import RequestLog
from recforge.serving.store import FeatureStore, StoreOptions, build_store, parse_store_options
from recforge.serving.swap import ModelSlot, ModelWatcher

log = logging.getLogger(__name__)


@dataclass
class Service:
    model_path: Path
    config: ServingConfig
    slot: ModelSlot[Predictor]
    watcher: ModelWatcher[Predictor]
    recommender: Recommender
    store: FeatureStore
    catalog: Catalog
    metrics: ServiceMetrics
    request_log: RequestLog | None = None

    @property
    def predictor(self) -> Predictor:
        return self.slot.current

    def start(self) -> None:
        if self.config.watch.enabled:
            self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
        self.store.close()
        if self.request_log is not None:
            self.request_log.close()


def _catalog(options: StoreOptions, recall: RecallModel | None, item_key: str) -> Catalog:
    """Servable items: the store's item table (read from its configured path), else the recall bundle's ids."""
    entity = options.entities.get("item")
    if entity is None or entity.path is None:
        if recall is None:
            raise ConfigError(
                "serving.store.entities.item",
                "no item table and no recall bundle: the service does not know which items exist",
                fix="give the store an `item` entity with a `path`, or set `serving.recall`",
            )
        return Catalog(pa.table({item_key: recall.vocab.item_ids}), item_key)
    table = read_table(entity.path)
    key = options.key_of("item")
    if key != item_key:
        if item_key in table.column_names:
            raise ConfigError("serving.store.entities.item.key", f"is {key!r} but the model's item id is {item_key!r}")
        table = table.append_column(item_key, table[key])
    if recall is not None:
        known = pc.is_in(recall.vocab.item_ids, value_set=table[item_key].cast(recall.vocab.item_ids.type))
        missing = len(known) - pc.sum(known).as_py()
        if missing:
            log.warning("%d recalled item ids have no row in the item table: their features are defaults", missing)
    return Catalog(table, item_key)


def build_service(model_path: str | Path, config: ServingConfig) -> Service:
    """Load store, recall bundle and the current model version; nothing is served yet."""
    path = Path(model_path)
    metrics = ServiceMetrics()
    options = parse_store_options(config.store)
    store = build_store(options)
    recall = RecallModel.load(config.recall) if config.recall else None
    first = current(path)
    probe = Predictor.load(first.path, backend=config.backend, threads=config.threads)
    catalog = _catalog(options, recall, probe.item_key)

    def load(version: ModelVersion) -> Predictor:
        predictor = slot.current.after_delta(version.path)  # a delta of the served version: no full reload
        if predictor is not None:
            metrics.delta_swaps.inc()
        else:
            predictor = Predictor.load(version.path, backend=config.backend, threads=config.threads)
        predictor.set_items(catalog.table)
        predictor.score({}, catalog.table[predictor.item_key][:1].to_pylist())  # warm-up off the request path
        return predictor

    probe.set_items(catalog.table)
    slot = ModelSlot(probe)
    metrics.serving(probe.name, probe.version)

    def swapped(model: Predictor) -> None:
        metrics.swaps.inc()
        metrics.serving(model.name, model.version)

    watcher = ModelWatcher(
        path,
        slot,
        load,
        config.watch.poll_seconds,
        on_swap=swapped,
        on_failure=lambda _version, _exc: metrics.swap_failures.inc(),
    )
    requests = config.logging.requests
    request_log = RequestLog(requests, metrics) if requests is not None else None
    recommender = Recommender(slot, store, catalog, recall, config.recommend, request_log)
    return Service(path, config, slot, watcher, recommender, store, catalog, metrics, request_log)
