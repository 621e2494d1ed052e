"""A course's daily trend as an SVG image, drawn here: no chart library, nothing fetched by the browser.

Two panels over the same days: students and completed students (counts), and the mean share of
requirements done (0-100%). Lines differ by dash pattern as well as colour. The image carries a
<title> and <desc> (the text alternative, also used as the page's `alt`); the page shows the same
figures as a table beside it.

Text in the image (a course name) is hostile: escaped for terminals (consumer/text.safe_text, which also
removes the control characters XML 1.0 cannot hold) and then for XML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from xml.sax.saxutils import escape

from consumer.dashboard.queries import Day
from consumer.text import safe_text

WIDTH, HEIGHT = 760, 400
LEFT, RIGHT, TOP = 64, 24, 40
PANEL_GAP = 56
COUNTS_HEIGHT, SHARE_HEIGHT = 180, 90
# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), all at least 3:1 on white.
STUDENTS_COLOUR, COMPLETED_COLOUR, SHARE_COLOUR = "#0060a8", "#b35c00", "#006e4f"
MAX_TITLE = 120


def _text(value: str) -> str:
    return escape(safe_text(value))


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least `maximum` (0, 1, 2, 5 x 10^k steps)."""
    if not maximum > 1:  # counts are whole numbers: nothing, or at most one, is one step (NaN too)
        return [0.0, 1.0]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if step < 1:
        step = 1.0  # counts are whole numbers
    top = math.ceil(maximum / step) * step
    return [i * step for i in range(int(round(top / step)) + 1)]


def _label(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def _date_ticks(start: date, end: date, count: int = 6) -> list[date]:
    span = (end - start).days
    if span <= 0:
        return [start]
    step = max(1, math.ceil(span / (count - 1)))
    ticks = [date.fromordinal(start.toordinal() + i) for i in range(0, span + 1, step)]
    if (end - ticks[-1]).days >= step / 2:
        ticks.append(end)
    return ticks


def summary(days: Sequence[Day], start: date, end: date) -> str:
    """One sentence a screen reader reads for the chart."""
    if not days:
        return f"No progress recorded for this course from {start.isoformat()} to {end.isoformat()}."
    first, last = days[0], days[-1]
    share = "no requirements known" if last.mean_share_done is None else f"{last.mean_share_done:.0%} of requirements done on average"
    return (f"From {first.day.isoformat()} to {last.day.isoformat()}: students went from {first.students:,} to "
            f"{last.students:,}, completed from {first.completed:,} to {last.completed:,}; on {last.day.isoformat()}, {share}.")


def render(days: Sequence[Day], start: date, end: date, title: str) -> str:
    """The SVG document (a str) for `days` (sorted, within start..end)."""
    title = title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"
    plot_width = WIDTH - LEFT - RIGHT
    span = max(1, (end - start).days)

    def x(day: date) -> float:
        return LEFT + plot_width * ((day - start).days / span if (end - start).days else 0.5)

    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="chart-title chart-desc" font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="chart-title">{_text(title)}</title>',
        f'<desc id="chart-desc">{_text(summary(days, start, end))}</desc>',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
    ]
    counts_top, share_top = TOP, TOP + COUNTS_HEIGHT + PANEL_GAP
    maximum = max((max(d.students, d.completed) for d in days), default=0)
    parts += _panel(counts_top, COUNTS_HEIGHT, nice_ticks(maximum), "Students", _label)
    parts += _panel(share_top, SHARE_HEIGHT, [0, 0.5, 1], "Mean share done", lambda v: f"{v:.0%}")
    for tick in _date_ticks(start, end):
        px = x(tick)
        parts.append(f'<line x1="{px:.1f}" y1="{share_top + SHARE_HEIGHT}" x2="{px:.1f}" y2="{share_top + SHARE_HEIGHT + 4}" stroke="#555"/>')
        anchor = "end" if px > WIDTH - RIGHT - 40 else "start" if px < LEFT + 40 else "middle"  # labels stay inside
        parts.append(f'<text x="{px:.1f}" y="{share_top + SHARE_HEIGHT + 18}" text-anchor="{anchor}" fill="#333">{tick.isoformat()}</text>')
    if days:
        counts = (counts_top, COUNTS_HEIGHT, nice_ticks(maximum)[-1])
        parts.append(_line(days, x, counts, lambda d: d.students, STUDENTS_COLOUR, None))
        parts.append(_line(days, x, counts, lambda d: d.completed, COMPLETED_COLOUR, "6 4"))
        parts.append(_line(days, x, (share_top, SHARE_HEIGHT, 1.0), lambda d: d.mean_share_done, SHARE_COLOUR, None))
    else:
        parts.append(f'<text x="{LEFT + plot_width / 2:.1f}" y="{counts_top + COUNTS_HEIGHT / 2:.1f}" text-anchor="middle" '
                     f'fill="#333">No progress recorded in these days</text>')
    parts += _legend()
    parts.append("</svg>")
    return "\n".join(parts)


def _panel(top: float, height: float, ticks: list[float], name: str, label) -> list[str]:
    top_value = ticks[-1] or 1
    out = [f'<text x="{LEFT}" y="{top - 10}" font-weight="bold" fill="#222">{_text(name)}</text>']
    for tick in ticks:
        py = top + height - height * tick / top_value
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end" fill="#333">{label(tick)}</text>')
    out.append(f'<line x1="{LEFT}" y1="{top + height}" x2="{WIDTH - RIGHT}" y2="{top + height}" stroke="#555"/>')
    return out


def _line(days, x, panel: tuple[float, float, float], value, colour: str, dash: str | None) -> str:
    top, height, top_value = panel
    top_value = top_value or 1
    segments: list[list[str]] = [[]]
    for day in days:
        v = value(day)
        if v is None:  # no figure that day (no requirements known): a gap, not a zero
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append(f"{x(day.day):.1f},{top + height - height * min(v, top_value) / top_value:.1f}")
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    paths = []
    for points in segments:
        if len(points) == 1:  # one day: a dot, not an invisible line
            cx, cy = points[0].split(",")
            paths.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        elif points:
            paths.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2"{dashes}/>')
    return "\n".join(paths)


def _legend() -> list[str]:
    out = []
    entries = (("Students", STUDENTS_COLOUR, None), ("Completed", COMPLETED_COLOUR, "6 4"),
               ("Mean share done", SHARE_COLOUR, None))
    px = WIDTH - RIGHT - 390
    for name, colour, dash in entries:
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{px}" y1="14" x2="{px + 24}" y2="14" stroke="{colour}" stroke-width="2"{dashes}/>')
        out.append(f'<text x="{px + 30}" y="18" fill="#222">{_text(name)}</text>')
        px += 130
    return out
