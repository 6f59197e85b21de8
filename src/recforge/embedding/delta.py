"""Delta checkpoints for dynamic embedding tables: save only the rows changed since the last save.

A chain is one full save (the *base*: `save_base`, or a bundle) followed by deltas in order::

    base = save_base(model, "ckpt/base")                 # full state; marks every table clean
    ...train...
    d1 = save_delta(model, "ckpt/d1", parent=base)        # rows touched since the base (+ tombstones)
    ...train, evict...
    d2 = save_delta(model, "ckpt/d2", parent=d1)
    # elsewhere: a model holding the base state
    apply_delta(fresh, "ckpt/d1", parent_version=base["version"])
    apply_delta(fresh, "ckpt/d2", parent_version=d1["version"])   # == the trained model, bit for bit

`parent` is the previous save of the chain: its manifest dict (what `save_base` / `save_delta`
return) or its directory (a base, a delta or a bundle directory: anything whose manifest.json has a
"version"). Serving applies deltas to a loaded bundle with `recforge.bundle.delta.apply_delta_to_bundle`.

What a `DynamicTable` tracks (`dirty`, `tombstones`; not part of its state): every row a training
lookup reads (its freq moves; it may be admitted or re-initialised in a freed slot, and backward
updates only rows its forward read) and every row eviction drops. `save_base`, `save_delta`,
`apply_delta` and `mark_clean` reset both. Writes that bypass the table's lookups (assigning
`table.weight[...]` by hand) are not tracked. Call `mark_clean` after writing a base any other way
(e.g. `save_bundle`), and save between steps, not between a forward and its backward.

Directory format (safetensors and JSON only, no pickle):

- `manifest.json`: format "recforge.delta/1", kind "base" or "delta", version, base (the chain's
  base version), parent (the previous version; null for a base), sequence (0 for the base, then
  1, 2, ...), created, dense (whether dense.safetensors is there) and per table (by module path):
  capacity, the leading size of each slot array, and the numbers of rows and tombstones.
- `rows.safetensors` (delta): per table `<path>/slots` (int64 slot numbers of the changed rows), every
  slot array at those slots (`<path>/weight`, `alive`, `slot_keys`, `freq`, `last_step`, `opt_*`), the
  small non-row state in full (`step`, admission counters `pending_*` and `bloom`) and
  `<path>/tombstones`: the keys evicted since the last save and not back in the table. A changed slot
  carries its `alive` flag, so applying the rows alone reproduces evictions and slot reuse; the
  tombstone keys are there for consumers that mirror keys (e.g. an external index).
- `dense.safetensors` (when `dense=True`, the default): every other tensor of the model's state_dict
  (MLPs, static embedding tables), in full: it is small, and without it the restored model would
  score with stale dense weights. Pass `dense=False` to ship embedding rows only.
- `model.safetensors` (base): the full state_dict.

Rows keep their slot numbers, so base + deltas restores every state tensor exactly (dead slots
included), not merely the same key -> row mapping.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from recforge.embedding.dynamic.state import SLOT_ARRAYS, STATE
from recforge.embedding.dynamic.table import DynamicTable
from recforge.errors import BundleError

FORMAT = "recforge.delta/1"
MANIFEST = "manifest.json"
ROWS = "rows.safetensors"
DENSE = "dense.safetensors"
FULL = "model.safetensors"
TABLE_STATE = tuple(name for name in STATE if name not in SLOT_ARRAYS)  # step, admission counters


def named_tables(model: nn.Module) -> dict[str, DynamicTable]:
    """Dynamic tables by module path ("" when `model` is itself a table)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, DynamicTable)}


def mark_clean(model: nn.Module) -> None:
    """Forget what changed: the current state is the last save of the chain."""
    for table in named_tables(model).values():
        table.dirty = torch.zeros(table.capacity, dtype=torch.bool)
        table.tombstones = []


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise BundleError(f"{path} is missing: {directory} is not a delta, base or bundle directory")
    return dict(json.loads(path.read_text()))


def _parent_info(parent: str | Path | Mapping[str, Any]) -> tuple[str, str, int]:
    """(parent version, base version, parent sequence) of a manifest dict or directory."""
    info = dict(parent) if isinstance(parent, Mapping) else read_manifest(parent)
    if "version" not in info:
        raise BundleError(f"the parent manifest has no version: {info}")
    version = str(info["version"])
    return version, str(info.get("base") or version), int(info.get("sequence", 0))


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _dense_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict entries outside the dynamic tables."""
    prefixes = tuple(f"{name}." if name else "" for name in named_tables(model))
    return {k: v for k, v in model.state_dict().items() if not any(k.startswith(p) for p in prefixes)}


def save_base(model: nn.Module, directory: str | Path) -> dict[str, Any]:
    """The chain's first save: the full state_dict (model.safetensors) and a manifest; marks tables clean."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(out / FULL))
    version = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "kind": "base",
        "version": version,
        "base": version,
        "parent": None,
        "sequence": 0,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dense": True,
        "tables": {},
    }
    mark_clean(model)
    return _write_manifest(out, manifest)


