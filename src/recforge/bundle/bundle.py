"""A bundle directory: manifest.json, config.yaml, fitted features, dense weights (safetensors) and, for
models that are more than tensors (GBDT+LR), text artifacts (a LightGBM model, its PMML, a report).

Loading a bundle reads JSON, YAML (safe loader), Arrow IPC, safetensors and plain text only: it never runs
code from the bundle (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from recforge import __version__
from recforge.config import PipelineConfig, build_config
from recforge.config.tasks import is_multitask, model_tasks, pipeline_tasks, rank_weights
from recforge.embedding.delta import apply_delta
from recforge.errors import BundleError
from recforge.features import FeatureSet
from recforge.models import build_model
from recforge.models.artifacts import HasArtifacts
from recforge.paths import inside, parent_dirs
from recforge.state_io import load_state, save_state

MANIFEST = "manifest.json"
FORMAT = "recforge.bundle/1"
DELTA_DIR = "delta"  # inside a delta version: the embedding delta (changed rows + dense weights)
ARTIFACTS = "artifacts"  # text files of models whose state is more than tensors (trees, PMML, reports)
RETIRED_FORMATS = {  # artifact formats recforge no longer reads -> how to get a bundle instead
    "recforge.ftrl/1": "an FTRL version from before FTRL published bundles: its hashed weights cannot be mapped "
    "onto features, so re-run `recforge stream ftrl PIPELINE.yaml` (model lr, train.trainer ftrl, id features "
    "with hash_buckets) on the stream to publish bundles",
}


@dataclass
class Bundle:
    """A loaded bundle: config, fitted features, the model (eval mode) and its manifest."""

    path: Path
    config: PipelineConfig
    features: FeatureSet
    model: nn.Module
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def tasks(self) -> tuple[str, ...]:
        """Output names of a multi-task bundle, in model-output order; () for a single-task one."""
        return model_tasks(self.config)

    @property
    def losses(self) -> tuple[str, ...]:
        """Each output's loss (bce: sigmoid gives its score; mse: the output is its score)."""
        return tuple(t.loss for t in pipeline_tasks(self.config))

    @property
    def rank_by(self) -> dict[str, float]:
        """Task -> weight of its score in the ranking score of a multi-task bundle (`rank_by` in its config)."""
        return rank_weights(self.config)


def new_version() -> str:
    """A version name that sorts by creation time: YYYYmmdd-HHMMSS-<6 hex>."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def config_hash(cfg: PipelineConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.dump(), sort_keys=True).encode()).hexdigest()[:16]


def save_bundle(
    directory: str | Path,
    cfg: PipelineConfig,
    features: FeatureSet,
    model: nn.Module,
    metrics: dict[str, Any],
    parent: str | None = None,
    version: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the bundle into a temp dir beside `directory`, then move it into place (never half-written).

    `version` defaults to a new timestamped name; `extra` adds manifest fields (e.g. stream positions).
    """
    target = Path(directory)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg.dump(), sort_keys=False))
    features.save(tmp / "features")
    save_state(model.state_dict(), tmp / "model")
    _save_artifacts(model, tmp / ARTIFACTS)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "name": cfg.name,
        "version": version or new_version(),
        "parent": parent,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "recforge": __version__,
        "model": cfg.model.name,
        "metrics": metrics,
        "config_hash": config_hash(cfg),
        "input_schema": {
            "columns": features.input_columns(),
            "labels": list(features.labels),
            "model_inputs": features.schema().to_json(),
        },
        **(extra or {}),
    }
    if is_multitask(cfg):
        manifest["tasks"] = [
            {"name": t.name, "label": t.label, "loss": t.loss, "weight": t.weight} for t in pipeline_tasks(cfg)
        ]
        manifest["rank_by"] = rank_weights(cfg)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def _save_artifacts(model: nn.Module, directory: Path) -> None:
    if not isinstance(model, HasArtifacts):
        return
    texts = model.artifacts()
    if texts:
        directory.mkdir()
    for name, text in texts.items():
        inside(directory, name, where=f"{directory}: artifact").write_text(text)


