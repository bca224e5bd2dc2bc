"""Charts drawn on the server as SVG: no script, nothing to download, readable without colour (the comparison
series is dashed) and each one beside a table of the same numbers on the page."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 44
MOST_LABELS = 7  # under the x axis, so they never overlap
BAR_HEIGHT, BAR_GAP, LABEL_WIDTH = 22, 8, 160


def _nice_ceiling(value: Decimal) -> Decimal:
    """The axis top: 1, 2 or 5 times a power of ten at or above the largest value."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (1, 2, 5, 10):
        top = Decimal(step).scaleb(exponent)
        if top >= value:
            return top
    return Decimal(10).scaleb(exponent)  # not reached: 10 x 10^e is always at or above value


def _amount(value: Decimal) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def _axis(value: Decimal) -> str:
    """An axis label short enough for the margin: 35M, 120k, 7.5."""
    if value == 0:
        return "0"
    for size, suffix in ((Decimal(1_000_000), "M"), (Decimal(1_000), "k")):
        if abs(value) >= size:
            return f"{(value / size).normalize():f}{suffix}"
    return f"{value.normalize():f}"


def line_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[Decimal | None]]]) -> Markup:
    """One line per (name, values) over `labels`; the first solid, the others dashed. None leaves a gap."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [value for _, points in series for value in points if value is not None]
    top = _nice_ceiling(max(values, default=Decimal(0)))
    count = max(len(labels), 1)

    def x(index: int) -> float:
        return LEFT + (plot_width * (index + 0.5) / count)

    def y(value: Decimal) -> float:
        return TOP + plot_height * (1 - float(value / top))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        level = top * Decimal(str(fraction))
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(level):.1f}" y2="{y(level):.1f}"/>')
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{y(level) + 4:.1f}" text-anchor="end">{_axis(level)}</text>'
        )
    every = -(-count // MOST_LABELS)
    for index, label in enumerate(labels):
        if index % every == 0:
            parts.append(
                f'<text class="axis" x="{x(index):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    for position, (name, points) in enumerate(series):
        css = "now" if position == 0 else "then"
        drawn = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(points) if v is not None)
        parts.append(f'<polyline class="{css}" points="{drawn}"><title>{escape(name)}</title></polyline>')
        for i, v in enumerate(points):
            if v is not None:
                parts.append(f'<circle class="{css}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3"/>')
    legend_y = HEIGHT - 6
    for position, (name, _) in enumerate(series):
        css, left = ("now" if position == 0 else "then"), LEFT + position * 220
        parts.append(f'<line class="{css}" x1="{left}" x2="{left + 24}" y1="{legend_y - 4}" y2="{legend_y - 4}"/>')
        parts.append(f'<text class="legend" x="{left + 30}" y="{legend_y}">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label and name in it went through escape()


def bar_chart(title: str, bars: Sequence[tuple[str, Decimal]]) -> Markup:
    """Horizontal bars, one per (label, value), largest first as given; negative values draw as none."""
    height = TOP + len(bars) * (BAR_HEIGHT + BAR_GAP) + 8
    top = _nice_ceiling(max((value for _, value in bars), default=Decimal(0)))
    room = WIDTH - LABEL_WIDTH - RIGHT - 90
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for index, (label, value) in enumerate(bars):
        row_y = TOP + index * (BAR_HEIGHT + BAR_GAP)
        length = max(0.0, room * float(value / top))
        parts.append(
            f'<text class="axis" x="{LABEL_WIDTH - 8}" y="{row_y + BAR_HEIGHT * 0.7:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect class="bar" x="{LABEL_WIDTH}" y="{row_y}" width="{length:.1f}" height="{BAR_HEIGHT}"/>'
            f'<text class="value" x="{LABEL_WIDTH + length + 6:.1f}" y="{row_y + BAR_HEIGHT * 0.7:.1f}">'
            f"{_amount(value)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label and name in it went through escape()
