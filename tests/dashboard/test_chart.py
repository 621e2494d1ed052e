"""consumer/dashboard/chart.py: tick values, the text alternative, and the SVG for no days, one day, gaps and hostile titles."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from consumer.dashboard import chart
from consumer.dashboard.queries import Day

SVG = "{http://www.w3.org/2000/svg}"
START = date(2019, 9, 1)


@given(st.integers(0, 10**12) | st.floats(0, 1e12, allow_nan=False))
def test_ticks_start_at_0_cover_the_maximum_and_rise_in_few_round_steps(maximum) -> None:
    ticks = chart.nice_ticks(maximum)
    assert ticks[0] == 0 and ticks[-1] >= maximum
    assert all(a < b for a, b in zip(ticks, ticks[1:], strict=False))
    assert 2 <= len(ticks) <= 11
    step = ticks[1] - ticks[0]
    assert step >= 1 and float(step).is_integer()  # counts are whole numbers
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 5, 10)), step
    assert all(math.isclose(b - a, step) for a, b in zip(ticks, ticks[1:], strict=False))
    assert ticks[-1] - step < max(maximum, 1)  # no empty step above the maximum


def test_ticks_of_nothing_are_0_and_1() -> None:
    assert chart.nice_ticks(0) == [0.0, 1.0] and chart.nice_ticks(-3) == [0.0, 1.0]


def day(offset: int, students: int, completed: int, share: float | None) -> Day:
    return Day(day=START + timedelta(days=offset), students=students, completed=completed, mean_share_done=share)


def test_the_summary_says_what_the_chart_shows() -> None:
    assert chart.summary([], START, START + timedelta(days=6)) == \
        "No progress recorded for this course from 2019-09-01 to 2019-09-07."
    text = chart.summary([day(0, 1, 0, 0.25), day(5, 1234, 7, 0.5)], START, START + timedelta(days=9))
    assert text == ("From 2019-09-01 to 2019-09-06: students went from 1 to 1,234, completed from 0 to 7; on 2019-09-06, "
                    "50% of requirements done on average.")
    assert chart.summary([day(0, 2, 0, None)], START, START).endswith("on 2019-09-01, no requirements known.")


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc").text
    return root


def marks(root: ET.Element, colour: str) -> tuple[list[ET.Element], list[ET.Element]]:
    lines = [e for e in root.iter(f"{SVG}polyline") if e.get("stroke") == colour]
    dots = [e for e in root.iter(f"{SVG}circle") if e.get("fill") == colour]
    return lines, dots


def test_render_no_days_says_so_and_draws_no_line() -> None:
    root = parse(chart.render([], START, START + timedelta(days=30), "Daily progress of X"))
    assert not list(root.iter(f"{SVG}polyline")) and not list(root.iter(f"{SVG}circle"))
    assert any(e.text == "No progress recorded in these days" for e in root.iter(f"{SVG}text"))
    assert root.find(f"{SVG}desc").text.startswith("No progress recorded for this course")


def test_render_one_day_is_a_dot_per_series() -> None:
    root = parse(chart.render([day(0, 3, 1, 0.5)], START, START, "one day"))
    for colour in (chart.STUDENTS_COLOUR, chart.COMPLETED_COLOUR, chart.SHARE_COLOUR):
        lines, dots = marks(root, colour)
        assert not lines and len(dots) == 1


def test_render_leaves_a_gap_for_days_without_a_share() -> None:
    days = [day(0, 1, 0, 0.2), day(1, 1, 0, 0.4), day(2, 1, 0, None), day(3, 2, 1, 0.5), day(4, 2, 1, 0.6)]
    root = parse(chart.render(days, START, START + timedelta(days=4), "gap"))
    lines, dots = marks(root, chart.SHARE_COLOUR)
    assert [len(line.get("points").split()) for line in lines] == [2, 2] and not dots
    assert [len(line.get("points").split()) for line in marks(root, chart.STUDENTS_COLOUR)[0]] == [5]
    none = parse(chart.render([day(0, 1, 0, None), day(1, 1, 0, None)], START, START + timedelta(days=1), "none"))
    assert marks(none, chart.SHARE_COLOUR) == ([], [])


def test_points_stay_inside_the_image() -> None:
    days = [day(n, n * 1000, n * 10, min(1.0, n / 10)) for n in range(30)]
    root = parse(chart.render(days, START, START + timedelta(days=29), "inside"))
    for line in root.iter(f"{SVG}polyline"):
        for point in line.get("points").split():
            x, y = map(float, point.split(","))
            assert 0 <= x <= chart.WIDTH and 0 <= y <= chart.HEIGHT


@given(st.text(max_size=500))
def test_any_title_gives_well_formed_svg_with_a_bounded_title(title) -> None:
    root = parse(chart.render([day(0, 1, 0, 0.5)], START, START, title))
    shown = root.find(f"{SVG}title").text or ""
    assert len(shown) <= chart.MAX_TITLE * 10  # escaped characters are at most 10 long each
    assert not any(ch in shown for ch in "\x00\x1b\u202e\u2066")
    assert {e.tag for e in root.iter()} <= {f"{SVG}{n}" for n in ("svg", "title", "desc", "rect", "line", "text", "polyline", "circle")}
