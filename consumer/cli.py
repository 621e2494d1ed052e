"""The `canvas-progress` / `python -m consumer` command line.

Every failure ends as one line on stderr starting with "error: " and one of
the exit codes the README documents (Exit status): 1 when something the
command uses fails or refuses (the database, its privileges, its schema
revision, the queue), 2 when the command line or the configuration cannot
work (a bad flag or setting, a URL that is not a database, a missing path,
an AWS profile that does not exist). The reader of standard output going
away (`| head`) is not an error: nothing is printed, exit status 141, as for
other Unix tools.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from consumer import __version__
from consumer.commands import api, database, ops, privacy, receive, replay, worker
from consumer.commands.common import CommandError
from consumer.config import Settings
from consumer.core import ConfigurationError, DatabaseUnavailable
from consumer.logs import configure_logging
from consumer.settings_flags import FLAGS, add_setting_flag, add_setting_flags, variable_of
from consumer.store.engine import display_url, hide_password, url_secrets
from consumer.store.migrate import SchemaError
from consumer.text import one_line

log = logging.getLogger("consumer")

USAGE, FAILURE, BROKEN_PIPE = 2, 1, 141


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"error: {message} (`{self.prog} --help` lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="canvas-progress",
        description=(
            "Canvas LMS Live Events consumer: turns course, section and course-progress events "
            "into current tables (courses, course_sections, course_progress, users)."
        ),
        epilog="Settings come from the environment (DATABASE_URL, BATCH_SIZE, LOG_LEVEL, ...) and a .env file in the "
        "working directory (the environment wins over it); flags override both. Run `canvas-progress COMMAND --help` "
        "for a command's options and their variables. Exit status: 0 done, 1 the database or the queue failed or "
        "refused, 2 a bad flag, setting or path; errors are one line on stderr.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = common_options()
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for family in (database, replay, worker, receive, ops, privacy, api):
        family.register(commands, common)
    return parser


def common_options(database_url_help: str | None = None) -> argparse.ArgumentParser:
    """The options every command takes (a parent parser): --database-url, --log-level, --log-format.

    `database_url_help` replaces the help of --database-url (the benchmarks take it from the flag only).
    """
    common = Parser(add_help=False)
    add_setting_flag(common, "database_url", help=database_url_help)
    add_setting_flags(common, "log_level", "log_format")
    return common


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings: a `.env` file, the environment over it, flags over both. Raises ConfigurationError naming a bad one."""
    overrides = {name: getattr(args, name) for name in Settings.model_fields if getattr(args, name, None) is not None}
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigurationError(describe_invalid_settings(error, set(overrides))) from None
    except UnicodeDecodeError as error:
        raise ConfigurationError(f"cannot read .env in {os.getcwd()}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ConfigurationError(f"cannot read .env in {os.getcwd()}: {error.strerror}") from None


def describe_invalid_settings(error: ValidationError, from_flags: set[str]) -> str:
    """One line for pydantic's report: which setting (variable and flag), the value given, what is wrong."""
    parts = []
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem["loc"] else ""
        flag, variable = FLAGS.get(name), variable_of(name)
        where = f"{flag} (env {variable})" if name in from_flags else f"{variable} ({flag})" if flag else variable
        value: Any = problem.get("input")
        if name == "database_url" and isinstance(value, str):
            value = display_url(value)
        reason = str(problem["msg"])
        for prefix, replacement in (("Value error, ", ""), ("Input should", "should")):
            if reason.startswith(prefix):
                reason = replacement + reason[len(prefix) :]
        parts.append(f"invalid {where} {value!r}: {reason}")
    return "; ".join(parts) or _one_line(str(error))


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Run a command of `parser` (default: canvas-progress's; the benchmarks pass theirs) with these errors and exit statuses."""
    args = (parser or build_parser()).parse_args(argv)
    database_url = os.environ.get("DATABASE_URL", "") if getattr(args, "database_url", None) is None else args.database_url
    try:
        settings = settings_from(args)
    except ConfigurationError as error:
        return _fail(str(error), USAGE, database_url)
    database_url = settings.database_url
    configure_logging(settings.log_level, settings.log_format, settings.log_levels, url_secrets(settings.database_url))
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        code = handler(args, settings)
        sys.stdout.flush()  # a reader that went away is found here, not at interpreter exit
        return code
    except CommandError as error:
        return _fail(str(error), error.exit_code, database_url)
    except ConfigurationError as error:
        return _fail(str(error), USAGE, database_url)
    except (DatabaseUnavailable, DBAPIError, SchemaError) as error:
        detail = _one_line(str(getattr(error, "orig", None) or error))
        return _fail(f"cannot use the database at {display_url(database_url)}: {detail}", FAILURE, database_url)
    except BrokenPipeError:
        if _stdout_closed():
            _silence_stdout()
            return BROKEN_PIPE
        return _fail("broken pipe", FAILURE, database_url)
    except OSError as error:
        return _fail(_os_error(error, args, settings), FAILURE, database_url)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: still one line; the traceback is logged at DEBUG
        if _raised_by_a_driver(error):  # a database error that reached us unwrapped (psycopg's COPY, sqlite3)
            return _fail(f"cannot use the database at {display_url(database_url)}: {_one_line(str(error))}", FAILURE, database_url)
        log.debug("unexpected error", exc_info=True)
        message = f"unexpected {type(error).__name__}: {_one_line(str(error))} (run with --log-level DEBUG for the traceback)"
        return _fail(message, FAILURE, database_url)


def _fail(message: str, code: int, database_url: str) -> int:
    try:
        print(f"error: {hide_password(_one_line(message), database_url)}", file=sys.stderr)
    except (BrokenPipeError, ValueError):
        pass
    return code


def _one_line(text: str) -> str:
    return one_line(text, limit=None) or "(no message)"


_PORT_SETTINGS = {"run": "metrics_port", "serve": "api_port", "receive": "receive_port"}


def _os_error(error: OSError, args: argparse.Namespace, settings: Settings) -> str:
    setting = _PORT_SETTINGS.get(args.command)
    if error.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) and setting and error.filename is None:
        port = getattr(settings, setting)
        return f"cannot listen on port {port} ({variable_of(setting)} / {FLAGS[setting]}): {error.strerror}"
    if error.filename is not None:
        return f"{error.strerror or error}: {error.filename}"
    return error.strerror or str(error)


def _raised_by_a_driver(error: BaseException) -> bool:
    import sqlite3

    return isinstance(error, sqlite3.Error) or type(error).__module__.split(".")[0] == "psycopg"


def _stdout_closed() -> bool:
    """Did the reader of standard output go away (as `| head` does)?"""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush does not complain about the pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
