"""Feature importance of a bundle's model, for models that keep one (tree models: gain and split counts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recforge.bundle.bundle import load_bundle
from recforge.errors import BundleError


def feature_importance(bundle_dir: str | Path) -> list[dict[str, Any]]:
    """Rows {feature, gain, splits, gain_share}, largest gain first; `bundle_dir` may be a model stream."""
    from recforge.bundle.stream import current

    bundle = load_bundle(current(bundle_dir).path)
    report = getattr(bundle.model, "importance", None)
    if not callable(report):
        raise BundleError(
            f"{bundle_dir}: model {bundle.config.model.name!r} keeps no feature importance; tree models (gbdt_lr) do"
        )
    rows: list[dict[str, Any]] = report()
    return rows
