"""argparse types for ids on the command line, read by the one id parser (`events/ids.py`).

`rejected show ID`, `rejected retry ID...` and `token revoke ID` name rows
of ours (`id_argument`); `token create --account ID` names a Canvas account,
by its local or global id (`account_argument`). A refused value is one line
quoting it: "argument id: "12a" is not an id: expected 1 to 19 digits ...".
"""

from __future__ import annotations

import argparse

from consumer.events.ids import MAX_ID, parse_id, parse_local_id


def id_argument(text: str) -> int:
    """argparse type: an id of ours (1 to 19 ASCII digits, 1 to 2**63-1)."""
    try:
        return parse_id(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def account_argument(text: str) -> int:
    """argparse type: a Canvas account id, local or global, as its local id."""
    try:
        return parse_local_id(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive_int(text: str) -> int:
    """argparse type: an integer of 1 to MAX_ID (a count or a limit: a larger one is more than a database takes)."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of 0 to MAX_ID (an offset: a larger one is more than a database takes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0 (got {value})")
    if value > MAX_ID:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_ID} (got {text.strip()[:40]})")
    return value
