"""The run's evaluation log, `evals.jsonl`: one JSON row per evaluation, appended as training goes.

A resumed run cuts the log back to the rows its checkpoint covers, so the evaluations it redoes
are not written twice; a fresh run starts an empty log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

EVALS_FILE = "evals.jsonl"


def read_evals(run_dir: Path) -> list[dict[str, Any]]:
    """Every evaluation row of `run_dir` (empty when it never evaluated)."""
    file = run_dir / EVALS_FILE
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def append_eval(run_dir: Path, row: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / EVALS_FILE).open("a") as f:
        f.write(json.dumps(row) + "\n")


def keep_evals(run_dir: Path, rows: int) -> list[dict[str, Any]]:
    """Cut the log to its first `rows` rows (renamed into place) and return them.

    Rows past `rows` were written after the checkpoint a run resumes from (its last line may even be
    cut short by the kill), so only the first `rows` lines are parsed.
    """
    file = run_dir / EVALS_FILE
    if not file.exists():
        return []
    lines = file.read_text().splitlines(keepends=True)[:rows]
    tmp = file.with_name(EVALS_FILE + ".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, file)
    return [json.loads(line) for line in lines]
