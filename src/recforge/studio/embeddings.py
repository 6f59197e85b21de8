"""Embeddings page: per embedding table its rows, admitted / evicted counts, a frequency histogram and tier
residency, from `pipeline.ev_inspect.inspect_embedding` (what `recforge ev inspect` prints)."""

from __future__ import annotations

import itertools
from functools import lru_cache
from html import escape
from typing import Any

import numpy as np
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from recforge.bundle import Bundle, load_bundle
from recforge.bundle.bundle import MANIFEST
from recforge.pipeline.ev_inspect import inspect_embedding
from recforge.studio.bundles import pick_bundle
from recforge.studio.html import cards, note, page, section
from recforge.studio.settings import Studio
from recforge.train.svg import bar_chart

SHOWN = ("kind", "rows", "dim", "capacity", "vocab_size", "ids_seen", "admitted_share", "evicted", "bytes")


def frequency_histogram(counts: np.ndarray, title: str) -> str:
    """Rows per frequency band (powers of two): how skewed the id traffic is."""
    if counts.size == 0:
        return note(f"{title}: no frequencies recorded")
    top = max(int(counts.max()), 1)
    edges = [0, *[2**i for i in range(int(np.log2(top)) + 2)]]
    labels = [f"{a + 1}-{b}" if b > a + 1 else str(b) for a, b in itertools.pairwise(edges)]
    sizes = np.histogram(counts, bins=np.array(edges, dtype=np.float64) + 0.5)[0]
    used = np.flatnonzero(sizes)
    first, last = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)  # bands outside the data say nothing
    return bar_chart(labels[first:last], [float(s) for s in sizes[first:last]], title)


def table_section(summary: dict[str, Any], frequencies: np.ndarray | None) -> str:
    name = str(summary["table"])
    shown = [(k, summary[k]) for k in SHOWN if k in summary]
    if summary.get("evicted") is None and summary.get("kind") == "dynamic":
        shown = [(k, "not counted" if k == "evicted" else v) for k, v in shown]
    body = cards(shown, f"{name}:")
    tier = summary.get("tier")
    if isinstance(tier, dict):
        body += cards([(f"tier {k}", v) for k, v in tier.items()], f"{name}:")
    if frequencies is not None:
        body += frequency_histogram(frequencies, "rows per frequency")
    return section(f"table {name}", body)


@lru_cache(maxsize=4)
def _loaded(path: str, stamp: int) -> Bundle:
    """A bundle loaded once per manifest write (`stamp`): a page view costs no reload until a new version lands."""
    return load_bundle(path)


def embeddings_router(studio: Studio) -> APIRouter:
    router = APIRouter()

    @router.get("/embeddings", response_class=HTMLResponse)
    def embeddings_page(run: str | None = None) -> str:
        path = pick_bundle(studio, run)
        bundle = _loaded(str(path), (path / MANIFEST).stat().st_mtime_ns)
        body = note(f"bundle {path} (version {bundle.version})")
        tables = dict.fromkeys(f.table for f in bundle.features.schema().fields if f.table)
        for table in tables:
            rows, summary = inspect_embedding(bundle.model, bundle.features, str(table))
            column = "freq" if "freq" in rows.column_names else "count" if "count" in rows.column_names else None
            counts = rows[column].drop_null().to_numpy() if column else None
            body += table_section(summary, counts)
        return page("embeddings", "/embeddings", body or escape("no embedding tables"), prefix=studio.prefix)

    return router
