"""Schemathesis against the served OpenAPI document: generated requests to every operation, no server error.

The schema is loaded from the running server, and each operation's Hypothesis
strategy is driven directly (schemathesis' lazy pytest loader does not work
with pytest 9).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

# CI runs a fixed, reproducible sample (derandomized: the same requests every run,
# so a red build is never luck). Explore further with, for example,
#   SCHEMATHESIS_EXAMPLES=1000 SCHEMATHESIS_RANDOM=1 python -m pytest tests/api/test_schemathesis.py
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "30"))
# The command line's own run adds its phases and every check to what the test above already sends: fewer
# examples each (its coverage phase still sends every boundary value it derives from the schema).
CLI_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))
DERANDOMIZE = os.environ.get("SCHEMATHESIS_RANDOM", "") == ""


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error_or_breaks_the_schema(api, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    session = requests.Session()
    failures: list[str] = []
    seen: list[str] = []

    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=DERANDOMIZE)
        def exercise(case) -> None:
            # With a valid token, so generation reaches past authentication into the routes.
            response = case.call(session=session, headers=api.headers(), timeout=30)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
            if mode is GenerationMode.POSITIVE:
                case.validate_response(response)

        try:
            exercise()
        except Unsatisfiable:
            # Nothing to make invalid (no parameters, no body): only possible in negative mode.
            if mode is GenerationMode.POSITIVE or operation.path_parameters or operation.query or operation.body:
                failures.append(f"{operation.label}: no request could be generated")
        except Exception as error:  # collected, reported below
            failures.append(f"{operation.label}: {error}")
        seen.append(operation.label)

    assert not failures, "\n\n".join(failures)
    assert len(seen) == len(operations)


def test_the_schemathesis_command_line_finds_nothing_with_every_check(api, tmp_path) -> None:
    """What an outside team would run: `schemathesis run --checks all`, with its coverage, fuzzing and stateful phases.

    Fixed seed and deterministic generation, so CI sees the same requests each run.
    `ensure_resource_availability` is left out: it creates a report under
    /accounts/self/... and then fetches it under /accounts/79/... after another
    step deleted it there, which it cannot know are one account.
    """
    command = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [str(command), "run", f"{api.url}/openapi.json", "--header", f"Authorization: Bearer {api.token}",
         "--checks", "all", "--exclude-checks", "ensure_resource_availability", "--seed", "1",
         "--generation-deterministic", "--max-examples", str(CLI_EXAMPLES), "--workers", "1", "--no-color",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)  # its .schemathesis/ cache: not in the tree
    summary = "\n".join(line for line in result.stdout.splitlines() if len(line) < 400)
    assert result.returncode == 0, summary[-6000:]
    assert " passed" in summary and "failures" not in summary.lower().split("summary")[-1]
