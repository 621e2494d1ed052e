"""The stub queue keeps the SQS rules the worker relies on (so that the in-process worker tests mean something)."""

from __future__ import annotations

import threading

import pytest

from consumer.sources.sqs import QueueCounts, QueueError, QueueUnavailable
from tests.worker.fake_clock import FakeClock
from tests.worker.harness import wait_for
from tests.worker.stub_queue import StubQueue


def test_a_received_message_is_invisible_until_its_timeout_then_comes_back_with_a_new_handle(clock, queue):
    (message_id,) = queue.send_bodies(b"{}")
    (first,) = queue.receive(0)
    assert (first.message_id, first.receive_count, first.body) == (message_id, 1, b"{}")
    assert queue.receive(0) == [] and queue.counts() == QueueCounts(0, 1, 0)
    clock.advance(29.9)
    assert queue.receive(0) == []
    clock.advance(0.1)
    (second,) = queue.receive(0)
    assert second.receive_count == 2 and second.receipt_handle != first.receipt_handle


def test_delete_takes_the_latest_receipt_handle(clock, queue):
    queue.send_bodies(b"{}")
    (first,) = queue.receive(0)
    clock.advance(30)
    (second,) = queue.receive(0)
    assert queue.delete([first]) == [] and len(queue) == 1  # superseded: accepted, not deleted (as SQS documents)
    assert queue.delete([second]) == [] and len(queue) == 0 and queue.deleted == [second.message_id]
    forged = type(second)(second.message_id, "never-issued", b"", 1, None)
    assert [f.code for f in queue.delete([forged])] == ["ReceiptHandleIsInvalid"]


def test_visibility_can_be_extended_or_ended_only_while_in_flight(clock, queue):
    queue.send_bodies(b"{}")
    (message,) = queue.receive(0)
    clock.advance(20)
    assert queue.change_visibility([message], 30) == []
    clock.advance(20)
    assert queue.receive(0) == []  # 40 s after receipt, still invisible: it was extended
    assert queue.change_visibility([message], 0) == []
    assert [m.message_id for m in queue.receive(0)] == [message.message_id]
    clock.advance(31)
    assert [f.code for f in queue.change_visibility([message], 30)] == ["ReceiptHandleIsInvalid"]  # a newer handle exists


def test_changing_the_visibility_of_a_visible_message_fails(clock, queue):
    queue.send_bodies(b"{}")
    (message,) = queue.receive(0)
    clock.advance(30)
    assert [f.code for f in queue.change_visibility([message], 30)] == ["MessageNotInflight"]


def test_past_max_receive_count_a_message_moves_to_the_dead_letter_queue(clock):
    queue = StubQueue(clock, visibility_timeout=10, max_receive_count=2)
    (message_id,) = queue.send_bodies(b"{}")
    for expected in (1, 2):
        assert [m.receive_count for m in queue.receive(0)] == [expected]
        clock.advance(10)
    assert queue.receive(0) == [] and len(queue) == 0
    assert queue.dead_letter_queue() is queue.dead_letters and queue.redrive_policy().max_receive_count == 2
    assert queue.redrive_policy().dead_letter_name == queue.dead_letters.name
    assert queue.dead_letters.counts() == QueueCounts(1, 0, 0)
    assert [m.message_id for m in queue.dead_letters.receive(0)] == [message_id]


def test_receive_takes_at_most_ten_in_order_and_carries_the_event_name_attribute(queue):
    ids = queue.send_bodies(*[b"{}"] * 12, event_name="course_progress")
    received = queue.receive(0, max_messages=10)
    assert [m.message_id for m in received] == ids[:10]
    assert {m.event_name for m in received} == {"course_progress"}
    assert [m.message_id for m in queue.receive(0)] == ids[10:]


def test_a_long_poll_returns_when_a_message_arrives_or_after_the_wait():
    clock = FakeClock()
    queue = StubQueue(clock)
    got: list = []
    poller = threading.Thread(target=lambda: got.append(queue.receive(20)), name="poller")
    poller.start()
    wait_for(lambda: clock.asleep(poller), "the long poll to wait")
    assert clock.next_deadline() == clock.now() + 20
    queue.send_bodies(b"{}")
    poller.join(5)
    assert [len(batch) for batch in got] == [1]

    poller = threading.Thread(target=lambda: got.append(queue.receive(20)), name="poller")
    poller.start()
    wait_for(lambda: clock.asleep(poller), "the long poll to wait")
    clock.advance(20)
    poller.join(5)
    assert got[-1] == []


def test_a_long_poll_returns_when_an_in_flight_message_comes_back():
    clock = FakeClock()
    queue = StubQueue(clock, visibility_timeout=30)
    queue.send_bodies(b"{}")
    queue.receive(0)
    clock.advance(25)
    got: list = []
    poller = threading.Thread(target=lambda: got.append(queue.receive(20)), name="poller")
    poller.start()
    wait_for(lambda: clock.asleep(poller), "the long poll to wait")
    assert clock.next_deadline() == clock.now() + 5  # when the message comes back, not the end of the poll
    clock.advance(5)
    poller.join(5)
    assert [m.receive_count for m in got[0]] == [2]


def test_injected_faults(queue):
    queue.send_bodies(b"{}", b"{}")
    queue.receive_errors.append(QueueError("reset"))
    with pytest.raises(QueueError):
        queue.receive(0)
    messages = queue.receive(0)
    queue.failing_visibility = 1
    assert [f.code for f in queue.change_visibility(messages, 60)] == ["InternalError"]
    queue.failing_deletes = 1
    assert [f.message_id for f in queue.delete(messages)] == [messages[0].message_id]
    assert len(queue) == 1
    queue.unusable = "AccessDenied"
    with pytest.raises(QueueUnavailable, match="AccessDenied"):
        queue.visibility_timeout()


def test_bodies_sqs_cannot_carry_are_refused(queue):
    failures = queue.send([(b"{}", {}), (b"\xff", {}), (b"bell \x07", {})])
    assert [f.index for f in failures] == [1, 2] and len(queue) == 1
