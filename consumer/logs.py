"""Logging setup: standard `logging`, one JSON object per line on stderr."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Log to stderr: JSON lines for machines, plain text for a person at a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"})
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries' INFO lines ("Found credentials in environment variables", each migration step) are noise
    # on stderr, where a failing command's one error line must stand out.
    for library in ("alembic", "botocore", "boto3", "urllib3"):
        logging.getLogger(library).setLevel(max(logging.WARNING, root.level))
