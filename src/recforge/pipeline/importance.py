"""`recforge features importance`: a bundle and eval data -> importance.csv, importance.json, importance.png."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from recforge.bundle import Bundle, load_bundle
from recforge.bundle.stream import current
from recforge.config.tasks import is_multitask
from recforge.data.readers import read_schema, read_table
from recforge.errors import ConfigError, DataError, RecforgeError
from recforge.pipeline.autocross import sample
from recforge.train.importance import (
    COLUMNS,
    DropoutOptions,
    FieldImportance,
    dropout_rates,
    permutation_importance,
    with_drop_rates,
)

log = logging.getLogger(__name__)


@dataclass
class ImportanceRun:
    baseline_auc: float
    rows: int
    repeats: int
    fields: list[FieldImportance]  # by rank
    csv: Path
    chart: Path


def feature_importance(
    bundle_dir: str | Path,
    data: str,
    out_dir: str | Path,
    *,
    repeats: int = 5,
    rows: int = 100_000,
    seed: int = 0,
    dropout: DropoutOptions | None = None,
) -> ImportanceRun:
    """Permutation importance (and dropout rates when `dropout` is given) of a bundle on up to `rows` rows."""
    bundle = _measurable_bundle(bundle_dir, data)
    label = bundle.config.data.label
    columns = list(dict.fromkeys([*bundle.features.input_columns(), label]))
    table = read_table(data, columns=columns)
    if table.num_rows == 0:
        raise DataError(f"{data}: no rows to measure importance on")
    batch = bundle.features.transform(sample(table, rows, seed), source=data)
    schema = bundle.features.schema()
    baseline, fields = permutation_importance(bundle.model, batch, schema, label, repeats=repeats, seed=seed)
    if dropout is not None:
        fields = with_drop_rates(fields, dropout_rates(bundle.model, batch, schema, label, dropout))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(fields, out / "importance.csv")
    run = {"bundle": str(bundle.path), "data": data, "rows": batch.size, "repeats": repeats, "seed": seed}
    write_json(fields, baseline, run, out / "importance.json")
    chart = write_chart(fields, baseline, out / "importance.png")
    return ImportanceRun(baseline, batch.size, repeats, fields, out / "importance.csv", chart)


def _measurable_bundle(bundle_dir: str | Path, data: str) -> Bundle:
    """The stream's current bundle, when it has one label and `data` holds that label (else the fix)."""
    bundle = load_bundle(current(bundle_dir).path)
    if is_multitask(bundle.config):
        raise ConfigError(
            "tasks",
            f"{bundle.path}: feature importance scores one label; this bundle has several tasks",
            fix="measure a single-task bundle (one label in data.label)",
        )
    label = bundle.config.data.label
    if label not in read_schema(data).names:
        raise DataError(
            f"{data}: no label column {label!r} (the bundle's data.label); importance is measured on labelled data"
            "\n  fix: pass labelled eval rows, e.g. the run's samples/test.parquet"
        )
    return bundle


def write_json(fields: list[FieldImportance], baseline: float, run: dict[str, object], path: Path) -> None:
    """The run's settings (`run`), the baseline AUC and every field's importance, as one JSON document."""
    rows = [
        {
            "feature": f.feature,
            "kind": f.kind,
            "importance": f.importance,
            "std": f.std,
            "rank": f.rank,
            "drops": list(f.drops),
            "drop_rate": f.drop_rate,
        }
        for f in fields
    ]
    path.write_text(json.dumps({**run, "baseline_auc": baseline, "fields": rows}, indent=1))


def write_csv(fields: list[FieldImportance], path: Path) -> None:
    """One row per field with the columns of recforge.train.importance.COLUMNS, most important first."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for r in fields:
            writer.writerow(
                [
                    r.feature,
                    f"{r.importance:.6f}",
                    f"{r.std:.6f}",
                    r.rank,
                    r.kind,
                    "" if r.drop_rate is None else f"{r.drop_rate:.4f}",
                ]
            )


def write_chart(fields: list[FieldImportance], baseline: float, path: Path) -> Path:
    """Horizontal bars of the AUC drop with the spread as error bars (and the drop rate beside, if any)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RecforgeError(
            "the importance chart needs matplotlib, which is not installed\n"
            "  fix: pip install 'recforge[analysis]' (or pip install matplotlib)"
        ) from exc
    shown = list(reversed(fields))  # most important on top
    panels = 2 if any(f.drop_rate is not None for f in fields) else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 0.35 * len(fields) + 1.5), squeeze=False)
    names = [f.feature for f in shown]
    axes[0][0].barh(names, [f.importance for f in shown], xerr=[f.std for f in shown], color="#4c72b0")
    axes[0][0].axvline(0.0, color="black", linewidth=0.8)
    axes[0][0].set_xlabel(f"AUC drop when shuffled (baseline AUC {baseline:.4f})")
    axes[0][0].set_title("permutation importance")
    if panels == 2:
        axes[0][1].barh(names, [f.drop_rate or 0.0 for f in shown], color="#dd8452")
        axes[0][1].set_xlim(0.0, 1.0)
        axes[0][1].set_xlabel("learned dropout rate (high = not needed)")
        axes[0][1].set_title("dropout feature ranking")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
