"""What the commands print to an operator's terminal holds no control characters from events or the database.

A course name, a payload, a token name or a server's error text can hold
`ESC ] ... BEL` (OSC: window title, hyperlinks, clipboard on some
terminals), `ESC [2J` (CSI: clear the screen), C1 controls or bidi
overrides; printed raw, they act on the operator's terminal. Every command
shows them escaped (\\u001b); `--json` output is JSON, which escapes them too.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import pty
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from consumer.cli import main
from consumer.store.tables import courses, rejected_events
from tests.factory import course_event, encode
from tests.helpers import AWS_TEST_ENV, apply_events
from tests.ports import free_port

BIDI = {*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)), "\u2028", "\u2029"}
ESCAPES = ["\x1b]0;owned\x07", "\x1b[2J", "\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\", "\x9b31m", "\x90q\x9c",
           "\u202egnp.exe", "\u2066", "\r", "\t", "\x00", "\x7f", "\x08"]
COURSE_IDS = itertools.count(1000)
NAMES = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(ESCAPES)), min_size=1, max_size=6).map("".join)


def unsafe(text: str) -> list[str]:
    """Characters a terminal would act on: C0 (but the line feed), DEL, C1, bidi overrides and isolates, line separators."""
    return [char for char in text if (ord(char) < 0x20 and char != "\n") or 0x7F <= ord(char) <= 0x9F or char in BIDI]


@pytest.fixture
def run(capsys):
    """Run a command in this process; returns (exit status, stdout, stderr). The logging setup is put back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def command(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    yield command
    root.handlers[:], root.level = saved[0], saved[1]


# A few names per example, each in every place an operator's command prints: about as many names as 40
# examples of one, for a third of the commands run.
@given(names=st.lists(NAMES, min_size=1, max_size=5))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_nothing_printed_from_stored_strings_drives_the_terminal(pg_engine, run, names):
    url = pg_engine.url.render_as_string(hide_password=False)
    stored_names, commands = {}, [("summary",), ("summary", "--json"), ("rejected", "list"), ("rejected", "list", "--json"),
                                  ("token", "list"), ("token", "list", "--json")]
    for name in names:
        course_id = next(COURSE_IDS)
        apply_events(pg_engine, [course_event("2024-01-01T00:00:00Z", course_id=str(course_id), name=name)])
        payload = encode(course_event("2024-01-01T00:00:00Z", course_id=f"x{course_id}", name=name)) + name.encode("utf-8", "surrogatepass")
        text = name.replace("\x00", "")  # Postgres text holds anything but NUL
        with pg_engine.begin() as connection:  # a row as an older version, or anyone with write access, may have stored it
            connection.execute(insert(rejected_events).values(
                payload=payload, payload_sha256=hashlib.sha256(payload).digest(), source=text, first_source=text,
                reason=text, event_name=text))
            rejected_id = connection.execute(select(rejected_events.c.id).order_by(rejected_events.c.id.desc())).scalar()
            stored_names[course_id] = connection.execute(select(courses.c.name).where(courses.c.id == course_id)).scalar()
        commands += [("rejected", "show", str(rejected_id)), ("token", "create", "--account", "1", "--name", text)]
    outputs = {}
    for argv in commands:
        code, out, err = run(*argv, "--database-url", url)
        assert code == 0, (argv, err)
        assert not unsafe(out) and not unsafe(err), (argv, unsafe(out), unsafe(err))
        outputs[argv] = out
    summary = {row["course_id"]: row["name"] for row in json.loads(outputs[("summary", "--json")])}
    for course_id, stored in stored_names.items():
        if stored is not None:  # Postgres stores any text but NUL (an event naming a course with one is quarantined)
            assert summary[course_id] == stored  # escaped on the screen, exact in JSON


def test_summary_shows_escape_sequences_as_text(pg_engine, run):
    url = pg_engine.url.render_as_string(hide_password=False)
    apply_events(pg_engine, [course_event("2024-01-01T00:00:00Z", course_id="7", name="Intro \x1b]0;owned\x07\x1b[2J\u202eCS")])
    code, out, _ = run("summary", "--database-url", url)
    assert code == 0
    assert "Intro \\u001b]0;owned\\u0007\\u001b[2J\\u202eCS" in out


def test_status_escapes_what_the_queue_and_its_errors_say(pg_engine, run, monkeypatch):
    for variable, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    url = pg_engine.url.render_as_string(hide_password=False)
    queue = f"http://127.0.0.1:{free_port()}/000000000000/queue\x1b]0;owned\x07"
    code, out, err = run("status", "--database-url", url, "--queue-url", queue)
    assert code == 1  # the queue cannot be reached
    assert "queue\\u001b]0;owned\\u0007" in out and "UNHEALTHY: queue unreachable" in out
    assert not unsafe(out) and not unsafe(err)


def rejected_show_raw(url: str, rejected_id: int, stdout_is_a_terminal: bool) -> tuple[int, bytes, bytes]:
    """`rejected show --raw` in a real process, its stdout a terminal (a pty) or a pipe."""
    command = [sys.executable, "-m", "consumer", "rejected", "show", str(rejected_id), "--raw", "--database-url", url]
    if not stdout_is_a_terminal:
        result = subprocess.run(command, capture_output=True, timeout=60)
        return result.returncode, result.stdout, result.stderr
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(command, stdout=secondary, stderr=subprocess.PIPE)
        os.close(secondary)
        _, err = process.communicate(timeout=60)
        received = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal's other side is closed: all read
                break
            if not chunk:
                break
            received += chunk
        return process.returncode, received, err
    finally:
        os.close(primary)


def test_rejected_show_raw_gives_the_bytes_to_a_pipe_and_refuses_a_terminal(pg_engine):
    url = pg_engine.url.render_as_string(hide_password=False)
    payload = b'{"metadata": "\x1b]0;owned\x07\x1b[2J"}\xff'
    with pg_engine.begin() as connection:
        connection.execute(insert(rejected_events).values(
            payload=payload, payload_sha256=hashlib.sha256(payload).digest(), source="test:1", reason="r", event_name=None))
        rejected_id = connection.execute(select(rejected_events.c.id)).scalar()
    assert rejected_show_raw(url, rejected_id, stdout_is_a_terminal=False)[:2] == (0, payload)
    code, shown, err = rejected_show_raw(url, rejected_id, stdout_is_a_terminal=True)
    assert (code, shown) == (2, b"")
    assert err.decode().splitlines() == [
        "error: --raw writes the payload byte for byte, terminal escape sequences included: redirect it "
        "(> payload.json, | jq), or leave out --raw to see it with control characters escaped"
    ]
