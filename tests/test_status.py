"""`status` reports true figures and its exit status says whether all is well."""

import json

from tests.factory import SAMPLE_EVENTS, encode, progress_event
from tests.helpers import cli, environment


def status(env, *args):
    result = cli("status", "--json", *args, env=env)
    return result.returncode, json.loads(result.stdout)


def test_status_reports_queue_dead_letters_rejections_and_freshness(make_queue, sqs_client, sqs_endpoint, database,
                                                                   sample_expectations):
    queue_url, dlq_url = make_queue()
    env = {**environment(sqs_endpoint, database), "SQS_QUEUE_URL": queue_url}
    assert cli("replay", str(SAMPLE_EVENTS), env=env).returncode == 0
    for n in range(3):
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=encode(progress_event("2019-11-01T00:00:00Z", user_id=str(n))).decode())
    code, report = status(env)
    assert code == 0 and report["healthy"] is True
    assert (report["queue_visible"], report["queue_in_flight"], report["dead_letter_visible"]) == (3, 0, 0)
    assert report["rejected"] == sample_expectations.rejected
    assert report["newest_event_time"]["course_progress"] == "2019-11-01T19:11:26.615000+00:00"
    assert report["lag_seconds"]["course_progress"] > 0

    code, report = status(env, "--max-lag", "60")  # the samples are from 2019
    assert code == 1 and "more than --max-lag 60s" in report["problems"][0]

    sqs_client.send_message(QueueUrl=dlq_url, MessageBody="poison")
    code, report = status(env)
    assert code == 1 and report["dead_letter_visible"] == 1
    assert report["problems"] == [f"1 messages in the dead-letter queue {dlq_url.rsplit('/', 1)[1]}"]
    text = cli("status", env=env)
    assert text.returncode == 1 and b"UNHEALTHY" in text.stdout


def test_status_with_the_database_down_exits_1(sqs_endpoint):
    env = environment(sqs_endpoint, "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    code, report = status(env)
    assert code == 1 and report["database"].startswith("unreachable")
