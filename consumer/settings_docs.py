"""The README's Configuration table, generated from the `Settings` fields and the commands that offer their flags.

`python -m consumer.settings_docs` rewrites the table in README.md (in the working
directory, or the file named) between its two marker lines; `--check` only says
whether it is up to date (exit status 1 when it is not). tests/test_docs.py checks it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from consumer.settings_flags import FIELDS, FLAGS, bounds_text, choices_of, default_text, variable_of

BEGIN = "<!-- settings table: generated from consumer/config.py by `python -m consumer.settings_docs`; do not edit -->"
END = "<!-- end of the settings table -->"


def offered_by(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """For each setting, the commands (`run`, `rejected purge`) whose flags include it, in the parser's order."""
    offered: dict[str, list[str]] = {name: [] for name in FIELDS}
    for command, subparser in leaf_commands(parser):
        for action in subparser._actions:
            if action.dest in offered and action.option_strings:
                offered[action.dest].append(" ".join(command))
    return offered


def leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Each command that takes no subcommand (`run`, `rejected purge`), as (its words, its parser)."""
    subcommands = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not subcommands:
        yield path, parser
    for action in subcommands:
        for name, subparser in action.choices.items():
            yield from leaf_commands(subparser, (*path, name))


def settings_table(offered: Mapping[str, Sequence[str]]) -> str:
    """The Markdown table: one row per setting, in the fields' order (`offered`: see `offered_by`)."""
    everywhere = set(offered["database_url"])  # the commands that take the common options
    lines = ["| variable | flag | default | values | meaning |", "|---|---|---|---|---|"]
    for name, field in FIELDS.items():
        cells = [f"`{variable_of(name)}`", _flag_cell(name, offered[name], everywhere), _default_cell(name),
                 _values_cell(name), _meaning(name, field.description or "", field.json_schema_extra)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def _flag_cell(name: str, commands: Sequence[str], everywhere: set[str]) -> str:
    flag = FLAGS.get(name)
    if flag is None or not commands:
        return "none"
    if set(commands) == everywhere:
        return f"`{flag}`"
    return f"`{flag}` ({', '.join(f'`{command}`' for command in commands)})"


def _default_cell(name: str) -> str:
    default = FIELDS[name].default
    return default_text(name) if default is None or default == "" else f"`{default_text(name)}`"


def _values_cell(name: str) -> str:
    choices = choices_of(name)
    if choices:
        return ", ".join(f"`{choice}`" for choice in choices)
    if FIELDS[name].annotation is bool:
        return "`true`, `false`"
    return bounds_text(name) or ""


def _meaning(name: str, description: str, extra: object) -> str:
    details = extra.get("details") if isinstance(extra, dict) else None
    if not description:
        raise ValueError(f"the setting {name!r} has no description")
    return f"{description}. {details}" if details else description


def with_table(readme: str, table: str) -> str:
    """The README with the text between the marker lines replaced by `table`."""
    before, found, rest = readme.partition(BEGIN + "\n")
    _, found_end, after = rest.partition(END)
    if not found or not found_end:
        raise ValueError(f"the README has no settings table between {BEGIN!r} and {END!r}")
    return f"{before}{BEGIN}\n{table}\n{END}{after}"


def main(argv: Sequence[str] | None = None) -> int:
    from consumer.cli import build_parser

    options = argparse.ArgumentParser(prog="python -m consumer.settings_docs", description=__doc__.splitlines()[0])
    options.add_argument("readme", nargs="?", default="README.md", type=Path, help="the README (default README.md)")
    options.add_argument("--check", action="store_true", help="change nothing; exit 1 when the table is out of date")
    args = options.parse_args(argv)
    try:
        text = args.readme.read_text(encoding="utf-8")
        updated = with_table(text, settings_table(offered_by(build_parser())))
    except (OSError, ValueError) as error:
        print(f"error: {args.readme}: {error.strerror if isinstance(error, OSError) else error}", file=sys.stderr)
        return 2
    if args.check:
        if updated != text:
            print(f"{args.readme}: the settings table is out of date: run python -m consumer.settings_docs", file=sys.stderr)
            return 1
        return 0
    if updated != text:
        args.readme.write_text(updated, encoding="utf-8")
        print(f"{args.readme}: settings table updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
