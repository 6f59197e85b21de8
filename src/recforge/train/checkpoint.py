"""Checkpoint directories: written whole under a temporary name and renamed into place.

A kill at any moment leaves either the new checkpoint or the previous one: `read_checkpoint`
takes `checkpoint.old` when the writer died between its two renames, and a half-written
`checkpoint.tmp` is never read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from recforge.errors import BundleError
from recforge.state_io import load_state, save_state

CHECKPOINT = "checkpoint"
COUNTERS = "trainer.json"


def checkpoint_exists(out_dir: Path) -> bool:
    """A complete checkpoint (or the previous one, when a save died between its renames) is in `out_dir`."""
    return any((out_dir / name / COUNTERS).exists() for name in (CHECKPOINT, f"{CHECKPOINT}.old"))


def write_checkpoint(out_dir: Path, states: dict[str, Any], counters: dict[str, Any]) -> None:
    """Each of `states` as `name`.safetensors/.json and `counters` as trainer.json, renamed into place."""
    tmp = start_checkpoint(out_dir)
    for name, tree in states.items():
        save_state(tree, tmp / name)
    finish_checkpoint(out_dir, tmp, counters)


def start_checkpoint(out_dir: Path) -> Path:
    """An empty `checkpoint.tmp` to write a new checkpoint into (any half-written one is removed)."""
    directory = out_dir / CHECKPOINT
    old = out_dir / f"{CHECKPOINT}.old"
    tmp = out_dir / f"{CHECKPOINT}.tmp"
    if directory.exists() and old.exists():  # an earlier save died while deleting the old one
        shutil.rmtree(old)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def finish_checkpoint(out_dir: Path, tmp: Path, counters: dict[str, Any]) -> None:
    """Write `counters` into the filled `tmp` (which makes it complete) and rename it into place."""
    directory = out_dir / CHECKPOINT
    old = out_dir / f"{CHECKPOINT}.old"
    (tmp / COUNTERS).write_text(json.dumps(counters))  # last: a directory with trainer.json is complete
    if directory.exists():
        directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old)
    else:
        tmp.rename(directory)


def read_checkpoint(out_dir: Path, names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(states by name, counters) of the checkpoint in `out_dir`; a state missing from it is left out."""
    directory = recover_checkpoint(out_dir)
    counters = read_counters(directory)
    states = {name: load_state(directory / name) for name in names if (directory / f"{name}.json").exists()}
    return states, counters


def recover_checkpoint(out_dir: Path) -> Path:
    """The complete checkpoint directory of `out_dir`, taking `checkpoint.old` back when a save died between
    its two renames; raises a BundleError when there is none."""
    directory = out_dir / CHECKPOINT
    old = out_dir / f"{CHECKPOINT}.old"
    if not (directory / COUNTERS).exists() and (old / COUNTERS).exists():
        if directory.exists():
            shutil.rmtree(directory)
        old.rename(directory)
    if not (directory / COUNTERS).exists():
        raise BundleError(f"no checkpoint in {directory}\n  fix: train without --resume")
    return directory


def read_counters(directory: Path) -> dict[str, Any]:
    """The data position, early-stop state and evaluation count a checkpoint directory holds."""
    return dict(json.loads((directory / COUNTERS).read_text()))
