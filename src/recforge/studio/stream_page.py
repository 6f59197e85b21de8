"""Model stream page: versions (full / delta) with their gate verdicts, rejections, drift per window, the
served version, and rollback (confirmation + admin token; the same `bundle.stream.rollback` as the CLI)."""

from __future__ import annotations

import hmac
from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse

from recforge.bundle.bundle import read_manifest
from recforge.bundle.drift_status import read_drift_status, read_drift_windows
from recforge.bundle.stream import current, rejections, rollback, versions
from recforge.bundle.verdict import read_verdict
from recforge.errors import EndpointError
from recforge.studio.html import cards, note, page, section, table
from recforge.studio.settings import Studio
from recforge.train.svg import line_chart


def version_rows(stream: Path, served: str) -> tuple[list[list[Any]], list[str]]:
    rows, names = [], []
    for path in versions(stream):
        manifest, verdict = read_manifest(path), read_verdict(path)
        parent = manifest.get("parent") if manifest.get("kind") == "delta" else None
        gate = "no verdict" if verdict is None else ("passed" if verdict.get("passed") is True else "failed")
        reasons = "; ".join(map(str, (verdict or {}).get("reasons") or []))
        auc = ((verdict or {}).get("metrics") or {}).get("auc")
        rows.append(
            [
                path.name,
                f"delta of {parent}" if parent else "full",
                gate,
                reasons,
                auc,
                "yes" if path.name == served else "",
            ]
        )
        names.append(path.name)
    return rows, names


def drift_charts(stream: Path) -> str:
    windows = read_drift_windows(stream)
    if not windows:
        return note("no drift windows recorded (the streaming trainer writes them when online.drift is on)")
    columns = list(dict.fromkeys(c for w in windows for c in (w.get("psi") or {})))
    psi = {c: [(float(w["window"]), float(w["psi"][c])) for w in windows if c in (w.get("psi") or {})] for c in columns}
    rate = {
        "label rate": [(float(w["window"]), float(w["label_rate"])) for w in windows if w.get("label_rate") is not None]
    }
    alarms = [[w["window"], w.get("rows"), "; ".join(w.get("reasons") or [])] for w in windows]
    charts = line_chart(psi, "PSI per feature", "window") + line_chart(rate, "label rate", "window")
    return f'<div class="charts">{charts}</div>' + table(
        ["window", "rows", "reasons"], alarms, [str(w["window"]) for w in windows]
    )


def rollback_form(studio: Studio, rows: list[list[Any]], served: str) -> str:
    """A form per passed, not-served version; disabled (and the POST refused) without an admin token."""
    off = "" if studio.admin_token else " disabled"
    forms = []
    for name, _, gate, *_ in rows:
        if gate != "passed" or name == served:
            continue
        forms.append(
            f'<form class="inline" method="post" action="{escape(studio.prefix)}/stream/rollback" '
            f"onsubmit=\"return confirm('Serve {escape(name)} instead of {escape(served)}?')\">"
            f'<input type="hidden" name="to" value="{escape(name)}">'
            f'<input type="password" name="token" placeholder="admin token" aria-label="admin token"{off}>'
            f'<button data-testid="rollback-{escape(name)}"{off}>roll back to {escape(name)}</button></form>'
        )
    why = (
        "" if studio.admin_token else note("rollback is off: start recforge ui with an admin token (--admin-token-env)")
    )
    return ("".join(forms) or note("no other version passed the gate")) + why


def served_cards(studio: Studio, stream: Path) -> str:
    pointer = current(stream).path.name
    shown: list[tuple[str, Any]] = [("LATEST", pointer)]
    if studio.service is None:
        return cards(shown) + note("no service given (--service URL): the served version is not known")
    try:
        ready = studio.service.served_version()
        shown += [("served", ready.get("version")), ("swaps", ready.get("swaps"))]
    except EndpointError as exc:
        return cards(shown) + note(str(exc), "err")
    return cards(shown)


def stream_router(studio: Studio) -> APIRouter:
    router = APIRouter()

    def render(message: str = "") -> str:
        stream = studio.need(studio.stream, "--stream", "a model stream directory")
        served = current(stream).path.name
        rows, names = version_rows(stream, served)
        body = message + served_cards(studio, stream)
        body += section("Versions", table(["version", "kind", "gate", "reasons", "auc", "LATEST"], rows, names))
        body += section("Roll back", rollback_form(studio, rows, served))
        rejected = [[r.get("version"), "; ".join(map(str, r.get("reasons") or []))] for r in rejections(stream)]  # type: ignore[call-overload]
        body += section("Rejected by the gate", table(["version", "reasons"], rejected) if rejected else note("none"))
        status = read_drift_status(stream)
        alarm = (
            "no drift status"
            if status is None
            else ("ALARM: " + "; ".join(status.get("reasons", [])) if status.get("alarm") else "no alarm")
        )
        body += section("Drift per window", note(alarm) + drift_charts(stream))
        return page("model stream", "/stream", body, prefix=studio.prefix)

    @router.get("/stream", response_class=HTMLResponse)
    def stream_page() -> str:
        return render()

    @router.post("/stream/rollback", response_class=HTMLResponse)
    def roll_back(to: str = Form(...), token: str = Form("")) -> HTMLResponse:
        expected = studio.admin_token
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            why = "rollback is off (no admin token configured)" if not expected else "wrong admin token"
            return HTMLResponse(page("rollback refused", "/stream", note(why, "err"), prefix=studio.prefix), 403)
        stream = studio.need(studio.stream, "--stream", "a model stream directory")
        name = rollback(stream, to)  # only to versions that passed the gate, as `recforge model rollback`
        done = f'<p class="ok" data-testid="rolled-back">now serving {escape(name)} (LATEST moved)</p>'
        return HTMLResponse(render(done))

    return router
