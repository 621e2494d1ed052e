"""Logging setup: standard `logging`, one JSON object per line on stderr.

Credentials stay out of the log. The AWS libraries' loggers (boto3, botocore,
s3transfer, urllib3) stay at WARNING whatever LOG_LEVEL says: at DEBUG their
request dumps carry the session token, the access key id and request
signatures, at INFO they announce where credentials were found. LOG_LEVELS
(`botocore=DEBUG`) turns one on by name, and even then every record passes a
filter that masks AWS access key ids, session tokens, signatures, the
secrets the process was given (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, the
database password), and the values of credential query parameters
(`access_token=...` in an event's URL, which botocore's dump of a received
message holds: `events/redact.py`). Text logs (a person at a terminal) have control
characters escaped, so an event's strings cannot drive the terminal.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable

from pythonjsonlogger.json import JsonFormatter

from consumer.events.redact import redact_text
from consumer.text import safe_text

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# At WARNING unless LOG_LEVELS names them: their DEBUG request dumps carry credentials.
AWS_LIBRARIES = ("boto3", "botocore", "s3transfer", "urllib3")
# Their INFO lines (each migration step) are noise where a failing command's one error line must stand out.
QUIET_LIBRARIES = ("alembic",)
MASK = "***"
_ENVIRONMENT_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_SHORTEST_SECRET = 8  # a shorter value ("test" in an emulator's setup) would mask ordinary words
_ACCESS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
_TOKEN_FIELD = re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[^'\"\s&,;}>]+")
_SIGNATURE = re.compile(r"(?i)((?:x-amz-)?signature['\"]?\s*[:=]\s*['\"]?)[0-9a-f]{64}")
_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def parse_levels(text: str) -> dict[str, str]:
    """LOG_LEVELS: `logger=LEVEL` pairs separated by commas, e.g. `botocore=DEBUG,consumer.worker=DEBUG`.

    Raises ValueError naming the pair that is not one.
    """
    levels: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, equals, level = (piece.strip() for piece in part.partition("="))
        if not equals or not name:
            raise ValueError(f"{part.strip()!r} is not logger=LEVEL (e.g. botocore=DEBUG)")
        if level.upper() not in LEVELS:
            raise ValueError(f"unknown log level {level!r} for the logger {name!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        levels[name] = level.upper()
    return levels


class Redactor:
    """Masks credentials in a text: AWS access key ids, session tokens, signatures, and the given secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        known = {value for value in secrets if value}
        known |= {value for name in _ENVIRONMENT_SECRETS if len(value := os.environ.get(name, "")) >= _SHORTEST_SECRET}
        self.secrets = sorted(known, key=len, reverse=True)  # the longest first: one secret may hold another

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "AKIA" in text or "ASIA" in text:
            text = _ACCESS_KEY_ID.sub(MASK, text)
        lowered = text.lower()
        if "x-amz-security-token" in lowered:
            text = _TOKEN_FIELD.sub(rf"\g<1>{MASK}", text)
        if "signature" in lowered:
            text = _SIGNATURE.sub(rf"\g<1>{MASK}", text)
        return redact_text(text)


class RedactingFilter(logging.Filter):
    """Applies a Redactor to each record's message, exception text, stack and string extras."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the formatter reports it as logging does
            return True
        masked = self.redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = self.redact(text), None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


class TerminalFormatter(logging.Formatter):
    """Plain text with control and invisible characters escaped (\\u001b), line by line."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(safe_text(line) for line in super().format(record).split("\n"))


def configure_logging(level: str = "INFO", fmt: str = "auto", levels: str = "", secrets: Iterable[str] = ()) -> None:
    """Log to stderr: JSON lines for machines, plain text for a person at a terminal.

    `levels` is LOG_LEVELS (`logger=LEVEL,...`); `secrets` are values never to show (the database password).
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    if fmt == "json":
        # JSON escapes control characters itself (ensure_ascii: every one as \uXXXX).
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"})
        )
    else:
        handler.setFormatter(TerminalFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(Redactor(secrets)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for library in AWS_LIBRARIES + QUIET_LIBRARIES:
        logging.getLogger(library).setLevel(max(logging.WARNING, root.level))
    for name, named_level in parse_levels(levels).items():
        logging.getLogger(name).setLevel(named_level)
