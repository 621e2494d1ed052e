"""Review of "one source of configuration and one-way layers" (8bc311d): ids, offsets and the pipeline split.

- A command-line offset beyond what the database holds is a bad flag (exit 2 naming it), not a database failure.
- Any text as an id in an API path answers 200 or Canvas's 404, never 5xx; a global id names the same object.
- The pipeline split: for any batch, the counts and the quarantine rows are what the inputs call for (the newest
  row per key is applied, the rest stale; one quarantine row per distinct redacted payload), and again the same.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer import cli
from consumer.core import Ignored, Input, Rejected, Tracked
from consumer.events.ids import MAX_ID
from consumer.events.redact import redact_payload
from consumer.events.registry import PRIMARY_KINDS, family, key_of
from consumer.pipeline import Pipeline
from consumer.store.tables import metadata
from consumer.text import one_line
from tests.api.asgi import App
from tests.factory import course_event, encode, progress_event, section_event
from tests.helpers import apply_events, budget, dump_tables, rejected_rows

NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}

# --- Command-line offsets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [str(MAX_ID + 1), "9" * 30])
def test_an_offset_beyond_the_largest_bigint_is_a_bad_flag_not_a_database_failure(offset, sqlite_engine, capsys):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    try:
        code = cli.main(["rejected", "list", "--database-url", url, "--offset", offset])
    except SystemExit as exited:  # argparse refuses a bad flag this way
        code = exited.code
    error = capsys.readouterr().err
    assert code == 2, error  # was 1: "unexpected OverflowError" (SQLite) or "bigint out of range" (Postgres)
    assert error.count("\n") == 1 and "--offset" in error and offset[:19] in error, error


@pytest.mark.parametrize(("command", "flag"), [(("rejected", "list"), "--limit"), (("summary",), "--limit")])
def test_a_limit_beyond_the_largest_bigint_is_a_bad_flag_not_a_database_failure(command, flag, sqlite_engine, capsys):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    try:
        code = cli.main([*command, "--database-url", url, flag, str(MAX_ID + 1)])
    except SystemExit as exited:
        code = exited.code
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and flag in error and str(MAX_ID + 1) in error, error
    assert cli.main([*command, "--database-url", url, flag, str(MAX_ID)]) == 0, capsys.readouterr().err


def test_the_largest_bigint_is_still_an_offset(sqlite_engine, capsys):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    assert cli.main(["rejected", "list", "--database-url", url, "--offset", str(MAX_ID)]) == 0, capsys.readouterr().err


# --- Ids in API paths -----------------------------------------------------------------------------------------------


@pytest.fixture
def app(sqlite_engine) -> App:
    apply_events(sqlite_engine, [course_event("2019-10-28T14:02:11Z", course_id="565", account_id="79")])
    return App(sqlite_engine.url.render_as_string(hide_password=False))


ID_TEXTS = st.one_of(
    st.text(max_size=25),
    st.text(alphabet="0123456789", min_size=1, max_size=25),
    st.integers(0, 10**21).map(str),
    st.sampled_from(["565", "0565", "10000000000565", "21070000000000565", "79", "21070000000000079", str(MAX_ID),
                     str(MAX_ID + 1), "+565", " 565", "565.0", "5_65", "\u0665\u0666\u0665", "\u00b2", "self", "%", "{}"]),
)


@given(text=ID_TEXTS)
@budget(150)
def test_any_id_in_a_path_answers_the_object_or_canvas_404(app, text):
    if not text or "/" in text or text in (".", ".."):
        return  # another route (or none): not an id
    for path, found in ((f"/api/v1/accounts/{text}", {"id": 79}), (f"/api/v1/courses/{text}", {"id": 565, "account_id": 79}),
                        (f"/api/v1/progress/{text}", None)):
        answer = app("GET", path)  # App refuses any 5xx
        body = json.loads(answer.body)
        if answer.status == 200 and text == "self" and "accounts" in path:
            assert body["id"] == 79  # the token's one account
        elif answer.status == 200:
            assert found is not None and found.items() <= body.items(), (path, body)
            assert text.isascii() and text.isdigit() and len(text) <= 19 and int(text) % 10**13 == found["id"], text
        else:
            assert (answer.status, body) == (404, NOT_FOUND), (path, answer.status, body)
            if found is not None and text.isascii() and text.isdigit() and len(text) <= 19:
                assert int(text) % 10**13 != found["id"], (path, "a local or global id of it must find it")


# --- Ids in report parameters -------------------------------------------------------------------------------------


def test_a_float_id_that_may_have_been_rounded_is_refused_not_read_as_another_course():
    from consumer.reports.catalogue import REPORTS, ParameterError, validate_parameters

    report = REPORTS["course_progress_csv"]
    assert validate_parameters(report, {"course_id": float(2**53 - 1)}, None)["course_id"] == (2**53 - 1) % 10**13
    sent = json.loads('{"course_id": 9007199254740993.0}')["course_id"]  # 2**53 + 1, as a client's JSON float
    assert sent == 2**53  # the float already changed it: reading it as 2**53 would name another course
    with pytest.raises(ParameterError, match="as strings or JSON integers"):
        validate_parameters(report, {"course_id": sent}, None)


# --- one_line -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("message", "expected"), [
    ("", ""), ("   ", ""), ("\n\n  \t\n", ""), ("\x1c\x1d\x85\u2028", ""), ("\n  boom  \nsecond", "boom"),
    ("\x1b[31mred", "\\u001b[31mred"), ("\x00", "\\u0000"), ("a\u202eb", "a\\u202eb"),
])
def test_one_line_is_the_first_non_blank_line_escaped(message, expected):
    assert one_line(message) == expected


# --- The pipeline split ---------------------------------------------------------------------------------------------

SECRET = "s3cr3tTOKENvalue"
URL = f"https://canvas.example.edu/api/v1/courses?access_token={SECRET}"
TIMES = ["2019-09-01T10:00:00Z", "2019-09-01T10:00:00Z", "2019-09-02T10:00:00Z", "2019-09-03T10:00:00+02:00"]


def _with_url(event: dict) -> dict:
    event["metadata"]["url"] = URL
    return event


@st.composite
def payloads(draw) -> bytes:
    when = draw(st.sampled_from(TIMES))
    kind = draw(st.sampled_from(["course", "section", "progress", "ignored", "bad_id", "bad_json", "not_json_secret"]))
    if kind == "course":
        return encode(course_event(when, course_id=draw(st.sampled_from(["565", "21070000000000565", "777"])),
                                   name=draw(st.sampled_from(["A", "B"]))))
    if kind == "section":
        return encode(section_event(when, section_id=draw(st.sampled_from(["1", "2"])), name=draw(st.sampled_from(["S", "T"]))))
    if kind == "progress":
        return encode(progress_event(when, course_id=draw(st.sampled_from(["565", "777"])),
                                     user_id=draw(st.sampled_from(["1", "21070000000000001", "2"])), done=draw(st.integers(0, 6)),
                                     total=6))
    if kind == "ignored":
        return encode(course_event(when, event_name="asset_accessed"))
    if kind == "bad_id":  # rejected, with a credential in metadata.url
        return encode(_with_url(course_event(when, course_id=draw(st.sampled_from(["12a", "-5", ""])))))
    if kind == "bad_json":
        return b'{"metadata": {"url": "' + URL.encode() + b'"'
    return f"?access_token={SECRET}&x={draw(st.integers(0, 2))}".encode()


def _expected(pipeline: Pipeline, inputs: list[Input]):
    """What the batch calls for, from the parse outcomes alone (on an empty database)."""
    parsed = pipeline.parse(inputs)
    tracked = Counter(family(o.event_name) for _, o in parsed if isinstance(o, Tracked))
    keys = {(type(row), key_of(type(row))(row)) for _, o in parsed if isinstance(o, Tracked) for row in o.rows
            if type(row) in PRIMARY_KINDS}
    applied = Counter(PRIMARY_KINDS[kind] for kind, _ in keys)
    quarantine: dict[bytes, dict] = {}
    for item, outcome in parsed:
        if isinstance(outcome, Rejected):
            stored = redact_payload(item.payload)
            row = quarantine.setdefault(stored, {"payload": stored, "first_source": item.source, "times_seen": 0})
            row.update(source=item.source, reason=outcome.reason, times_seen=row["times_seen"] + 1)
    counts = {"read": len(inputs), "ignored": sum(isinstance(o, Ignored) for _, o in parsed),
              "rejected": sum(isinstance(o, Rejected) for _, o in parsed)}
    return tracked, applied, counts, list(quarantine.values())


def _reset(engine) -> None:
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@given(chosen=st.lists(payloads(), min_size=1, max_size=25))
@budget(60)
def test_a_batch_applies_the_newest_row_per_key_and_quarantines_each_distinct_redacted_payload(engine, chosen):
    _reset(engine)
    pipeline = Pipeline(engine)
    inputs = [Input(f"test:{n}", payload) for n, payload in enumerate(chosen, 1)]
    tracked, applied, counts, quarantine = _expected(pipeline, inputs)

    first = pipeline.process(inputs)
    assert {name: getattr(first, name) for name in counts} == counts
    for name in tracked:
        assert first.by_type[(name, "applied")] == applied[name], name
        assert first.by_type[(name, "stale_or_duplicate")] == tracked[name] - applied[name], name
    assert first.applied == sum(applied.values()) and first.stale_or_duplicate == sum(tracked.values()) - first.applied
    stored = [{name: row[name] for name in ("payload", "first_source", "source", "reason", "times_seen")}
              for row in rejected_rows(engine)]
    assert stored == quarantine
    assert not any(SECRET.encode() in row["payload"] for row in stored)
    tables = dump_tables(engine)

    again = pipeline.process(inputs[::-1])  # the same inputs again: every tracked event is a duplicate
    assert (again.applied, again.stale_or_duplicate) == (0, sum(tracked.values()))
    assert {name: getattr(again, name) for name in counts} == counts
    assert dump_tables(engine) == tables
    assert sorted(row["times_seen"] for row in rejected_rows(engine)) == sorted(2 * row["times_seen"] for row in quarantine)
