"""Prometheus metrics of one service instance (its own registry, so tests and embedders never clash)."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Request latencies of a millisecond-scale service: fine buckets below 50 ms, coarse above.
LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    """Requests, latency, errors, the served model version and hot-swap outcomes."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "recforge_requests",
            "Requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "recforge_request_seconds",
            "Request latency inside the service.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "recforge_errors",
            "Requests that failed, by endpoint and error kind.",
            ["endpoint", "kind"],
            registry=self.registry,
        )
        self.model_version = Gauge(
            "recforge_model_info",
            "1 for the model version being served.",
            ["name", "version"],
            registry=self.registry,
        )
        self.swaps = Counter("recforge_model_swaps", "Model versions swapped in.", registry=self.registry)
        self.swap_failures = Counter(
            "recforge_model_swap_failures",
            "Model versions that failed to load (the old one kept serving).",
            registry=self.registry,
        )
        self.delta_swaps = Counter(
            "recforge_model_delta_swaps",
            "Swaps made by applying a delta version to a copy of the served model (no full reload).",
            registry=self.registry,
        )
        self.request_log_records = Counter(
            "recforge_request_log_records", "Sampled requests written to the request log.", registry=self.registry
        )
        self.request_log_dropped = Counter(
            "recforge_request_log_dropped",
            "Sampled requests not logged: the writer's queue was full or the record could not be written.",
            registry=self.registry,
        )
        self._health_gauges()

    def _health_gauges(self) -> None:
        """Gauges set at scrape time from what their owners keep (drift file, store, GC)."""
        self.drift_alarm = Gauge(
            "recforge_drift_alarm",
            "1 while the streaming trainer's drift alarm holds publishing (-1: no trainer reports drift here).",
            registry=self.registry,
        )
        self.store_fallbacks = Gauge(
            "recforge_store_fallbacks",
            "Feature lookups answered with defaults because the store failed (cumulative, read at scrape).",
            registry=self.registry,
        )
        self.store_healthy = Gauge(
            "recforge_store_healthy", "1 while the feature store answers.", registry=self.registry
        )
        self.gc_frozen = Gauge(
            "recforge_gc_frozen_objects",
            "Objects the serving process froze after start-up (kept out of full GC passes; 0: not frozen).",
            registry=self.registry,
        )

    def serving(self, name: str, version: str) -> None:
        """Point the model-info gauge at the version now being served."""
        self.model_version.clear()
        self.model_version.labels(name=name, version=version).set(1)

    def render(
        self,
        store_stats: dict[str, object] | None = None,
        store_healthy: bool = True,
        drift: dict[str, object] | None = None,
    ) -> bytes:
        """The exposition text; store and drift figures are read at scrape time (their owners keep them)."""
        self.drift_alarm.set(-1.0 if drift is None else float(bool(drift.get("alarm"))))
        fallbacks = (store_stats or {}).get("fallbacks", 0)
        self.store_fallbacks.set(float(fallbacks) if isinstance(fallbacks, int | float) else 0.0)
        self.store_healthy.set(1.0 if store_healthy else 0.0)
        self.gc_frozen.set(float(gc.get_freeze_count()))
        return generate_latest(self.registry)
