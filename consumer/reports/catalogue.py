"""The reports the API offers and the parameters each accepts (pure: no I/O).

Parameters arrive as Canvas clients send them: form fields such as
`parameters[course_id]=2` or a JSON body `{"parameters": {"course_id": 2}}`.
`validate_parameters` turns either into one normalised dict, or raises
`ParameterError` naming the parameter and the value.

`start_at` / `end_at` are instants for the reports of current rows (a window
`[start_at, end_at)`, normalised to `...Z`) and UTC calendar days for the
trend, whose rows are days (both days included, normalised to `YYYY-MM-DD`,
as a person writes a date range).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from consumer.events.ids import parse_local_id
from consumer.events.timestamps import parse_timestamp
from consumer.text import safe_text

_EXACT_FLOAT = 2**53  # every integer below it is exact as a float (2**53 + 1 arrives as 2**53)
# Characters of a client's value (or of a parameter's name) an error message quotes: a 1 MiB body is not echoed back.
MAX_QUOTED = 100
MAX_NAME = 60


def quoted(value: Any) -> str:
    """A client's value as error messages quote it: its repr (control and invisible characters escaped), cut at MAX_QUOTED."""
    text = safe_text(repr(value))
    return text if len(text) <= MAX_QUOTED else f"{text[:MAX_QUOTED]}... ({len(text)} characters)"


def named(name: str) -> str:
    """A parameter's name as error messages show it: as sent, escaped, cut at MAX_NAME characters."""
    return safe_text(name) if len(name) <= MAX_NAME else f"{safe_text(name[:MAX_NAME])}... ({len(name)} characters)"


class ParameterError(ValueError):
    """A report parameter the API refuses (HTTP 400)."""

    def __init__(self, name: str, value: Any, reason: str) -> None:
        super().__init__(f"parameters[{named(name)}]: {reason} (got {quoted(value)})")
        self.name = name


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    description: str
    kind: str  # "bool", "time", "day", "id"
    levels: tuple[str, ...] = ("account", "course")
    required: bool = False


@dataclass(frozen=True, slots=True)
class ReportDefinition:
    name: str
    title: str
    description: str
    parameters: tuple[Parameter, ...]

    def accepts(self, level: str) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if level in p.levels)


INCLUDE_DELETED = Parameter("include_deleted", "If true, deleted courses (and sections) are included. Defaults to false.", "bool")
COURSE_ID = Parameter("course_id", "The id of the course to report on (account reports only).", "id", levels=("account",))


def _window(what: str) -> tuple[Parameter, Parameter]:
    return (
        Parameter("start_at", f"Only rows whose {what} is at or after this time (ISO 8601).", "time"),
        Parameter("end_at", f"Only rows whose {what} is before this time (ISO 8601).", "time"),
    )


def _days() -> tuple[Parameter, Parameter]:
    day = "YYYY-MM-DD, a UTC calendar day; an ISO 8601 time stands for its UTC day"
    return (
        Parameter("start_at", f"The first day included ({day}).", "day"),
        Parameter("end_at", f"The last day included ({day}); an end_at before start_at gives an empty report.", "day"),
    )


REPORTS: dict[str, ReportDefinition] = {
    report.name: report
    for report in (
        ReportDefinition(
            "course_progress_csv",
            "Course Progress",
            "One row per student per course: requirements, completed requirements, completion and last activity.",
            (INCLUDE_DELETED, COURSE_ID, *_window("last activity")),
        ),
        ReportDefinition(
            "course_completion_csv",
            "Course Completion",
            "One row per course: students tracked, completed, completion rate, mean share done, last activity.",
            (INCLUDE_DELETED, COURSE_ID, *_window("last activity")),
        ),
        ReportDefinition(
            "course_sections_csv",
            "Course Sections",
            "One row per section of the courses in scope.",
            (INCLUDE_DELETED, COURSE_ID, *_window("last event")),
        ),
        ReportDefinition(
            "course_progress_trend_csv",
            "Course Progress Trend",
            "One row per course per UTC day, from its first day with a progress event to its last: students, completed, "
            "completion rate and mean share done as of the end of that day.",
            (INCLUDE_DELETED, COURSE_ID, *_days()),
        ),
    )
}

# Accepted and ignored: Canvas clients send it with every report request.
IGNORED = frozenset({"skip_message"})

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A date, perhaps with a zone, and no time: what parse_timestamp reads as that date's midnight in the zone.
_DATE_WITHOUT_TIME = re.compile(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*(Z|UTC|GMT|[+-][0-9]{2}(:?[0-9]{2})?)?\s*",
                                re.ASCII | re.IGNORECASE)
DAY_FORM = "YYYY-MM-DD, or an ISO 8601 time"

_BRACKETED = re.compile(r"^parameters\[([^\[\]]+)\](\[\])?$")


