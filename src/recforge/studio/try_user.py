""" "Try a user": ask the live service's /recommend (with `explain` and `timings`) and show each recall
channel's candidates, the merged list, the ranked items with per-task scores, and the stage timings.
"Similar items" asks the same service for an unknown user whose only history is one item."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from recforge.studio.html import cards, note, page, section, table
from recforge.studio.settings import Studio

UNKNOWN_USER = -1  # a user id no run knows: recall then works from `recent_items` alone
SHOWN_PER_CHANNEL = 20


def raw_id(text: str) -> int | str:
    """Ids typed in a form: an integer when they look like one (the synthetic and MovieLens ids are)."""
    stripped = text.strip()
    return int(stripped) if stripped.lstrip("-").isdigit() else stripped


def forms(prefix: str, user: str, item: str, k: int) -> str:
    action = escape(f"{prefix}/try")
    return (
        f'<form method="get" action="{action}">user id <input name="user" value="{escape(user)}" aria-label="user id">'
        f' k <input name="k" type="number" min="1" value="{k}"> <button>recommend</button></form>'
        f'<form method="get" action="{action}">item id <input name="item" value="{escape(item)}" aria-label="item id">'
        f" <button>similar items</button></form>"
    )


def explain_sections(answer: dict[str, Any]) -> str:
    body = ""
    explain = answer.get("explain") or {}
    for channel, found in (explain.get("channels") or {}).items():
        rows = [[n + 1, c["item_id"], c["score"]] for n, c in enumerate(found[:SHOWN_PER_CHANNEL])]
        body += section(f"recall channel {channel}: {len(found)} candidates", table(["rank", "item", "score"], rows))
    merged = explain.get("merged") or []
    rows = [[n + 1, c["item_id"], ", ".join(c["channels"])] for n, c in enumerate(merged[:SHOWN_PER_CHANNEL])]
    return body + section(f"merged: {len(merged)} candidates", table(["rank", "item", "channels"], rows))


def ranked_section(answer: dict[str, Any]) -> str:
    items = answer.get("items") or []
    tasks = list(dict.fromkeys(t for i in items for t in i.get("tasks", {})))
    rows = [
        [n + 1, i["item_id"], i["score"], *(i.get("tasks", {}).get(t) for t in tasks), ", ".join(i["channels"])]
        for n, i in enumerate(items)
    ]
    columns = ["rank", "item", "score", *(f"task {t}" for t in tasks), "channels"]
    timings = cards([(f"{stage} ms", ms) for stage, ms in (answer.get("timings_ms") or {}).items()], "timing:")
    ranked = table(columns, rows, [f"ranked-{n + 1}" for n in range(len(rows))])
    return section(f"ranked by {answer.get('model')} version {answer.get('version')}", ranked) + timings


def try_router(studio: Studio) -> APIRouter:
    router = APIRouter()

    @router.get("/try", response_class=HTMLResponse)
    def try_page(user: str = "", item: str = "", k: int = 10) -> str:
        body = forms(studio.prefix, user, item, k)
        if user or item:
            service = studio.need(studio.service, "--service", "a live service (recforge serve)")
            request: dict[str, Any] = {"user_id": raw_id(user), "k": k, "explain": True, "timings": True}
            if item:
                request.update(user_id=UNKNOWN_USER, recent_items=[raw_id(item)])
            answer = service.post("/recommend", request)
            what = f"items similar to {item} (recall from it alone, then ranked)" if item else f"user {user}"
            body += note(what) + ranked_section(answer) + explain_sections(answer)
        elif studio.service is None:
            body += note("no service given (--service URL)", "err")
        return page("try a user", "/try", body, prefix=studio.prefix)

    return router
