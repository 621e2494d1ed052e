"""A database password never reaches a message, whatever form the URL gives it in.

libpq and SQLAlchemy take it from the userinfo (`user:PASSWORD@host`, where
a person may leave `@`, `:`, `/`, `?`, `#` unescaped) or from a query
parameter (`?password=`, `?sslpassword=`); URLs that do not parse still
reach error messages.
"""

from __future__ import annotations

import logging
import string
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from consumer.cli import main
from consumer.store.engine import display_url, hide_password
from tests.ports import free_port

PASSWORDS = st.text(string.ascii_letters + string.digits + string.punctuation + " ", min_size=8, max_size=30)
FORMS = {
    "userinfo": "postgresql://tracker:{raw}@127.0.0.1:{port}/grades",
    "userinfo escaped": "postgresql://tracker:{escaped}@127.0.0.1:{port}/grades",
    "query": "postgresql://tracker@127.0.0.1:{port}/grades?sslmode=disable&password={escaped}",
    "query unescaped": "postgresql+psycopg://tracker@127.0.0.1:{port}/grades?password={raw}",
    "sslpassword": "postgresql://tracker@127.0.0.1:{port}/grades?sslpassword={raw}&connect_timeout=3",
    "both": "postgres://tracker:{raw}@127.0.0.1:{port}/grades?application_name=a@b&password={escaped}",
}


# A password that is part of the fixed text around it (e.g. "password", as in "?password=") cannot be told apart.
_FIXED_TEXT = " ".join(form.format(raw="", escaped="", port=5) for form in FORMS.values()) + " *** "
PASSWORDS = PASSWORDS.filter(lambda password: password not in _FIXED_TEXT and quote(password, safe="") not in _FIXED_TEXT)


def url_with(form: str, password: str, port: int = 5) -> str:
    return FORMS[form].format(raw=password, escaped=quote(password, safe=""), port=port)


def assert_hidden(password: str, text: str) -> None:
    assert password not in text and quote(password, safe="") not in text, text


@given(password=PASSWORDS, form=st.sampled_from(sorted(FORMS)), before=st.text(max_size=20), after=st.text(max_size=20))
@settings(max_examples=500, deadline=None)
def test_display_url_and_hide_password_never_show_it(password, form, before, after):
    assume(password not in before + after)
    url = url_with(form, password)
    assert_hidden(password, display_url(url))
    rendered = (quote(password, safe=""), quote(password, safe=" +"), quote_plus(password))  # as SQLAlchemy renders it
    for message in (f"{before}{password}{after}", f"{before}{url}{after}", *(f"{before}{text}{after}" for text in rendered)):
        hidden = hide_password(message, url)
        assert_hidden(password, hidden)
        assert all(text not in hidden for text in rendered)


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:p@ss@db.example/grades", "postgresql://u:***@db.example/grades"),
    ("postgresql://u@db.example/grades?password=secret&sslmode=require", "postgresql://u@db.example/grades?password=***"),
    ("postgresql://u:pw@db.example/grades?application_name=a@b", "postgresql://u:***@db.example/grades?application_name=a@b"),
    ("postgresql://u@db.example/grades?application_name=a@b", "postgresql://u@db.example/grades?application_name=a@b"),
    ("sqlite:///./course_progress.db", "sqlite:///./course_progress.db"),
])
def test_display_url_keeps_what_is_not_a_password(url, shown):
    assert display_url(url) == shown


@pytest.fixture
def run(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def command(*argv: str) -> tuple[int, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out + err

    yield command
    root.handlers[:], root.level = saved[0], saved[1]


@given(password=PASSWORDS, form=st.sampled_from(sorted(FORMS)), command=st.sampled_from(["status", "migrate", "summary"]))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_failing_command_never_prints_the_password(run, password, form, command):
    """Nothing listens on the port: the command fails, and says so without the password."""
    code, output = run(command, "--database-url", url_with(form, password, port=free_port()), "--log-format", "json")
    assert code in (1, 2) and output
    assert_hidden(password, output)
