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


def test_a_failed_receive_is_a_queue_error_naming_the_cause(make_queue, sqs_client, sqs_endpoint):
    """What the worker retries: SQS's refusal (here, a queue deleted under it) arrives as QueueError, the cause kept."""
    import pytest
    from botocore.exceptions import ClientError

    from consumer.sources.sqs import QueueError, SqsQueue

    queue_url, _ = make_queue()
    queue = SqsQueue(sqs_client, queue_url)
    assert queue.receive(0) == []
    sqs_client.delete_queue(QueueUrl=queue_url)
    with pytest.raises(QueueError) as raised:
        queue.receive(0)
    assert isinstance(raised.value.__cause__, ClientError) and str(raised.value)
