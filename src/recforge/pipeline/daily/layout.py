"""Where a daily pipeline keeps things: every output is keyed by date, so a step reruns idempotently.

WORK/history.jsonl                  every step attempt (see history.py)
WORK/dates/DATE/window/             the date window's behavior rows (behavior.parquet, window.json)
WORK/dates/DATE/samples/            {train,valid,test}.parquet of the date
WORK/dates/DATE/train/              the training run (bundle/, metrics.json, checkpoint/)
WORK/dates/DATE/gate.json           the gate's verdict on that bundle
WORK/dates/DATE/recall/             the recall run (recall/ bundle, metrics.json)
WORK/dates/DATE/done/STEP.json      done marker: the step finished for this date
WORK/live/{model,recall,store}      the date whose output is live (a backfill never moves it back)
WORK/recall -> dates/DATE/recall/recall   the live recall bundle (serving.yaml's `recall:`)
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recforge.config.daily import DailyConfig


@dataclass(frozen=True)
class DayLayout:
    """The paths of one date of one daily pipeline."""

    work: Path
    date: dt.date

    @classmethod
    def of(cls, cfg: DailyConfig, date: dt.date) -> DayLayout:
        return cls(Path(cfg.work), date)

    @property
    def key(self) -> str:
        return self.date.isoformat()

    @property
    def root(self) -> Path:
        return self.work / "dates" / self.key

    def path(self, name: str) -> Path:
        return self.root / name

    def marker(self, step: str) -> Path:
        return self.root / "done" / f"{step}.json"

    def is_done(self, step: str) -> bool:
        return self.marker(step).is_file()

    def mark_done(self, step: str, record: dict[str, Any]) -> None:
        write_json(self.marker(step), record)

    def done_record(self, step: str) -> dict[str, Any]:
        return dict(json.loads(self.marker(step).read_text()))


def write_json(path: Path, value: Any) -> None:
    """Write whole or not at all: a temp file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1, default=str))
    os.replace(tmp, path)


def live_date(work: Path, target: str) -> dt.date | None:
    """The date whose `target` (model, recall, store) output is live, if any."""
    path = work / "live" / target
    return dt.date.fromisoformat(path.read_text().strip()) if path.is_file() else None


def newer_live(work: Path, target: str, date: dt.date) -> str | None:
    """Why `date` must not replace the live `target`: a later date's is live (a backfill of an old date)."""
    live = live_date(work, target)
    return f"{target} of the later date {live} is live" if live is not None and live > date else None


def set_live(work: Path, target: str, date: dt.date) -> None:
    path = work / "live" / target
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{target}.tmp")
    tmp.write_text(date.isoformat() + "\n")
    os.replace(tmp, path)


def point_link(link: Path, target: Path) -> None:
    """Atomically make `link` a symlink to `target` (a new link renamed over the old one)."""
    tmp = link.with_name(f".{link.name}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)
