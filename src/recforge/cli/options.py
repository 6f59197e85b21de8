"""Help texts of options that several commands share, so they read the same everywhere."""

from __future__ import annotations

SET_HELP = "Override a config value by dotted path, e.g. --set train.optimizer.lr=0.01 (repeatable)."
REPORT_HELP = "Write OUT/report.html (learning curves, metrics, config diff; self-contained, offline)."
BASELINE_HELP = "Baseline pipeline YAML the report diffs the config against (implies --report)."
IMPORTANCE_HELP = "Feature-importance table (CSV/Parquet/JSON: feature, importance) for the report."
