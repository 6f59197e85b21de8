"""Self-contained HTML run reports: learning curves, metrics, feature importance, config diff, trials.

A report is one HTML file with inline SVG and CSS: it opens offline in a browser, and it can be
attached to a ticket or a model review without the run directory beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from recforge.data.readers import read_table
from recforge.errors import DataError
from recforge.train.evals_log import read_evals
from recforge.train.svg import Series, bar_chart, line_chart

STYLE = """
body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:16px}
tr.best td{background:#eaf6ea}pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto}
"""


# ------------------------------------------------------------------ pieces
def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to leaf values; lists of named mappings are keyed by name (`features[user_id].dim`)."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    if isinstance(tree, list) and tree and all(isinstance(v, dict) and "name" in v for v in tree):
        out = {}
        for value in tree:
            out.update(flatten(value, f"{prefix}[{value['name']}]"))
        return out
    return {prefix: tree}


def config_diff(base: dict[str, Any], other: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(path, base value, other value) for every path whose value differs; absent sides are `None`."""
    a, b = flatten(base), flatten(other)
    missing = object()
    rows = []
    for path in dict.fromkeys([*a, *b]):
        left, right = a.get(path, missing), b.get(path, missing)
        if left != right:
            rows.append((path, None if left is missing else left, None if right is missing else right))
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.5g}"
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return escape(json.dumps(value))
    return escape(str(value))


