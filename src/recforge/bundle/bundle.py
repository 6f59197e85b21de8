"""A bundle directory: manifest.json, config.yaml, fitted features, dense weights (safetensors).

Loading a bundle reads JSON, YAML (safe loader), Arrow IPC and safetensors only: it never runs
code from the bundle (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from recforge import __version__
from recforge.config import PipelineConfig, build_config
from recforge.errors import BundleError
from recforge.features import FeatureSet
from recforge.models import build_model
from recforge.state_io import load_state, save_state

MANIFEST = "manifest.json"
FORMAT = "recforge.bundle/1"


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


def config_hash(cfg: PipelineConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.dump(), sort_keys=True).encode()).hexdigest()[:16]


def save_bundle(
    directory: str | Path,
    cfg: PipelineConfig,
    features: FeatureSet,
    model: nn.Module,
    metrics: dict[str, Any],
    parent: str | None = None,
) -> Path:
    """Write the bundle into a temp dir beside `directory`, then move it into place (never half-written)."""
    target = Path(directory)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg.dump(), sort_keys=False))
    features.save(tmp / "features")
    save_state(model.state_dict(), tmp / "model")
    manifest = {
        "format": FORMAT,
        "name": cfg.name,
        "version": time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6],
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
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def load_bundle(directory: str | Path) -> Bundle:
    """Rebuild config, features and model from a bundle directory; a clear BundleError on any gap."""
    path = Path(directory)
    manifest_file = path / MANIFEST
    if not manifest_file.exists():
        raise BundleError(f"{path} is not a recforge bundle: {MANIFEST} is missing")
    manifest = json.loads(manifest_file.read_text())
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_file}: format {manifest.get('format')!r} is not {FORMAT!r}")
    cfg = build_config(yaml.safe_load((path / "config.yaml").read_text()), file=str(path / "config.yaml"))
    features = FeatureSet.load(path / "features")
    model = build_model(features.schema(), cfg.model)
    try:
        model.load_state_dict(load_state(path / "model"))
    except RuntimeError as exc:
        raise BundleError(f"{path}: weights do not fit the model built from its config: {exc}") from exc
    model.eval()
    return Bundle(path, cfg, features, model, manifest)
