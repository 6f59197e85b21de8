"""Apply embedding delta checkpoints (`recforge.embedding.delta`) to a loaded bundle, in place.

A bundle is a valid base: `save_delta(model, dir, parent=bundle_dir)` starts a chain whose base is
the bundle's version (call `mark_clean(model)` right after `save_bundle`). Serving then applies the
chain's deltas in order to the loaded bundle; each one must name the bundle's current version as its
parent, and becomes the bundle's version.
"""

from __future__ import annotations

from pathlib import Path

from recforge.bundle.bundle import Bundle
from recforge.embedding.delta import apply_delta


def apply_delta_to_bundle(bundle: Bundle, delta_dir: str | Path) -> str:
    """Update the bundle's model (dynamic tables, and dense weights when the delta has them) in place.

    Returns the new version, also written to `bundle.manifest["version"]` (the base and delta history
    go to `bundle.manifest["delta"]`). Raises BundleError when the delta does not follow the bundle's
    current version.
    """
    manifest = apply_delta(bundle.model, delta_dir, parent_version=bundle.version)
    bundle.model.eval()
    bundle.manifest["version"] = manifest["version"]
    bundle.manifest["delta"] = {"base": manifest["base"], "sequence": manifest["sequence"], "path": str(delta_dir)}
    return str(manifest["version"])
