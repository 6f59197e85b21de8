"""WORK/history.jsonl: one JSON object per step attempt, the run history `recforge ui` shows.

    {"date": "2026-12-01", "step": "train", "status": "ok" | "failed" | "skipped", "attempt": 1,
     "started": "2026-12-02T01:00:03+00:00", "finished": "...", "error": null}

`error` holds the failure, or why a step was skipped; `attempt` 0 means it was not attempted (done
already, or an earlier step of the date failed). Lines are appended whole (one write, flushed),
so a reader never sees half an entry from a live run.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

Status = Literal["ok", "failed", "skipped"]
HISTORY_FILE = "history.jsonl"


@dataclass(frozen=True)
class Entry:
    date: str
    step: str
    status: Status
    attempt: int
    started: str
    finished: str
    error: str | None = None


def append(work: Path, entry: Entry) -> None:
    work.mkdir(parents=True, exist_ok=True)
    with (work / HISTORY_FILE).open("a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(entry)) + "\n")
        f.flush()


def read_history(work: str | Path) -> list[Entry]:
    """Every entry, oldest first (empty when the pipeline never ran)."""
    path = Path(work) / HISTORY_FILE
    if not path.is_file():
        return []
    return [Entry(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")
