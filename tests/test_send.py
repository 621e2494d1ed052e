"""`send` never alters a payload (issue 10): against a real SQS endpoint (ministack).

What SQS cannot carry unchanged (bytes that are not UTF-8, characters
outside the set SQS accepts) is reported by its source, counted as failed
and never sent; the run exits 1. Everything else arrives byte for byte.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from consumer.sources.sqs import SqsQueue, message_attributes, unsendable
from tests.factory import SAMPLE_EVENTS, encode, progress_event
from tests.helpers import cli, environment

GOOD = [
    encode(progress_event("2019-11-01T00:00:00Z", user_id="1")),
    '{"metadata": {"event_name": "x"}, "note": "caf\u00e9 \U0001f600 \ud7ff \ue000 \ufffd \U0010ffff\t"}'.encode(),
    encode(progress_event("2019-11-01T00:00:01Z", user_id="2")),
]
BAD = {
    2: b'{"metadata": {"event_name": "course_progress"}, "note": "caf\xe9"}',  # Latin-1, not UTF-8
    4: b'{"note": "bell \x07"}',  # a control character SQS refuses
    5: b'{"note": "\xef\xbf\xbe"}',  # U+FFFE, a noncharacter SQS refuses
}


def drain(client, queue_url: str) -> list[dict]:
    messages = []
    while batch := client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]).get("Messages"):
        messages += batch
        client.delete_message_batch(QueueUrl=queue_url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)])
    return messages


def test_send_never_alters_a_payload_and_exits_1_for_what_sqs_cannot_carry(make_queue, sqs_client, sqs_endpoint, tmp_path):
    queue_url, _ = make_queue()
    lines = [GOOD[0], GOOD[1], BAD[2], GOOD[2], BAD[4], BAD[5]]
    (tmp_path / "events.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    result = cli("send", str(tmp_path / "events.ndjson"), "--queue-url", queue_url, "--json", "--log-format", "text",
                 env=environment(sqs_endpoint, f"sqlite:///{tmp_path / 'unused.db'}"))
    assert result.returncode == 1
    assert json.loads(result.stdout)["sent"] == 3 and json.loads(result.stdout)["failed"] == 3
    stderr = result.stderr.decode()
    assert b"Traceback" not in result.stderr
    for line_number in (3, 5, 6):
        assert sum(f"not sent {tmp_path}/events.ndjson:{line_number}:" in line for line in stderr.splitlines()) == 1
    assert "not valid UTF-8" in stderr and "U+0007" in stderr and "U+FFFE" in stderr
    assert stderr.splitlines()[-1].startswith("error: 3 inputs not sent")
    bodies = sorted(message["Body"].encode("utf-8") for message in drain(sqs_client, queue_url))
    assert bodies == sorted(GOOD)  # byte for byte; nothing replaced with U+FFFD


def test_send_reports_files_it_cannot_read_and_sends_the_rest(make_queue, sqs_client, sqs_endpoint, tmp_path):
    queue_url, _ = make_queue()
    (tmp_path / "a.ndjson").write_bytes(GOOD[0])
    (tmp_path / "b.ndjson").symlink_to(tmp_path / "nowhere")
    result = cli("send", str(tmp_path), "--queue-url", queue_url, env=environment(sqs_endpoint, f"sqlite:///{tmp_path / 'unused.db'}"))
    assert result.returncode == 1 and b"dangling" in result.stderr and b"Traceback" not in result.stderr
    assert [m["Body"].encode() for m in drain(sqs_client, queue_url)] == [GOOD[0]]


def test_the_queue_adapter_refuses_unsendable_bodies_without_a_request(sqs_client, make_queue):
    queue_url, _ = make_queue()
    queue = SqsQueue(sqs_client, queue_url)
    failures = queue.send([(GOOD[0], {}), (BAD[2], {}), (GOOD[1], {"event_name": "x"}), (BAD[4], {})])
    assert [(f.index, f.reason.split(" ")[0]) for f in failures] == [(1, "not"), (3, "holds")]
    assert sorted(m["Body"].encode() for m in drain(sqs_client, queue_url)) == sorted([GOOD[0], GOOD[1]])

    class NoRequests:
        def send_message_batch(self, **_):
            raise AssertionError("nothing sendable: no request expected")

    assert [f.index for f in SqsQueue(NoRequests(), queue_url).send([(BAD[2], {}), (BAD[5], {})])] == [0, 1]


def test_attributes_sqs_cannot_carry_are_left_out():
    event = {"metadata": {"event_name": "course_progress\u0000", "event_time": "2019-11-01T00:00:00Z"}, "body": {}}
    assert message_attributes(json.dumps(event).encode()) == {"event_time": "2019-11-01T00:00:00Z"}


_ALLOWED = [(0x9, 0x9), (0xA, 0xA), (0xD, 0xD), (0x20, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF)]


@given(st.binary(max_size=40) | st.text(max_size=20).map(lambda text: text.encode("utf-8", "surrogatepass")))
def test_unsendable_is_exactly_what_sqs_refuses(payload):
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        carried = False
    else:
        carried = all(any(low <= ord(c) <= high for low, high in _ALLOWED) for c in text)
    assert (unsendable(payload) is None) == carried


def test_send_sets_canvas_message_attributes(make_queue, sqs_client, sqs_endpoint, tmp_path):
    queue_url, _ = make_queue()
    env = environment(sqs_endpoint, f"sqlite:///{tmp_path / 'unused.db'}")
    assert cli("send", str(SAMPLE_EVENTS / "course_completed.json"), "--queue-url", queue_url, env=env).returncode == 0
    (message,) = sqs_client.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {"event_name": "course_completed", "event_time": "2019-11-01T19:11:26.615Z"}