def html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], highlight: int | None = None) -> str:
    """A plain table; text columns left-aligned, the `highlight` row shaded."""
    text_cols = {i for i in range(len(columns)) if any(isinstance(r[i], str) for r in rows)}
    head = "".join(f'<th class="{"l" if i in text_cols else ""}">{escape(c)}</th>' for i, c in enumerate(columns))
    body = []
    for n, row in enumerate(rows):
        cells = "".join(f'<td class="{"l" if i in text_cols else ""}">{_cell(v)}</td>' for i, v in enumerate(row))
        body.append(f'<tr class="{"best" if n == highlight else ""}">{cells}</tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def learning_curves(history: list[dict[str, Any]]) -> str:
    """Loss curves on one chart, each other valid metric on its own (different scales)."""
    if not history:
        return "<p>no evaluations recorded</p>"
    x_key = "epoch" if len({r["epoch"] for r in history}) == len(history) else "step"
    names = [k for k in dict.fromkeys(k for r in history for k in r) if k not in ("epoch", "step")]

    def series(name: str) -> list[tuple[float, float]]:
        return [(float(r[x_key]), float(r[name])) for r in history if isinstance(r.get(name), (int, float))]

    losses: Series = {n: series(n) for n in names if "loss" in n}
    charts = [line_chart(losses, "loss", x_key)] if losses else []
    charts += [line_chart({n: series(n)}, n, x_key) for n in names if "loss" not in n]
    return f'<div class="charts">{"".join(charts)}</div>'


def metrics_table(metrics: dict[str, Any]) -> str:
    """Valid and test metrics side by side, then the training figures."""
    splits = [s for s in ("valid", "test") if isinstance(metrics.get(s), dict) and metrics[s]]
    names = list(dict.fromkeys(k for s in splits for k, v in metrics[s].items() if isinstance(v, (int, float))))
    names = [n for n in names if n not in ("epoch", "step")]
    rows = [[n, *(metrics[s].get(n) for s in splits)] for n in names]
    out = html_table(["metric", *splits], rows)
    train = metrics.get("train")
    if isinstance(train, dict):
        out += html_table(["training", "value"], [[k, v] for k, v in train.items()])
    return out


def importance_section(path: str | Path) -> str:
    """Bar chart + table of a feature-importance file (CSV/Parquet/JSON rows): first text column is the
    feature, the first numeric column the importance."""
    table = _read_rows(path)
    text = [c for c in table.column_names if pa.types.is_string(table.schema.field(c).type)]
    numeric = [c for c in table.column_names if pa.types.is_floating(table.schema.field(c).type)]
    numeric += [c for c in table.column_names if pa.types.is_integer(table.schema.field(c).type)]
    if not text or not numeric:
        raise DataError(
            f"{path}: an importance table needs a text column (feature) and a numeric column (importance); "
            f"got {table.schema}"
        )
    rows = sorted(table.to_pylist(), key=lambda r: -abs(r[numeric[0]] or 0.0))
    chart = bar_chart([str(r[text[0]]) for r in rows], [float(r[numeric[0]] or 0.0) for r in rows], numeric[0])
    columns = table.column_names
    return chart + html_table(columns, [[r[c] for c in columns] for r in rows])


def _read_rows(path: str | Path) -> pa.Table:
    file = Path(path)
    if not file.exists():
        raise DataError(f"importance table {file} does not exist")
    if file.suffix == ".json":
        data = json.loads(file.read_text())
        rows = data if isinstance(data, list) else [{"feature": k, "importance": v} for k, v in data.items()]
        return pa.Table.from_pylist(rows)
    return read_table(str(file))


def diff_section(base: dict[str, Any] | None, config: dict[str, Any], base_name: str) -> str:
    """The changed paths against the baseline, or the whole config when there is none."""
    dumped = escape(yaml.safe_dump(config, sort_keys=False))
    full = f"<details><summary>full config</summary><pre>{dumped}</pre></details>"
    if base is None:
        return "<p>no baseline config given (pass one to see what changed)</p>" + full
    rows = config_diff(base, config)
    if not rows:
        return f"<p>identical to {escape(base_name)}</p>" + full
    return html_table(["path", escape(base_name), "this run"], [list(r) for r in rows]) + full


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """A whole HTML document from (heading, inner HTML) pairs."""
    body = "".join(f"<h2>{escape(h)}</h2>{html}" for h, html in sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )


# ----------------------------------------------------------------- reports
def run_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    baseline: dict[str, Any] | None = None,
    baseline_name: str = "baseline",
    importance: str | Path | None = None,
) -> Path:
    """report.html for one training run directory (config.yaml, metrics.json, evals.jsonl).

    `importance` defaults to the bundle's own `artifacts/importance.csv` when the model wrote one.
    """
    run = Path(run_dir)
    if not (run / "metrics.json").exists():
        raise DataError(f"{run} is not a finished run directory (no metrics.json); train it first")
    metrics = json.loads((run / "metrics.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    sections = [
        ("Metrics", metrics_table(metrics)),
        ("Learning curves", learning_curves(read_evals(run))),
    ]
    bundled = run / "bundle" / "artifacts" / "importance.csv"  # models that measure their own (GBDT gain)
    if importance is None and bundled.exists():
        importance = bundled
    if importance is not None:
        sections.append(("Feature importance", importance_section(importance)))
    sections.append((f"Config vs {baseline_name}", diff_section(baseline, config, baseline_name)))
    target = Path(out) if out is not None else run / "report.html"
    target.write_text(page(f"recforge run: {config.get('name', run.name)} ({run})", sections))
    return target


def tune_report(
    out_dir: str | Path,
    trials: pa.Table,
    objective: str,
    higher_is_better: bool,
    base: dict[str, Any],
    best: dict[str, Any],
    best_run: Path | None,
    importance: str | Path | None = None,
) -> Path:
    """report.html for a study: objective per trial with the best so far, the trials, the best run, its diff."""
    out = Path(out_dir)
    rows = trials.to_pylist()
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    higher = higher_is_better
    history: Series = {"trial": [], "best so far": []}
    best_value: float | None = None
    for r in done:
        value = float(r["value"])
        best_value = value if best_value is None else (max if higher else min)(best_value, value)
        history["trial"].append((float(r["trial"]), value))
        history["best so far"].append((float(r["trial"]), best_value))
    top = max(done, key=lambda r: r["value"] if higher else -r["value"]) if done else None
    highlight = rows.index(top) if top is not None else None
    columns = trials.column_names
    counts = {s: sum(1 for r in rows if r["state"] == s) for s in dict.fromkeys(r["state"] for r in rows)}
    sections = [
        (
            "Study",
            f"<p>objective: valid {escape(objective)}; trials: "
            + ", ".join(f"{n} {s}" for s, n in counts.items())
            + "</p>"
            + line_chart(history, f"valid {objective} per completed trial", "trial"),
        ),
        ("Trials", html_table(columns, [[r[c] for c in columns] for r in rows], highlight)),
    ]
    if best_run is not None and (best_run / "metrics.json").exists():
        metrics = json.loads((best_run / "metrics.json").read_text())
        sections.append(("Best trial: metrics", metrics_table(metrics)))
        sections.append(("Best trial: learning curves", learning_curves(read_evals(best_run))))
    if importance is not None:
        sections.append(("Feature importance", importance_section(importance)))
    sections.append(("Best config vs the base config", diff_section(base, best, "base config")))
    target = out / "report.html"
    target.write_text(page(f"recforge tune: {base.get('name', out.name)}", sections))
    return target