def load_bundle(directory: str | Path) -> Bundle:
    """Rebuild config, features and model from a bundle directory; a clear BundleError on any gap.

    A delta version (manifest `kind: delta`, written by `recforge.bundle.delta.save_delta_version`)
    is its chain's full version, found beside it in the same model stream, with each delta applied.
    """
    path = Path(directory)
    manifest = read_bundle_manifest(path)
    if manifest.get("kind") != "delta":
        return _load_full(path, manifest)
    steps = [path, *delta_parents(path)]  # newest first; the last one is the chain's full version
    full = read_bundle_manifest(steps[-1])
    if full.get("kind") == "delta":
        raise BundleError(f"{steps[-1] / MANIFEST}: a delta version without a `parent`; its chain has no full version")
    bundle = _load_full(steps[-1], full)
    for step in reversed(steps[:-1]):
        bundle = apply_version_delta(bundle, step, read_bundle_manifest(step))
    return bundle


def _load_full(path: Path, manifest: dict[str, Any]) -> Bundle:
    cfg = build_config(yaml.safe_load((path / "config.yaml").read_text()), file=str(path / "config.yaml"))
    features = FeatureSet.load(path / "features")
    model = build_model(features.schema(), cfg.model, tasks=model_tasks(cfg))
    if isinstance(model, HasArtifacts) and (path / ARTIFACTS).is_dir():
        folder = path / ARTIFACTS
        files = sorted(inside(folder, f.name, where=f"{folder}: file") for f in folder.iterdir())
        model.load_artifacts({f.name: f.read_text() for f in files if f.is_file()})
    try:
        model.load_state_dict(load_state(path / "model"))
    except RuntimeError as exc:
        raise BundleError(f"{path}: weights do not fit the model built from its config: {exc}") from exc
    model.eval()
    return Bundle(path, cfg, features, model, manifest)


def read_bundle_manifest(path: Path) -> dict[str, Any]:
    manifest = read_manifest(path)
    retired = RETIRED_FORMATS.get(str(manifest.get("format")))
    if retired is not None:
        raise BundleError(f"{path / MANIFEST}: format {manifest['format']!r} is {retired}")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path / MANIFEST}: format {manifest.get('format')!r} is not {FORMAT!r}")
    return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """Any stream version's manifest.json as a dict (bundle, delta or FTRL); BundleError when absent or broken."""
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise BundleError(f"{path} is not a recforge bundle: {MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_file.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{manifest_file}: unreadable ({exc})") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_file}: expected a JSON object, got {type(manifest).__name__}")
    return manifest


def delta_parents(version: Path) -> Iterator[Path]:
    """The versions a stream version is built on, nearest parent first, ending at a full one; none for a full one.

    Parents are found beside `version` (its stream) by name, through `recforge.paths`: a parent name
    outside the stream, a cycle or a missing parent is a BundleError.
    """
    for parent in parent_dirs(version.parent, version.name, _delta_parent, where=f"{version / MANIFEST}"):
        if not (parent / MANIFEST).is_file():
            raise BundleError(
                f"{version} is a delta built on version {parent.name}, which is not beside it in {version.parent}: "
                "a delta version is served together with its chain (copy the parent versions too)"
            )
        yield parent


def _delta_parent(version: Path) -> object | None:
    manifest = read_manifest(version)
    return manifest.get("parent") if manifest.get("kind") == "delta" else None


def apply_version_delta(bundle: Bundle, path: Path, manifest: dict[str, Any]) -> Bundle:
    """`bundle` (holding the delta version's parent) moved forward by the delta at `path`, in place."""
    apply_delta(bundle.model, path / DELTA_DIR, parent_version=bundle.version)
    bundle.model.eval()
    return Bundle(path, bundle.config, bundle.features, bundle.model, manifest)
