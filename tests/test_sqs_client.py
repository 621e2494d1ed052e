from consumer.sources.sqs import message_attributes, region_from_queue_url
from tests.factory import encode, sample


def test_region_is_read_from_an_aws_queue_url():
    assert region_from_queue_url("https://sqs.eu-west-1.amazonaws.com/123456789012/canvas-live-events") == "eu-west-1"
    assert region_from_queue_url("http://127.0.0.1:4566/000000000000/canvas-live-events") is None
    assert region_from_queue_url(None) is None


def test_message_attributes_come_from_the_event_metadata():
    assert message_attributes(encode(sample("course_completed"))) == {
        "event_name": "course_completed",
        "event_time": "2019-11-01T19:11:26.615Z",
    }
    assert message_attributes(b"{not json") == {}
    assert message_attributes(b'{"metadata": {"event_name": ""}}') == {}
