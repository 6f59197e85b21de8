"""Tiny inline-SVG charts for the run report: no JavaScript, no CDN, readable offline in any browser."""

from __future__ import annotations

import math
from html import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")
Series = dict[str, list[tuple[float, float]]]


def _ticks(low: float, high: float, n: int = 5) -> list[float]:
    """About n round tick values covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / max(n - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    return [start + i * step for i in range(math.ceil((high - start) / step) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def line_chart(series: Series, title: str, x_label: str, width: int = 560, height: int = 280) -> str:
    """One polyline (with dots) per named series, shared axes, legend on top."""
    points = [p for values in series.values() for p in values if math.isfinite(p[1])]
    if not points:
        return f"<p>{escape(title)}: no data</p>"
    left, right, top, bottom = 60, 15, 40, 40
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    y_ticks = _ticks(min(ys), max(ys))
    x_ticks = _ticks(min(xs), max(xs))
    x0, x1 = x_ticks[0], max(x_ticks[-1], x_ticks[0] + 1e-12)
    y0, y1 = y_ticks[0], max(y_ticks[-1], y_ticks[0] + 1e-12)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for y in y_ticks:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 5}" y="{py(y) + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
    for x in x_ticks:
        parts.append(f'<text x="{px(x):.1f}" y="{height - bottom + 15}" text-anchor="middle">{_fmt(x)}</text>')
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle">{escape(x_label)}</text>'
    )
    legend_x = left
    for i, (name, values) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        shown = [(x, y) for x, y in values if math.isfinite(y)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in shown)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{path}"/>')
        parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{color}"/>' for x, y in shown]
        parts.append(f'<rect x="{legend_x}" y="22" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="31">{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(labels: list[str], values: list[float], title: str, width: int = 560) -> str:
    """Horizontal bars, largest first as given; negative values extend left of the zero line."""
    if not values:
        return f"<p>{escape(title)}: no data</p>"
    row, top, label_w = 18, 26, 150
    height = top + row * len(values) + 10
    low, high = min(0.0, *values), max(0.0, *values)
    span = (high - low) or 1.0

    def px(v: float) -> float:
        return label_w + (v - low) / span * (width - label_w - 70)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="0" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row
        a, b = sorted((px(0.0), px(value)))
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{a:.1f}" y="{y + 2}" width="{max(b - a, 0.5):.1f}" height="{row - 5}" fill="#1f77b4"/>')
        parts.append(f'<text x="{b + 4:.1f}" y="{y + 12}">{_fmt(value)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
