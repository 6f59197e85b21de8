"""Save nested state (model and optimizer state dicts) as safetensors + JSON: loading runs no code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from recforge.errors import BundleError

_TENSOR = "__tensor__"


def _split(tree: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, torch.Tensor):
        key = prefix or "root"
        tensors[key] = tree.detach().contiguous().cpu()
        return {_TENSOR: key}
    if isinstance(tree, dict):
        return {"__dict__": [[_key(k), _split(v, f"{prefix}/{k}", tensors)] for k, v in tree.items()]}
    if isinstance(tree, (list, tuple)):
        return [_split(v, f"{prefix}/{i}", tensors) for i, v in enumerate(tree)]
    return tree


def _key(k: Any) -> Any:
    return {"int": k} if isinstance(k, int) else k


def _join(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, dict) and _TENSOR in tree:
        return tensors[tree[_TENSOR]]
    if isinstance(tree, dict) and "__dict__" in tree:
        return {(k["int"] if isinstance(k, dict) else k): _join(v, tensors) for k, v in tree["__dict__"]}
    if isinstance(tree, list):
        return [_join(v, tensors) for v in tree]
    return tree


def save_state(tree: Any, path: str | Path) -> None:
    """`path`.safetensors holds the tensors, `path`.json the structure and plain values."""
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(tree, "", tensors)
    save_file(tensors, str(base.with_suffix(".safetensors")))
    base.with_suffix(".json").write_text(json.dumps(skeleton))


def load_state(path: str | Path) -> Any:
    base = Path(path)
    for suffix in (".safetensors", ".json"):
        if not base.with_suffix(suffix).exists():
            raise BundleError(f"{base.with_suffix(suffix)} is missing (incomplete checkpoint or bundle)")
    try:
        tensors = load_file(str(base.with_suffix(".safetensors")))
        structure = json.loads(base.with_suffix(".json").read_text())
    except Exception as exc:  # safetensors raises its own error types; a corrupt file is a bundle problem
        raise BundleError(f"{base}: unreadable state ({type(exc).__name__}: {exc})") from exc
    return _join(structure, tensors)
