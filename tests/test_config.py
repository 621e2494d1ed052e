"""One source of configuration: every setting's flag, help, default and bounds come from its `Settings` field.

The properties hold for every field, so a new setting is covered without a new test:
it has a description; unless declared environment-only, some command offers its flag;
on each command that offers it, `--flag value` sets it (over the environment) and the
help names its variable and default.
"""

from __future__ import annotations

import argparse
import errno
import os

import pytest

from consumer import cli, settings_flags
from consumer.config import ConfigurationError, Settings
from consumer.settings_docs import leaf_commands, offered_by
from consumer.settings_flags import FIELDS, FLAGS, add_setting_flag, default_text, flag_of, setting_help, variable_of

PARSER = cli.build_parser()
OFFERED = offered_by(PARSER)
SETTABLE = [name for name in FIELDS if flag_of(name) is not None]

# Two valid values, other than the default, of each setting whose type says too little to make them up.
TEXT_SAMPLES = {
    "database_url": ("sqlite:///elsewhere.db", "sqlite:///other.db"),
    "log_level": ("DEBUG", "WARNING"),
    "log_levels": ("botocore=INFO", "urllib3=DEBUG"),
    "sqs_queue_url": ("https://sqs.eu-west-1.amazonaws.com/123456789012/one", "http://localhost:9324/000000000000/two"),
    "metrics_host": ("0.0.0.0", "::"),
    "api_host": ("0.0.0.0", "::"),
    "public_url": ("https://progress.example.edu", "https://other.example.edu/progress"),
    "forwarded_allow_ips": ("*", "10.0.0.1,10.0.0.2"),
    "allowed_hosts": ("progress.example.edu", "*.example.edu"),
    "receive_host": ("0.0.0.0", "::"),
    "jwks_url": ("https://keys.example.edu/jwks", "http://127.0.0.1:8001/jwks"),
    "jwks_file": ("/etc/canvas/jwks.json", "jwks.json"),
    "jwt_issuer": ("https://live-events.canvas.instructure.com", "https://issuer.example.edu"),
    "spool_dir": ("/var/lib/canvas-progress/spool", "other-spool"),
}


def sample(name: str, other_than: object = None) -> tuple[str, object]:
    """A valid value for the setting, as typed on a command line and as parsed, differing from its default
    (and from `other_than`)."""
    field = FIELDS[name]
    avoid = {field.default, other_than}
    if name in TEXT_SAMPLES:
        for text in TEXT_SAMPLES[name]:
            parsed = getattr(Settings(**{name: text}), name)
            if parsed not in avoid:
                return text, parsed
    if settings_flags.choices_of(name):
        value = next(choice for choice in settings_flags.choices_of(name) if choice not in avoid)
        return value, value
    if field.annotation is bool:
        return str(not field.default).lower(), not field.default
    kind = field.annotation
    assert kind in (int, float), f"add a sample value for the setting {name!r} to TEXT_SAMPLES"
    for candidate in (field.default + 1, field.default - 1, field.default + 2, field.default - 2):
        candidate = kind(candidate)
        if candidate not in avoid and _valid(name, candidate):
            return str(candidate), candidate
    raise AssertionError(f"no valid sample for {name!r}")


def _valid(name: str, value: object) -> bool:
    try:
        Settings(**{name: value})
    except ValueError:
        return False
    return True


def argv_for(command: str) -> list[str]:
    """The shortest command line the parser accepts for `command` (its required arguments with dummy values)."""
    parser = PARSER
    for word in command.split():
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    argv = command.split()
    for action in parser._actions:
        if not action.option_strings:
            argv += [] if action.nargs == "*" else ["1"]
        elif action.required:
            argv += [action.option_strings[0], "1"]
    return argv


def help_of(command: str) -> str:
    parser = PARSER
    for word in command.split():
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    # Wide enough that argparse never wraps a line (it breaks long values at hyphens: a URL's `execute-api`).
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100000"
    try:
        return " ".join(parser.format_help().split())
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


@pytest.fixture(autouse=True)
def no_settings_around(tmp_path, monkeypatch):
    """No setting from the machine running the tests: no variable, no .env."""
    monkeypatch.chdir(tmp_path)
    for name in FIELDS:
        monkeypatch.delenv(variable_of(name), raising=False)


@pytest.mark.parametrize("name", list(FIELDS))
def test_every_setting_has_a_description(name):
    assert FIELDS[name].description and FIELDS[name].description.strip()


@pytest.mark.parametrize("name", SETTABLE)
def test_every_settable_setting_has_a_flag_on_some_command(name):
    assert OFFERED[name], f"no command offers {flag_of(name)} ({name})"


def test_only_declared_settings_are_environment_only():
    assert [name for name in FIELDS if flag_of(name) is None] == ["log_levels"]
    with pytest.raises(ValueError, match="log_levels.*no flag"):
        add_setting_flag(argparse.ArgumentParser(), "log_levels")
    with pytest.raises(ValueError, match="no setting 'nope'"):
        add_setting_flag(argparse.ArgumentParser(), "nope")


CASES = [(name, command) for name in SETTABLE for command in OFFERED[name]]


