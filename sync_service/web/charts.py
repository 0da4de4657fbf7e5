"""Bar charts as inline SVG, drawn on the server: no library, no script, readable with
JavaScript off. Each bar carries a ``<title>`` (its label and value) for a tooltip."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

WIDTH = 290
HEIGHT = 120
TOP = 18  # room for the title and the largest value
BOTTOM = 4


@dataclass(frozen=True)
class Bar:
    """One bar: what it stands for (a run id), its value, and whether it marks a problem."""

    label: str
    value: float
    bad: bool = False


def format_value(value: float) -> str:
    """A short number: whole when whole, else with up to two decimals."""
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def bar_chart(title: str, bars: list[Bar], *, unit: str = "") -> str:
    """An SVG bar chart of ``bars``, oldest on the left, scaled to the largest value."""
    top = max((bar.value for bar in bars), default=0.0)
    scale = (HEIGHT - TOP - BOTTOM) / top if top > 0 else 0.0
    slot = WIDTH / max(len(bars), 1)
    gap = min(4.0, slot / 4)
    shapes = []
    for n, bar in enumerate(bars):
        height = max(bar.value * scale, 1.0 if bar.value > 0 else 0.0)
        x = n * slot + gap / 2
        y = HEIGHT - BOTTOM - height
        tone = "bad" if bar.bad else "ok"
        shapes.append(
            f'<rect class="{tone}" x="{x:.1f}" y="{y:.1f}" width="{slot - gap:.1f}" '
            f'height="{height:.1f}"><title>{escape(bar.label)}: {format_value(bar.value)}{escape(unit)}'
            f"</title></rect>")
    caption = f"{title}{f' ({unit.strip()})' if unit.strip() else ''}"
    empty = "" if bars else (f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
                             'class="note">no runs yet</text>')
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(caption)}">'
        f'<text x="0" y="12" class="title">{escape(caption)}</text>'
        f'<text x="{WIDTH}" y="12" text-anchor="end" class="note">max {format_value(top)}</text>'
        f'<line x1="0" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}" class="axis"/>'
        f"{''.join(shapes)}{empty}</svg>")
