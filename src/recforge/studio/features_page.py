"""Features page: per input column its missing values and the values mapped to defaults, and the train vs
recent distribution with its PSI, binned exactly as the streaming drift monitor bins (`online.drift`)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import pyarrow as pa
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from recforge.data.readers import read_table
from recforge.online.drift import Shift, distribution_shift
from recforge.studio.bundles import pick_run
from recforge.studio.html import note, page, section, table
from recforge.studio.settings import Studio
from recforge.train.svg import line_chart


def feature_columns(config: dict[str, Any], train: pa.Table) -> list[str]:
    """The config's features that are columns of the samples (crosses and sequences are built later)."""
    names = [str(f.get("name")) for f in config.get("features", []) if isinstance(f, dict)]
    return [n for n in names if n in train.column_names]


def shift_chart(name: str, shift: Shift) -> str:
    series = {
        "train": [(float(i), float(v)) for i, v in enumerate(shift.expected)],
        "recent": [(float(i), float(v)) for i, v in enumerate(shift.actual)],
    }
    chart = line_chart(series, f"{name}: share per bin (PSI {shift.psi:.4f})", "bin", width=420, height=220)
    rows = [
        [n, label, float(e), float(a)]
        for n, (label, e, a) in enumerate(zip(shift.labels, shift.expected, shift.actual, strict=True))
    ]
    bins = table(["bin", "values", "train", "recent"], rows)
    return f"<div>{chart}<details><summary>{escape(name)} bins</summary>{bins}</details></div>"


def features_router(studio: Studio) -> APIRouter:
    router = APIRouter()

    @router.get("/features", response_class=HTMLResponse)
    def features_page(run: str | None = None) -> str:
        path = pick_run(studio, run)
        config = _yaml(path / "config.yaml")
        train = read_table(str(path / "samples" / "train.parquet"))
        recent_file = studio.recent or path / "samples" / "test.parquet"
        recent = read_table(str(recent_file))
        metrics_file = path / "metrics.json"
        defaults = json.loads(metrics_file.read_text()).get("defaults", {}) if metrics_file.is_file() else {}
        rows, charts, names = [], [], []
        for name in feature_columns(config, train):
            shift = distribution_shift(train[name], recent[name]) if name in recent.column_names else None
            missing_recent = recent[name].null_count if name in recent.column_names else None
            rows.append(
                [name, train[name].null_count, missing_recent, defaults.get(name, 0), shift.psi if shift else None]
            )
            names.append(name)
            if shift is not None:
                charts.append(shift_chart(name, shift))
        head = note(
            f"run {path.name}: train {train.num_rows:,} rows vs recent {recent.num_rows:,} rows ({recent_file})"
        )
        columns = ["feature", "missing (train)", "missing (recent)", "mapped to default", "PSI"]
        body = head + section("Per feature", table(columns, rows, names))
        body += section("Train vs recent", f'<div class="charts">{"".join(charts)}</div>')
        return page("features", "/features", body, prefix=studio.prefix)

    return router


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load(path.read_text()) or {})