@pytest.mark.parametrize(("name", "command"), CASES, ids=[f"{command}:{name}" for name, command in CASES])
def test_the_flag_sets_the_setting_over_the_environment(name, command, monkeypatch):
    environment_text, environment_value = sample(name)
    monkeypatch.setenv(variable_of(name), environment_text)
    assert getattr(cli.settings_from(PARSER.parse_args(argv_for(command))), name) == environment_value

    extra = FIELDS[name].json_schema_extra or {}
    if "flag_value" in extra:  # a flag that takes no value: it sets its one value
        flag_argv, flag_value = [FLAGS[name]], extra["flag_value"]
        monkeypatch.setenv(variable_of(name), str(not flag_value).lower())
    else:
        flag_text, flag_value = sample(name, other_than=environment_value)
        flag_argv = [FLAGS[name], flag_text]
    args = PARSER.parse_args(argv_for(command) + flag_argv)
    assert getattr(args, name) is not None  # dest is the field's name
    assert getattr(cli.settings_from(args), name) == flag_value


@pytest.mark.parametrize(("name", "command"), CASES, ids=[f"{command}:{name}" for name, command in CASES])
def test_the_help_names_the_variable_and_the_default(name, command):
    text = help_of(command)
    assert FLAGS[name] in text
    assert f"env {variable_of(name)}" in text
    assert f"default {default_text(name)})" in text


def test_every_setting_flag_is_made_from_its_field():
    """No command writes a setting's flag by hand: its option string, dest and help are the field's."""
    for name, commands in OFFERED.items():
        for command in commands:
            parser = PARSER
            for word in command.split():
                parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
            (action,) = [a for a in parser._actions if a.dest == name]
            assert action.option_strings == [FLAGS[name]], (command, name)
            assert action.help == setting_help(name).replace("%", "%%"), (command, name)
            assert action.default is None  # unset: the environment and .env decide


def test_the_benchmarks_take_the_same_flags_for_the_settings():
    from benchmarks.cli import build_parser

    found = set()
    for _, parser in leaf_commands(build_parser()):
        for action in parser._actions:
            if action.dest in FIELDS:
                assert action.option_strings == [FLAGS[action.dest]], action.dest
                found.add(action.dest)
    assert {"database_url", "batch_size", "sqs_queue_url", "receivers"} <= found


def test_help_is_the_description_the_variable_the_bounds_and_the_default():
    assert setting_help("batch_size") == (
        f"{FIELDS['batch_size'].description} (env BATCH_SIZE; 1 to 50000; default 5000)"
    )
    assert setting_help("flush_interval").endswith("(env FLUSH_INTERVAL; above 0, at most 60; default 0.5)")
    assert setting_help("shutdown_grace").endswith("(env SHUTDOWN_GRACE; above 0; default 30)")
    assert setting_help("public_url").endswith("(env PUBLIC_URL; default from the request)")
    assert setting_help("sqs_queue_url").endswith("(env SQS_QUEUE_URL; default none)")
    assert setting_help("store_user_names").endswith("(env STORE_USER_NAMES=false; default true)")
    assert setting_help("receivers", "receivers of the bench") == "receivers of the bench (env RECEIVERS; 1 to 64; default 4)"


def test_flag_details_come_from_the_field():
    assert (FLAGS["sqs_queue_url"], FLAGS["api_host"], FLAGS["api_port"]) == ("--queue-url", "--host", "--port")
    assert FLAGS["store_user_names"] == "--no-user-names"
    args = PARSER.parse_args(["run", "--no-user-names", "--log-format", "json"])
    assert (args.store_user_names, args.log_format) == (False, "json")
    with pytest.raises(SystemExit):
        PARSER.parse_args(["summary", "--log-format", "xml"])  # choices from the Literal


def test_a_bad_flag_value_is_named_by_its_flag_and_variable():
    with pytest.raises(ConfigurationError) as raised:
        cli.settings_from(PARSER.parse_args(["serve", "--port", "0"]))
    assert str(raised.value).startswith("invalid --port (env API_PORT) 0: ")


def test_a_bad_variable_is_named_with_its_flag(monkeypatch):
    monkeypatch.setenv("RECEIVERS", "99")
    with pytest.raises(ConfigurationError) as raised:
        cli.settings_from(PARSER.parse_args(["migrate"]))
    assert str(raised.value).startswith("invalid RECEIVERS (--receivers) '99': ")
    monkeypatch.delenv("RECEIVERS")
    monkeypatch.setenv("LOG_LEVELS", "x")
    with pytest.raises(ConfigurationError) as raised:
        cli.settings_from(PARSER.parse_args(["migrate"]))
    assert str(raised.value).startswith("invalid LOG_LEVELS 'x': ")  # no flag to name


@pytest.mark.parametrize(("argv", "expected"), [
    (["serve"], "cannot listen on port 8000 (API_PORT / --port): Address already in use"),
    (["run", "--metrics-port", "9200"], "cannot listen on port 9200 (METRICS_PORT / --metrics-port): Address already in use"),
])
def test_a_busy_port_is_named_by_its_variable_and_flag(argv, expected):
    args = PARSER.parse_args(argv)
    error = OSError(errno.EADDRINUSE, "Address already in use")
    assert cli._os_error(error, args, cli.settings_from(args)) == expected
