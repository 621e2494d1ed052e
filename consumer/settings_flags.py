"""The command-line flags of the settings, generated from the `Settings` fields (consumer/config.py).

A command asks for the settings it uses, `add_setting_flags(parser, "batch_size", ...)`;
each flag gets its option string, type, choices and help from the field: `dest` is the
field's name (what `cli.settings_from` reads back), the help is the field's description
followed by "(env NAME; bounds; default X)". What a field says beyond pydantic's own
attributes is in its `json_schema_extra` (see the `Settings` docstring).
"""

from __future__ import annotations

import argparse
import typing
from typing import Any

import annotated_types

from consumer.config import Settings

FIELDS = Settings.model_fields


def _extra(name: str) -> dict[str, Any]:
    extra = FIELDS[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


def flag_of(name: str) -> str | None:
    """The setting's option string (`--batch-size`; `--queue-url` for sqs_queue_url), None when it has no flag."""
    extra = _extra(name)
    return extra["flag"] if "flag" in extra else "--" + name.replace("_", "-")


# Each setting's flag, by field name; a setting with no flag (environment only) is not in it.
FLAGS: dict[str, str] = {name: flag for name in FIELDS if (flag := flag_of(name)) is not None}


def variable_of(name: str) -> str:
    """The setting's environment variable (its name in capitals; `.env` uses it too)."""
    return name.upper()


def show_value(value: object) -> str:
    """A value as a user writes it: `true`, `30` (not 30.0), `5000`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def default_text(name: str) -> str:
    """The setting's default as a user writes it; `none` (or the field's `default_text`) when there is none."""
    default = FIELDS[name].default
    if default is None or default == "":
        return str(_extra(name).get("default_text", "none"))
    return show_value(default)


def bounds_text(name: str) -> str | None:
    """The field's numeric bounds in words (`1 to 50000`, `above 0, at most 60`), or None."""
    low = high = None
    for rule in FIELDS[name].metadata:
        if isinstance(rule, annotated_types.Ge):
            low = show_value(rule.ge)
        elif isinstance(rule, annotated_types.Gt):
            low = f"above {show_value(rule.gt)}"
        elif isinstance(rule, annotated_types.Le):
            high = show_value(rule.le)
    if low is not None and high is not None:
        return f"{low} to {high}" if not low.startswith("above") else f"{low}, at most {high}"
    if low is not None:
        return low if low.startswith("above") else f"at least {low}"
    return f"at most {high}" if high is not None else None


def choices_of(name: str) -> tuple[str, ...] | None:
    """The values a `Literal[...]` field accepts, or None."""
    annotation = FIELDS[name].annotation
    return typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else None


def setting_help(name: str, description: str | None = None) -> str:
    """The help of the setting's flag: what it does (default: the field's description), then its variable,
    bounds and default, e.g. "events written per database transaction (env BATCH_SIZE; 1 to 50000; default 5000)"."""
    extra = _extra(name)
    if "flag_value" in extra:  # a flag that sets one value, as --no-user-names does
        text = description or extra.get("flag_help") or FIELDS[name].description
        return f"{text} (env {variable_of(name)}={show_value(extra['flag_value'])}; default {default_text(name)})"
    parts = [f"env {variable_of(name)}", bounds_text(name), f"default {default_text(name)}"]
    return f"{description or FIELDS[name].description} ({'; '.join(part for part in parts if part)})"


def add_setting_flag(parser: argparse.ArgumentParser, name: str, help: str | None = None) -> argparse.Action:
    """Add the flag of the setting `name` to `parser` (`help` replaces the generated help; see `setting_help`)."""
    if name not in FIELDS:
        raise ValueError(f"no setting {name!r}")
    flag = flag_of(name)
    if flag is None:
        raise ValueError(f"the setting {name!r} has no flag (environment only)")
    text = (help if help is not None else setting_help(name)).replace("%", "%%")  # argparse formats help with %
    extra = _extra(name)
    if "flag_value" in extra:
        return parser.add_argument(flag, dest=name, action="store_const", const=extra["flag_value"], help=text)
    options: dict[str, Any] = {"dest": name, "help": text}
    choices = choices_of(name)
    if choices is not None:
        options["choices"] = list(choices)
    else:
        kind = _value_type(FIELDS[name].annotation)
        if kind is not str:
            options["type"] = kind  # a string stays as given: the field's validator judges it
    return parser.add_argument(flag, **options)


def add_setting_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add the flags of these settings to `parser`, in this order."""
    for name in names:
        add_setting_flag(parser, name)


def _value_type(annotation: Any) -> type:
    """int, float or str, from a field's annotation (`str | None` is str)."""
    kinds = [kind for kind in typing.get_args(annotation) or (annotation,) if kind is not type(None)]
    if len(kinds) == 1 and kinds[0] in (int, float, str):
        return kinds[0]
    raise TypeError(f"no flag type for a setting of type {annotation!r}: declare flag_value or flag None")
