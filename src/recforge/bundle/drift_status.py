"""Drift status beside a model stream: the trainer writes it, the service's /metrics and the CLI read it.

STREAM/drift.json    {"alarm": bool, "reasons": [...], "window": N, "updated": unix seconds}
STREAM/DRIFT_CLEAR   present = someone asked to lower the alarm (`recforge stream clear-drift`)
STREAM/drift_windows.jsonl  one judged window per line: {"window", "rows", "psi": {column: value},
                     "label_rate", "auc", "reasons"} (the Studio draws its charts from it)
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from recforge.errors import DataError

STATUS = "drift.json"
CLEAR_REQUEST = "DRIFT_CLEAR"
WINDOWS = "drift_windows.jsonl"


def write_drift_status(stream: str | Path, alarm: bool, reasons: list[str], window: int) -> None:
    base = Path(stream)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".{STATUS}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps({"alarm": alarm, "reasons": reasons, "window": window, "updated": time.time()}))
    os.replace(tmp, base / STATUS)


def read_drift_status(stream: str | Path) -> dict[str, Any] | None:
    """The last status written, or None when no trainer watches this stream for drift."""
    path = Path(stream) / STATUS
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def request_clear(stream: str | Path) -> None:
    (Path(stream) / CLEAR_REQUEST).write_text(str(time.time()))


def take_clear_request(stream: str | Path) -> bool:
    """True once per request (the request file is consumed)."""
    path = Path(stream) / CLEAR_REQUEST
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def append_drift_window(stream: str | Path, window: dict[str, Any]) -> None:
    """Add one judged window to the stream's drift history (one JSON line, appended whole)."""
    base = Path(stream)
    base.mkdir(parents=True, exist_ok=True)
    with (base / WINDOWS).open("a") as out:
        out.write(json.dumps(window) + "\n")


def read_drift_windows(stream: str | Path) -> list[dict[str, Any]]:
    """Every judged window, oldest first; a line cut short by a crash mid-write is skipped (it is the last)."""
    path = Path(stream) / WINDOWS
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    out = []
    for n, line in enumerate(lines, 1):
        try:
            out.append(dict(json.loads(line)))
        except ValueError:
            if n < len(lines):
                raise DataError(f"{path}:{n}: not a JSON object\n  fix: remove the line or the file") from None
    return out
