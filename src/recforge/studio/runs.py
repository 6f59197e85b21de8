"""Runs pages: a directory of `recforge train` run directories, one run, two runs side by side, the run report.

A run directory holds config.yaml, metrics.json (once finished) and evals.jsonl (one line per evaluation).
Run names in URLs go through `recforge.paths.inside`, so a request can never leave the runs directory.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from recforge.errors import ConfigError, DataError
from recforge.paths import SAFE_NAME, inside
from recforge.studio.html import Raw, link, note, page, section, table
from recforge.studio.settings import Studio
from recforge.train.evals_log import read_evals
from recforge.train.report import config_diff, flatten, learning_curves, metrics_table, run_report
from recforge.train.svg import line_chart

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader when PyYAML was built with it
HIGHLIGHTS = ("name", "model.name", "embedding_dim", "train.epochs", "train.batch_size")
METRICS = (("valid", "auc"), ("valid", "logloss"), ("test", "auc"), ("test", "logloss"))


@dataclass(frozen=True)
class Run:
    name: str
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any] | None  # None: not finished


def run_dir(root: Path, name: str) -> Path:
    path = inside(root, name, where="run", fix="pick a run from the runs page")
    if not (path / "config.yaml").is_file():
        raise DataError(f"{path} is not a run directory (no config.yaml)\n  fix: pick a run from the runs page")
    return path


def read_run(root: Path, name: str) -> Run:
    path = run_dir(root, name)
    config = yaml.load((path / "config.yaml").read_text(), Loader=SAFE_LOADER) or {}
    metrics_file = path / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    return Run(name, path, config, metrics)


def list_runs(root: Path) -> tuple[list[Run], list[str]]:
    """The runs under `root` by name, and the names of directories skipped for an unsafe name."""
    found, unsafe = [], []
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if not (child / "config.yaml").is_file():
            continue
        if SAFE_NAME.fullmatch(child.name):
            found.append(read_run(root, child.name))
        else:
            unsafe.append(child.name)
    return found, unsafe


def metric(run: Run, split: str, name: str) -> float | None:
    value = (run.metrics or {}).get(split, {}).get(name)
    return float(value) if isinstance(value, (int, float)) else None


def runs_table(runs: list[Run], prefix: str) -> str:
    columns = ["pick", "run", *HIGHLIGHTS, *(f"{s}.{m}" for s, m in METRICS)]
    rows = []
    for run in runs:
        flat = flatten(run.config)
        name = escape(run.name)
        pick = Raw(f'<input type="checkbox" name="run" value="{name}" aria-label="pick {name}">')
        rows.append(
            [
                pick,
                Raw(link(f"{prefix}/runs/{run.name}", run.name)),
                *(flat.get(h) for h in HIGHLIGHTS),
                *(metric(run, s, m) for s, m in METRICS),
            ]
        )
    return table(columns, rows, [r.name for r in runs])


def compare_curves(a: Run, b: Run) -> str:
    """One chart per metric in evals.jsonl: run a and run b against epoch."""
    evals = {a.name: read_evals(a.path), b.name: read_evals(b.path)}
    names = [
        k for k in dict.fromkeys(k for rows in evals.values() for r in rows for k in r) if k not in ("epoch", "step")
    ]
    charts = []
    for name in names:
        series = {
            run: [(float(r["epoch"]), float(r[name])) for r in rows if isinstance(r.get(name), (int, float))]
            for run, rows in evals.items()
        }
        charts.append(line_chart(series, name, "epoch"))
    return f'<div class="charts">{"".join(charts)}</div>'


def runs_router(studio: Studio) -> APIRouter:
    router = APIRouter()
    prefix = studio.prefix

    def root() -> Path:
        return studio.need(studio.runs, "--runs", "a runs directory")

    @router.get("/", response_class=HTMLResponse)
    def runs_page() -> str:
        if studio.runs is None:
            return page("runs", "/", note("no runs directory given (recforge ui --runs DIR)"), prefix=prefix)
        runs, unsafe = list_runs(root())
        button = "<button>compare two</button>"
        form = f'<form method="get" action="{escape(prefix)}/compare">{runs_table(runs, prefix)}{button}</form>'
        skipped = note(f"skipped (unsafe directory names): {', '.join(unsafe)}", "err") if unsafe else ""
        return page("runs", "/", note(f"{len(runs)} runs in {studio.runs}") + form + skipped, prefix=prefix)

    @router.get("/runs/{name}", response_class=HTMLResponse)
    def run_page(name: str) -> str:
        run = read_run(root(), name)
        report = link(f"{prefix}/runs/{name}/report", "HTML run report")
        if run.metrics is None:
            body = note("not finished: no metrics.json yet")
        else:
            body = section("Metrics", metrics_table(run.metrics))
        body += section("Learning curves", learning_curves(read_evals(run.path)))
        body += f"<p>{report}</p>" + section("Config", f"<pre>{_escaped_yaml(run.config)}</pre>")
        return page(f"run {name}: {run.config.get('name', '')}", "/", body, prefix=prefix)

    @router.get("/runs/{name}/report", response_class=HTMLResponse)
    def report(name: str) -> str:
        run = read_run(root(), name)
        with tempfile.TemporaryDirectory() as tmp:  # the run directory is only read, never written
            return run_report(run.path, Path(tmp) / "report.html").read_text()

    @router.get("/compare", response_class=HTMLResponse)
    def compare(run: Annotated[list[str], Query()] = []) -> str:  # noqa: B006 - FastAPI copies defaults
        picked = run
        if len(picked) != 2:
            raise ConfigError("compare", f"pick exactly two runs (got {len(picked)})", fix="tick two boxes")
        a, b = (read_run(root(), n) for n in picked)
        rows = config_diff(a.config, b.config)
        diff = table(["path", a.name, b.name], [list(r) for r in rows]) if rows else note("identical configs")
        scores = table(
            ["metric", a.name, b.name],
            [[f"{s}.{m}", metric(a, s, m), metric(b, s, m)] for s, m in METRICS],
            [f"{s}.{m}" for s, m in METRICS],
        )
        body = section("Metrics", scores) + section("Metric curves per epoch", compare_curves(a, b))
        body += section("Config diff", diff)
        back = link(f"{prefix}/", "all runs")
        return page(f"{a.name} vs {b.name}", "/", body + back, prefix=prefix)

    return router


def _escaped_yaml(config: dict[str, Any]) -> str:
    return escape(yaml.safe_dump(config, sort_keys=False))
