"""Pipeline runs page: the daily pipeline's history (PIPELINE/history.jsonl, written by `recforge pipeline`).

One JSON object per line: {"date", "step", "status": ok | failed | skipped, "attempt", "started", "finished",
"error"}. A line that is not such an object is a DataError naming the line (never skipped in silence).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from recforge.errors import DataError
from recforge.studio.html import cards, note, page, section, table
from recforge.studio.settings import Studio

HISTORY = "history.jsonl"
FIELDS = ("date", "step", "status", "attempt", "started", "finished", "error")
STATUSES = ("ok", "failed", "skipped")


def read_history(root: Path) -> list[dict[str, Any]]:
    path = root / HISTORY
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise DataError(f"{path}:{n}: not JSON\n  fix: one JSON object per line") from None
        missing = [f for f in FIELDS if not isinstance(row, dict) or f not in row]
        if missing or row["status"] not in STATUSES:
            raise DataError(f"{path}:{n}: missing {missing} or status not one of {STATUSES}\n  fix: rewrite the line")
        out.append(row)
    return out


def pipeline_router(studio: Studio) -> APIRouter:
    router = APIRouter()

    @router.get("/pipeline", response_class=HTMLResponse)
    def pipeline_page() -> str:
        if studio.pipeline is None:
            return page(
                "pipeline runs", "/pipeline", note("no pipeline root given (--pipeline DIR)"), prefix=studio.prefix
            )
        rows = read_history(studio.pipeline)
        counts = Counter(r["status"] for r in rows)
        body = cards([(s, counts.get(s, 0)) for s in STATUSES], "pipeline:")
        body += cards(
            [("days", len({r["date"] for r in rows})), ("retries", sum(r["attempt"] > 1 for r in rows))], "pipeline:"
        )
        shown = [[r[f] for f in FIELDS] for r in reversed(rows)]
        body += section("History (newest first)", table(FIELDS, shown) if rows else note("no runs recorded yet"))
        return page("pipeline runs", "/pipeline", body, prefix=studio.prefix)

    return router
