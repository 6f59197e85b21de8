"""Which bundle and which run a page looks at: `?run=NAME` picks a run, else the stream's served version."""

from __future__ import annotations

from pathlib import Path

from recforge.bundle.stream import current
from recforge.errors import ConfigError
from recforge.studio.runs import list_runs, run_dir
from recforge.studio.settings import Studio


def pick_run(studio: Studio, run: str | None) -> Path:
    """The run directory named `run`, else the first run (by name) under --runs."""
    root = studio.need(studio.runs, "--runs", "a runs directory")
    if run:
        return run_dir(root, run)
    runs, _ = list_runs(root)
    if not runs:
        raise ConfigError("--runs", f"{root} holds no run directory", fix="train one with `recforge train`")
    return runs[0].path


def pick_bundle(studio: Studio, run: str | None) -> Path:
    """A run's bundle when `run` is given (or no stream is), else the stream's served version."""
    if run or studio.stream is None:
        return pick_run(studio, run) / "bundle"
    return current(studio.stream).path