def parameters_from_pairs(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """`parameters[name]=value` form fields (and `parameters[name][]` lists) as a dict."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        match = _BRACKETED.match(key)
        if not match:
            continue
        name, is_list = match.group(1), match.group(2)
        if is_list:
            found.setdefault(name, []).append(value)
        else:
            found[name] = value if value != "" else None  # an empty form field leaves the parameter out
    return found


def validate_parameters(report: ReportDefinition, raw: Mapping[str, Any] | None,
                        course_id: int | None = None) -> dict[str, Any]:
    """Normalised parameters for an account report, or a course report on `course_id`; or ParameterError.

    A course report may repeat its own course as `course_id` (local or global id); any other course is refused.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ParameterError("", raw, "parameters must be an object")
    level = "account" if course_id is None else "course"
    accepted = {p.name: p for p in report.accepts(level)}
    clean: dict[str, Any] = {}
    for name, value in raw.items():
        if name in IGNORED:
            continue
        if name == "course_id" and course_id is not None:
            if value is not None and _identifier(name, value) != course_id:
                raise ParameterError(name, value, f"a course report covers course {course_id} only")
            continue
        parameter = accepted.get(name)
        if parameter is None:
            known = ", ".join(sorted(accepted)) or "none"
            raise ParameterError(name, value, f"not a parameter of {report.name} at {level} level (accepted: {known})")
        if value is None:
            continue
        clean[name] = _convert(parameter, value)
    for parameter in accepted.values():
        if parameter.required and parameter.name not in clean:
            raise ParameterError(parameter.name, None, "is required")
    return clean


def empty_window(parameters: Mapping[str, Any]) -> bool:
    """Whether the window holds nothing, so the report has no rows: for instants, `[start_at, end_at)` with end_at
    not after start_at; for days (normalised `YYYY-MM-DD`, both included), an end_at before start_at.

    Not an error: the window is well formed, and the Progress message says why nothing matched.
    Normalised parameters tell days from instants by their form (an instant always has a `T`).
    """
    start, end = parameters.get("start_at"), parameters.get("end_at")
    if start is None or end is None:
        return False
    if _DAY.fullmatch(start) and _DAY.fullmatch(end):
        return end < start  # ISO dates sort as the days they name
    return parse_timestamp(end) <= parse_timestamp(start)


def _convert(parameter: Parameter, value: Any) -> Any:
    if parameter.kind == "bool":
        return _boolean(parameter.name, value)
    if parameter.kind == "id":
        return _identifier(parameter.name, value)
    if parameter.kind == "day":
        return _day(parameter.name, value)
    return _time(parameter.name, value)


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ParameterError(name, value, "is not a boolean (true or false)")


def _identifier(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ParameterError(name, value, "is not an id")
    if isinstance(value, float):
        # JSON Schema counts 42.0 as an integer; from 2**53 up a float may already have changed the id.
        if not value.is_integer() or not 0 < value < _EXACT_FLOAT:
            raise ParameterError(name, value, "is not an id (send ids of 2**53 or more as strings or JSON integers)")
        value = int(value)
    try:
        return parse_local_id(str(value).strip())  # a global id (shard * 10**13 + local) names the same course
    except ValueError:
        raise ParameterError(name, value, "is not an id") from None


def _time(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ParameterError(name, value, "is not an ISO 8601 time")
    try:
        instant = parse_timestamp(value)
    except (ValueError, TypeError) as error:
        raise ParameterError(name, value, f"is not an ISO 8601 time ({error})") from None
    return instant.isoformat().replace("+00:00", "Z")


def _day(name: str, value: Any) -> str:
    """`YYYY-MM-DD`, or the UTC calendar day of an ISO 8601 time; normalised to `YYYY-MM-DD`.

    A date with a nonzero UTC offset and no time (`2019-09-01+05:00`) is refused: it is a day of another zone,
    whose hours fall on two UTC days, and taking either would be a guess.
    """
    if not isinstance(value, str):
        raise ParameterError(name, value, f"is not a day ({DAY_FORM})")
    try:
        instant = parse_timestamp(value)
    except (ValueError, TypeError) as error:
        raise ParameterError(name, value, f"is not a day ({DAY_FORM}; {error})") from None
    if _DATE_WITHOUT_TIME.fullmatch(value) and instant.time() != time(0):
        raise ParameterError(name, value, "is a date with a UTC offset but no time, which is no single UTC day "
                                          "(send YYYY-MM-DD, or a time)")
    return instant.date().isoformat()


def day_parameter(parameters: Mapping[str, Any], name: str) -> date | None:
    """The day a validated parameter names (read as `_day` reads it, so a time stands for its UTC day here too)."""
    value = parameters.get(name)
    return None if value is None else date.fromisoformat(_day(name, value))


def time_parameter(parameters: Mapping[str, Any], name: str) -> datetime | None:
    value = parameters.get(name)
    return None if value is None else parse_timestamp(value)