def load_base(model: nn.Module, directory: str | Path) -> dict[str, Any]:
    """Load a `save_base` directory into `model` (marked clean); returns its manifest."""
    manifest = read_manifest(directory)
    model.load_state_dict(load_file(str(Path(directory) / FULL)))
    mark_clean(model)
    return manifest


def save_delta(
    model: nn.Module, directory: str | Path, parent: str | Path | Mapping[str, Any], *, dense: bool = True
) -> dict[str, Any]:
    """Write the rows changed since the last save (and tombstones) of every dynamic table; marks them clean.

    `parent` is the previous save of the chain (manifest dict or directory). Returns the new manifest.
    """
    parent_version, base, sequence = _parent_info(parent)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    tables: dict[str, Any] = {}
    for name, table in named_tables(model).items():
        cap = table.capacity
        slots = torch.nonzero(table.dirty[:cap]).squeeze(1)
        tensors[f"{name}/slots"] = slots
        lengths = {}
        for array in SLOT_ARRAYS:
            value = table.slot_array(array)
            lengths[array] = int(value.shape[0])
            tensors[f"{name}/{array}"] = value[slots] if value.shape[0] else value.clone()
        for array in TABLE_STATE:
            tensors[f"{name}/{array}"] = getattr(table, array).detach().clone()
        evicted = torch.cat(table.tombstones) if table.tombstones else torch.zeros(0, dtype=torch.int64)
        evicted = torch.unique(evicted)
        tombstones = evicted[table.rows_of(evicted) < 0]  # evicted, then re-admitted: a live row again
        tensors[f"{name}/tombstones"] = tombstones
        tables[name] = {"capacity": cap, "lengths": lengths, "rows": len(slots), "tombstones": len(tombstones)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / ROWS))
    if dense:
        save_file({k: v.detach().contiguous().clone() for k, v in _dense_state(model).items()}, str(out / DENSE))
    manifest = {
        "format": FORMAT,
        "kind": "delta",
        "version": f"{base}+d{sequence + 1}-{uuid.uuid4().hex[:6]}",
        "base": base,
        "parent": parent_version,
        "sequence": sequence + 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dense": dense,
        "tables": tables,
    }
    mark_clean(model)
    return _write_manifest(out, manifest)


def apply_delta(model: nn.Module, directory: str | Path, *, parent_version: str | None = None) -> dict[str, Any]:
    """Apply one delta to `model` (holding the state of its parent save) in place; returns its manifest.

    With `parent_version`, a delta whose parent is another version is refused (BundleError), so deltas
    cannot be skipped or applied out of order.
    """
    path = Path(directory)
    manifest = read_manifest(path)
    if manifest.get("format") != FORMAT or manifest.get("kind") != "delta":
        raise BundleError(f"{path}: not a delta (format {manifest.get('format')!r}, kind {manifest.get('kind')!r})")
    if parent_version is not None and manifest["parent"] != parent_version:
        raise BundleError(
            f"{path}: delta {manifest['version']} follows {manifest['parent']}, not {parent_version}; "
            "apply the chain's deltas in order, starting from its base"
        )
    tables = named_tables(model)
    missing = sorted(set(manifest["tables"]) - set(tables))
    if missing:
        raise BundleError(f"{path}: the model has no dynamic tables {missing}")
    rows = load_file(str(path / ROWS))
    for name, info in manifest["tables"].items():
        table = tables[name]
        table.write_slots(
            {array: int(info["lengths"][array]) for array in SLOT_ARRAYS},
            rows[f"{name}/slots"],
            {array: rows[f"{name}/{array}"] for array in SLOT_ARRAYS},
            {array: rows[f"{name}/{array}"] for array in TABLE_STATE},
        )
    if manifest["dense"]:
        dense = load_file(str(path / DENSE))
        own = model.state_dict()
        unknown = sorted(set(dense) - set(own))
        if unknown:
            raise BundleError(f"{path}: dense weights {unknown[:5]} are not in the model")
        with torch.no_grad():
            for key, value in dense.items():
                own[key].copy_(value)
    mark_clean(model)
    return manifest
