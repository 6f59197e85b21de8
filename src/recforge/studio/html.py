"""The one page layout of the Studio: navigation, style, and escaped building blocks.

Everything shown comes from files or a service that the Studio does not control (run names, config
values, error messages), so every value passes through `escape` here or in `train.report.html_table`.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from recforge.train.report import STYLE

NAV = (
    ("/", "runs"),
    ("/stream", "model stream"),
    ("/embeddings", "embeddings"),
    ("/features", "features"),
    ("/try", "try a user"),
    ("/pipeline", "pipeline runs"),
)
STUDIO_STYLE = (
    STYLE
    + """
nav{background:#243447;padding:8px 16px;margin:-24px -24px 16px}nav a{color:#fff;margin-right:18px;text-decoration:none}
nav a.on{font-weight:bold;text-decoration:underline}.err{color:#a00}.ok{color:#070}.muted{color:#777}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ccc;padding:8px 12px;min-width:140px}
.card b{display:block;font-size:20px}form.inline{display:inline}button[disabled]{opacity:.5}
"""
)


def page(title: str, active: str, body: str, *, prefix: str = "") -> str:
    """A whole document: the navigation (links under `prefix`, where the Studio is mounted), then `body`."""
    links = "".join(
        f'<a href="{escape(prefix + path)}" class="{"on" if path == active else ""}">{escape(name)}</a>'
        for path, name in NAV
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} - recforge studio'
        f"</title><style>{STUDIO_STYLE}</style></head><body><nav>{links}</nav><h1>{escape(title)}</h1>{body}"
        "</body></html>\n"
    )


def section(heading: str, inner: str) -> str:
    return f"<h2>{escape(heading)}</h2>{inner}"


def cards(values: Sequence[tuple[str, Any]], test_prefix: str = "") -> str:
    """Big numbers with a label; each carries `data-testid` so a browser test can read it back exactly."""
    items = "".join(
        f'<div class="card">{escape(label)}<b data-testid="{escape(test_prefix + label)}">{escape(cell_text(value))}'
        "</b></div>"
        for label, value in values
    )
    return f'<div class="cards">{items}</div>'


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def note(text: str, kind: str = "muted") -> str:
    return f'<p class="{escape(kind)}">{escape(text)}</p>'


def cell_text(value: Any) -> str:
    """How a value is shown: floats to 4 decimals (what a test reads back), None as empty, the rest as text."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], testids: Sequence[str] | None = None) -> str:
    """A table of escaped cells; with `testids`, each cell is tagged `data-testid="ROWID:COLUMN"`.

    A cell given as `Raw(html)` is inserted as is (links, forms built here from escaped parts).
    """
    head = "".join(f'<th class="l">{escape(c)}</th>' for c in columns)
    body = []
    for n, row in enumerate(rows):
        cells = []
        for column, value in zip(columns, row, strict=True):
            tag = f' data-testid="{escape(testids[n])}:{escape(column)}"' if testids else ""
            text = value.html if isinstance(value, Raw) else escape(cell_text(value))
            cells.append(f'<td class="l"{tag}>{text}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


class Raw:
    """HTML already built from escaped parts (a link, a form); `table` inserts it unescaped."""

    def __init__(self, html: str) -> None:
        self.html = html
