"""consumer/events/envelope.py: the Canvas event out of its transport, or one line saying why not.

The envelopes are the golden files of tests/payloads/ (tests/factory.py loads them).
"""

from __future__ import annotations

import json

import orjson
import pytest

from consumer.events.envelope import EnvelopeError, unwrap
from tests.factory import ENVELOPES, in_caliper, in_sns, payload, sample, sns_notification, wrapped


def test_a_bare_canvas_event_is_returned_as_it_is():
    event = sample("course_progress")
    assert unwrap(event) is event


def test_the_golden_sns_notification_gives_the_event_in_its_message():
    assert unwrap(orjson.loads(payload("sns-notification"))) == sample("course_completed")


@pytest.mark.parametrize("envelope", [e for e in ENVELOPES if e != "caliper"])
def test_sns_once_or_twice_gives_the_same_event(envelope):
    event = sample("course_section_updated")
    assert unwrap(orjson.loads(wrapped(event, envelope))) == event


def test_sns_three_deep_is_refused():
    with pytest.raises(EnvelopeError, match="^SNS notifications nested more than twice$"):
        unwrap(orjson.loads(in_sns(sample("course_progress"), times=3)))


@pytest.mark.parametrize(("document", "kind"), [([], "an array"), ("text", "a string"), (5, "a number"), (None, "null")])
def test_anything_but_an_object_is_refused_naming_its_type(document, kind):
    with pytest.raises(EnvelopeError, match=f"^expected a JSON object, got {kind}"):
        unwrap(document)


def test_an_sns_message_that_is_not_an_object_is_refused_naming_its_type():
    with pytest.raises(EnvelopeError, match="^expected a JSON object, got an array"):
        unwrap(sns_notification("[1, 2]"))


def test_the_golden_caliper_envelope_is_refused_by_name_with_what_to_change():
    with pytest.raises(EnvelopeError) as refused:
        unwrap(orjson.loads(payload("caliper-envelope")))
    assert str(refused.value) == (
        "Caliper envelope (dataVersion='http://purl.imsglobal.org/ctx/caliper/v1p1') is not supported: "
        "set the Live Events subscription format to 'Canvas'"
    )


def test_caliper_is_told_by_its_data_version_in_any_case_or_by_its_shape():
    for document in ({"dataVersion": "HTTP://PURL.IMSGLOBAL.ORG/CTX/CALIPER/V1P2", "metadata": {}, "body": {}},
                     {"sensor": "http://oxana.instructure.com/", "data": []},  # no dataVersion: the sensor and the data list
                     orjson.loads(in_caliper(sample("course_progress")))):
        with pytest.raises(EnvelopeError, match="^Caliper envelope"):
            unwrap(document)


def test_a_sensor_without_a_data_list_is_not_caliper():
    document = {**sample("course_progress"), "sensor": "x", "data": {"not": "a list"}}
    assert unwrap(document) is document


@pytest.mark.parametrize("version", ["caliper" + "x" * 80, "caliper\x1b[2J", "caliper\n2", 1.1, None],
                         ids=["long", "escape", "newline", "number", "null"])
def test_a_caliper_version_is_shown_only_when_short_and_printable(version):
    with pytest.raises(EnvelopeError) as refused:
        unwrap({"dataVersion": version, "sensor": "s", "data": []})
    assert str(refused.value).startswith("Caliper envelope (dataVersion='...') is not supported")


def test_an_sns_message_that_is_not_a_string_is_refused_naming_its_type():
    with pytest.raises(EnvelopeError, match=r"^SNS notification field Message is not a string \(got a number\)$"):
        unwrap(orjson.loads(payload("sns-message-not-a-string")))


def test_an_sns_message_that_is_not_json_is_refused_with_the_decoder_s_first_line():
    with pytest.raises(EnvelopeError) as refused:
        unwrap(orjson.loads(payload("sns-message-not-json")))
    message = str(refused.value)
    assert message.startswith("SNS notification field Message is not valid JSON: ") and "\n" not in message


def test_the_message_is_decoded_with_the_decoder_given():
    seen = []

    def decode(text: str):
        seen.append(text)
        return json.loads(text)

    event = sample("course_created")
    assert unwrap(sns_notification(json.dumps(event)), decode) == event
    assert seen == [json.dumps(event)]


@pytest.mark.parametrize("error", [RecursionError(), RecursionError("maximum recursion depth exceeded\nwhile decoding"),
                                   ValueError("")])
def test_a_decoder_that_gives_up_is_one_line(error):
    def decode(text: str):
        raise error

    with pytest.raises(EnvelopeError) as refused:
        unwrap(sns_notification("[[[["), decode)
    message = str(refused.value)
    assert message.startswith("SNS notification field Message is not valid JSON: ") and "\n" not in message
    assert message.endswith("nested too deeply") or "maximum recursion depth exceeded" in message


@pytest.mark.parametrize("document", [{"Type": "Notification"}, {"Type": "SubscriptionConfirmation", "Message": "{}"}])
def test_what_is_not_an_sns_notification_with_a_message_is_left_to_the_event_checks(document):
    assert unwrap(document) is document
