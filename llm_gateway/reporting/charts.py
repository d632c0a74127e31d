"""A small bar chart as server-rendered SVG (no JavaScript, nothing from a CDN)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from html import escape

WIDTH, HEIGHT, PAD = 720, 180, 28


def bars(
    values: Sequence[int | Decimal],
    labels: Sequence[str],
    title: str,
    color: str = "#417690",
    shown: Callable[[int | Decimal], str] = "{:,}".format,
) -> str:
    """An SVG bar per value, the largest at full height; each bar's title is its label.
    ``shown`` writes a value (money: ``"{:,.2f}".format``)."""
    top = max(values, default=0) or 1
    step = (WIDTH - 2 * PAD) / max(len(values), 1)  # room for the last label
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 24}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT + 24}" role="img" aria-label="{escape(title)}" '
        'class="llm-gateway-chart">',
        f'<text x="{PAD}" y="14" font-size="12" fill="#666">{escape(title)} '
        f"(max {escape(shown(top))})</text>",
        f'<line x1="{PAD}" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" stroke="#ccc"/>',
    ]
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        height = (HEIGHT - 24) * value / top
        x = PAD + i * step
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{HEIGHT - height:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{height:.1f}" fill="{color}"><title>{escape(label)}: '
            f"{escape(shown(value))}</title></rect>"
        )
        if i % 5 == 0 or i == len(values) - 1:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{HEIGHT + 16}" font-size="10" fill="#666" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
