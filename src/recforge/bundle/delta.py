"""Delta versions: a model-stream version that ships only the embedding rows changed since its parent.

Two uses of `recforge.embedding.delta`:

- `apply_delta_to_bundle`: apply an embedding delta directory to a loaded bundle in place (the bundle
  is the chain's base: call `mark_clean(model)` right after `save_bundle`).
- `save_delta_version`: write a *delta version* for a model stream: `manifest.json` (the parent's
  manifest fields, `kind: delta`, `parent`, `base`, `sequence`) and `delta/` (changed rows, tombstones
  and the dense weights). `load_bundle` on it loads the parent chain (found beside it in the stream)
  and applies the deltas in order; a follower already serving the parent applies just this one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from torch import nn

from recforge.bundle.bundle import DELTA_DIR, MANIFEST, Bundle
from recforge.bundle.stream import version_dir
from recforge.embedding.delta import apply_delta, save_delta


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


def save_delta_version(
    directory: str | Path, parent: dict[str, Any], model: nn.Module, metrics: dict[str, Any], **extra: Any
) -> Path:
    """Write a delta version of `model` against `parent` (the manifest of the version it follows) into `directory`.

    The directory is named by the new version (as every stream version is), beside its parent. The
    model's dynamic tables must track changes since `parent` was saved (`mark_clean` then, or the
    previous `save_delta_version`); afterwards they track changes since this version. Written into a
    temp directory and renamed into place, like a bundle.
    """
    base = Path(directory)  # the model stream
    for field in ("version", "base"):  # the new version is named after both: refuse before the tables are marked clean
        if parent.get(field) is not None:
            version_dir(base, parent[field], where=f"parent manifest {field}")
    tmp = base / f".delta.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        delta = save_delta(model, tmp / DELTA_DIR, parent=parent)
        target = version_dir(base, delta["version"], where=f"delta of {parent.get('version')!r}: version")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    keep = ("format", "name", "recforge", "model", "config_hash", "input_schema")
    manifest = {
        **{k: parent[k] for k in keep if k in parent},
        "kind": "delta",
        "version": delta["version"],
        "parent": str(parent["version"]),
        "base": delta["base"],
        "sequence": delta["sequence"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "metrics": metrics,
        **extra,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target
