"""Logs hold no credentials: AWS libraries stay at WARNING unless named, and every record is masked."""

from __future__ import annotations

import io
import json
import logging
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.logs import AWS_LIBRARIES, RedactingFilter, Redactor, configure_logging, parse_levels
from tests.factory import SAMPLE_EVENTS
from tests.helpers import FAST, cli, environment

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-session-token-0123456789+abcdef/ghij=="
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_SESSION_TOKEN": SESSION_TOKEN}


def worker_logs(make_queue, sqs_endpoint, database, events: Path = SAMPLE_EVENTS / "course_completed.json", **variables: str) -> str:
    """stderr of a real `send` and `run --burst` against the SQS emulator, with recognisable credentials."""
    queue_url, _ = make_queue()
    env = {**environment(sqs_endpoint, database), **CREDENTIALS, **variables}
    sent = cli("send", str(events), "--queue-url", queue_url, env=env)
    run = cli("run", "--queue-url", queue_url, "--burst", "--json", *FAST, env=env)
    assert (sent.returncode, run.returncode) == (0, 0), sent.stderr.decode()[-2000:] + run.stderr.decode()[-2000:]
    assert json.loads(run.stdout)["applied"] == 1
    return sent.stderr.decode() + run.stderr.decode()


def assert_no_credentials(text: str) -> None:
    for secret in (ACCESS_KEY_ID, SECRET_KEY, SESSION_TOKEN):
        assert secret not in text
    assert "Found credentials" not in text


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_aws_libraries_stay_quiet_at_any_log_level(make_queue, sqs_endpoint, database, level):
    text = worker_logs(make_queue, sqs_endpoint, database, LOG_LEVEL=level)
    assert_no_credentials(text)
    names = {json.loads(line)["name"] for line in text.splitlines()}
    assert names and not any(name.split(".")[0] in AWS_LIBRARIES for name in names), names


def test_libraries_named_in_log_levels_log_with_credentials_masked(make_queue, sqs_endpoint, database):
    text = worker_logs(make_queue, sqs_endpoint, database, LOG_LEVEL="INFO", LOG_LEVELS="botocore=DEBUG, urllib3=DEBUG")
    records = [json.loads(line) for line in text.splitlines()]
    botocore = [r for r in records if r["name"].startswith("botocore")]
    assert len(botocore) > 20  # request dumps, signing, credential lookup: all there
    assert any("x-amz-security-token" in r["message"].lower() for r in botocore)  # the header is logged, its value is not
    assert any(r["name"].startswith("urllib3") for r in records)
    for secret in (ACCESS_KEY_ID, SECRET_KEY, SESSION_TOKEN):
        assert secret not in text


def test_an_event_s_access_token_is_masked_in_botocore_s_message_dumps(make_queue, sqs_endpoint, database, tmp_path):
    # Canvas's metadata.url carries the request's access_token; at botocore=DEBUG the received message is dumped.
    event = json.loads((SAMPLE_EVENTS / "course_completed.json").read_bytes())
    event["metadata"]["url"] = "https://canvas.example.edu/api/v1/courses/565?access_token=7~CanvasApiTokenInTheLog&x=1"
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    text = worker_logs(make_queue, sqs_endpoint, database, events=path, LOG_LEVEL="INFO", LOG_LEVELS="botocore=DEBUG")
    assert "canvas.example.edu/api/v1/courses/565?access_token=" in text  # the message body was dumped
    assert "CanvasApiTokenInTheLog" not in text


def test_a_bad_log_levels_setting_is_one_line(tmp_path):
    result = cli("status", env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOG_LEVELS": "botocore=LOUD",
                                "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "error: invalid LOG_LEVELS 'botocore=LOUD': unknown log level 'LOUD' for the logger 'botocore': "
        "use DEBUG, INFO, WARNING, ERROR or CRITICAL"
    ]


def test_parse_levels():
    assert parse_levels(" botocore=debug , consumer.worker=WARNING,") == {"botocore": "DEBUG", "consumer.worker": "WARNING"}
    assert parse_levels("") == {}
    with pytest.raises(ValueError, match="'botocore' is not logger=LEVEL"):
        parse_levels("botocore")


KEY_ID = st.builds(lambda prefix, rest: prefix + rest, st.sampled_from(["AKIA", "ASIA"]),
                   st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16))
TEXT = st.text(st.characters(codec="utf-8", exclude_characters=string.ascii_uppercase + string.digits), max_size=40)


@given(before=TEXT, after=TEXT, key_id=KEY_ID, token=st.text(string.ascii_letters + string.digits + "+/=", min_size=20, max_size=400))
@settings(max_examples=300, deadline=None)
def test_access_key_ids_and_token_headers_are_masked_wherever_they_appear(before, after, key_id, token):
    redact = Redactor()
    assert key_id not in redact(before + key_id + after)
    for dump in (f"{{'X-Amz-Security-Token': b'{token}', 'Authorization': b'AWS4-HMAC-SHA256 Credential={key_id}/x'}}",
                 f"x-amz-security-token:{token}\nhost:sqs", f"?X-Amz-Security-Token={token}&X-Amz-Credential={key_id}"):
        masked = redact(before + dump + after)
        assert token not in masked and key_id not in masked


@given(secret=st.text(min_size=8, max_size=60), before=st.text(max_size=30), after=st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_known_secrets_are_masked_in_messages_arguments_extras_and_tracebacks(secret, before, after):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(Redactor([secret])))
    handler.setFormatter(logging.Formatter("%(message)s %(detail)s"))
    logger = logging.getLogger("tests.redaction")
    logger.handlers[:], logger.propagate = [handler], False
    try:
        logger.warning("%s" + before.replace("%", "%%"), secret, extra={"detail": after + secret})
        try:
            raise RuntimeError(f"{before}{secret}{after}")
        except RuntimeError:
            logger.exception("failed", extra={"detail": ""})
    finally:
        logger.handlers[:] = []
    assert secret not in stream.getvalue()
    assert "RuntimeError" in stream.getvalue()


def test_text_logs_escape_terminal_control_characters(capsys):
    configure_logging("INFO", "text")
    try:
        logging.getLogger("consumer.test").warning("rejected %s", "course \x1b]0;owned\x07 \x1b[2J \u202egnp.exe \x9b")
    finally:
        logging.getLogger().handlers[:] = []
    line = capsys.readouterr().err
    assert "\\u001b]0;owned\\u0007 \\u001b[2J \\u202egnp.exe \\u009b" in line
    assert not any(ord(char) < 0x20 and char != "\n" or 0x7F <= ord(char) <= 0x9F for char in line)
