"""argparse types for ids on the command line, read by the one id parser (`events/ids.py`).

`rejected show ID`, `rejected retry ID...` and `token revoke ID` name rows
of ours (`id_argument`); `token create --account ID` names a Canvas account,
by its local or global id (`account_argument`). A refused value is one line
quoting it: "argument id: "12a" is not an id: expected 1 to 19 digits ...".
"""

from __future__ import annotations

import argparse

from consumer.events.ids import parse_id, parse_local_id


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


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0 (an offset)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0 (got {value})")
    return value
