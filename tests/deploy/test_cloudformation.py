"""deploy/cloudformation: the queue template passes cfn-lint and grants the worker exactly what it calls."""

from __future__ import annotations

import subprocess

import yaml

from tests.deploy.manifests import DEPLOY, tool


def test_cloudformation_template_passes_cfn_lint_and_grants_exactly_the_worker_actions():
    template_path = DEPLOY / "cloudformation" / "live-events-queue.yaml"
    result = subprocess.run([tool("cfn-lint"), str(template_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else loader.construct_sequence(node))
    template = yaml.load(template_path.read_text(), Loader=Loader)  # our own file, custom safe loader
    resources = template["Resources"]
    assert template["Parameters"]["QueueName"]["Default"].startswith("canvas-live-events")
    assert "RedrivePolicy" in resources["LiveEventsQueue"]["Properties"]
    (statement,) = resources["LiveEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert "${LiveEventsAccountId}" in statement["Principal"]["AWS"] and template["Parameters"]["LiveEventsAccountId"]["Default"] == "636161780776"
    assert statement["Action"] == "sqs:SendMessage"
    worker, dead_letters = resources["WorkerPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(worker["Action"]) == ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    # The worker's canvas_sqs_queue_messages{queue="dead_letter"} gauge: read-only, on the dead-letter queue only.
    assert sorted(dead_letters["Action"]) == ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    assert dead_letters["Resource"] == ["DeadLetterQueue.Arn"] or dead_letters["Resource"] == "DeadLetterQueue.Arn"
