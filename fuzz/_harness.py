"""What the two fuzz harnesses share: paths, instrumented import, libFuzzer defaults, keep-going mode.

Not a harness itself; see README.md in this folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import atheris

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))  # this checkout's `consumer` and `tests`, even if another copy is installed

# consumer is imported here first, instrumented, so that coverage guides the fuzzer through it.
with atheris.instrument_imports(include=["consumer"]):
    from consumer.events.parse import parse_event

# The invariants and generators are the property test's own (tests/events/test_total_parsing.py).
from consumer.text import one_line  # noqa: E402
from tests.events import test_total_parsing as total  # noqa: E402

__all__ = ["parse_event", "run", "total"]

KEEP_GOING = os.environ.get("FUZZ_KEEP_GOING", "") not in ("", "0")
ARTIFACTS = FUZZ / "artifacts"


def libfuzzer_argv(argv: list[str], max_len: int) -> list[str]:
    """argv with this repo's defaults for the flags not given, and the corpus folders created."""
    flags = {arg.split("=", 1)[0] for arg in argv[1:] if arg.startswith("-")}
    extra = []
    if "-dict" not in flags:
        extra.append(f"-dict={FUZZ / 'json.dict'}")
    if "-artifact_prefix" not in flags:
        ARTIFACTS.mkdir(exist_ok=True)
        extra.append(f"-artifact_prefix={ARTIFACTS}/")
    if "-max_len" not in flags:
        extra.append(f"-max_len={max_len}")
    if "-timeout" not in flags:
        extra.append("-timeout=30")
    for arg in argv[1:]:
        if not arg.startswith("-") and not Path(arg).suffix and not Path(arg).is_file():
            Path(arg).mkdir(parents=True, exist_ok=True)
    return [argv[0], *extra, *argv[1:]]


def run(test_one_input: Callable[[bytes], None], max_len: int) -> None:
    target = keep_going(test_one_input) if KEEP_GOING else unwrapped(test_one_input)
    atheris.Setup(libfuzzer_argv(sys.argv, max_len), target)
    atheris.Fuzz()


def unwrapped(test_one_input: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """Report what parse_event itself raised (the test helpers wrap it in an AssertionError)."""

    def wrapped(data: bytes) -> None:
        try:
            test_one_input(data)
        except AssertionError as exc:
            if exc.__cause__ is not None:
                print(exc, file=sys.stderr)
                raise exc.__cause__ from None
            raise

    return wrapped


# --------------------------------------------------------------------------
# FUZZ_KEEP_GOING=1: record each distinct failure once and go on, instead of
# stopping at the first crash (to survey code that is known to fail).
# --------------------------------------------------------------------------

_seen: set[str] = set()


def keep_going(test_one_input: Callable[[bytes], None]) -> Callable[[bytes], None]:
    def wrapped(data: bytes) -> None:
        try:
            test_one_input(data)
        except Exception as exc:  # every failure is recorded
            key = signature(exc)
            if key in _seen:
                return
            _seen.add(key)
            name = hashlib.sha1(key.encode()).hexdigest()[:12]
            ARTIFACTS.mkdir(exist_ok=True)
            report = ARTIFACTS / f"distinct-{name}.txt"
            if not report.exists():
                (ARTIFACTS / f"distinct-{name}.input").write_bytes(data)
                report.write_text(f"{key}\n\n{''.join(traceback.format_exception(exc))}")
                print(f"\n== distinct failure {name}: {key}", file=sys.stderr, flush=True)

    return wrapped


def signature(exc: BaseException) -> str:
    """One line that two inputs failing for the same reason share."""
    cause = exc.__cause__ if isinstance(exc, AssertionError) and exc.__cause__ is not None else exc
    if cause is not exc or not isinstance(exc, AssertionError):
        frames = [frame for frame in traceback.extract_tb(cause.__traceback__) if "/consumer/" in frame.filename]
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}" if frames else "?"
        return f"{type(cause).__name__} at {where}: {_normalised(str(cause))}"
    message = str(exc).split(" -> ")[0]
    for marker in (": Tracked(", ": Rejected(", ": Ignored(", ": replace ", ": delete ", ": wrap "):
        message = message.split(marker)[0]  # check_mutation's messages: the fault, then where it was made
    return f"AssertionError: {_normalised(re.sub(r'[(][^)]*[)]', '(…)', message))}"


def _normalised(message: str) -> str:
    message = one_line(message, limit=None)
    message = re.sub(r"'[^']*'|\"[^\"]*\"|\(got .*\)", "…", message)
    message = re.sub(r"\d+", "N", message)
    return message[:160]
