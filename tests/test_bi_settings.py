"""`canvas-progress bi-settings`: the stalled_students threshold, shown and changed, as the view reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select, update

from consumer.core import Input
from consumer.pipeline import Pipeline
from consumer.store.tables import bi_settings, stalled_students
from tests.factory import encode, progress_event

pytestmark = pytest.mark.integration


def _run(engine: Engine, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    url = engine.url.render_as_string(hide_password=False)
    return subprocess.run([sys.executable, "-m", "consumer", "bi-settings", *args, "--database-url", url],
                          capture_output=True, text=True, env=clean, timeout=120)


def _stalled(engine: Engine) -> set[int]:
    with engine.connect() as connection:
        return set(connection.execute(select(stalled_students.c.user_id)).scalars())


def test_the_threshold_is_shown_changed_and_read_by_the_view(engine):
    with engine.begin() as connection:  # the test databases are shared: start from the migration's default
        connection.execute(update(bi_settings).values(stalled_after_days=14))
    now = datetime.now(timezone.utc)
    events = [
        progress_event((now - timedelta(days=days)).isoformat(), user_id=str(user), done=1, total=4)
        for user, days in ((501, 30), (502, 10), (503, 2))
    ]
    Pipeline(engine).process([Input(f"t:{n}", encode(event)) for n, event in enumerate(events)])
    try:
        shown = _run(engine)
        assert (shown.returncode, shown.stdout) == (0, "stalled_after_days = 14\n")
        assert {501} <= _stalled(engine) and not {502, 503} & _stalled(engine)

        changed = _run(engine, "--stalled-after-days", "7", "--json")
        assert changed.returncode == 0 and json.loads(changed.stdout) == {"stalled_after_days": 7}
        assert {501, 502} <= _stalled(engine) and 503 not in _stalled(engine)
    finally:
        with engine.begin() as connection:
            connection.execute(update(bi_settings).values(stalled_after_days=14))


@pytest.mark.parametrize("value", ["-1", "3651", "two", "1.5", "", "١٤", "1_0", "9" * 5000])
def test_a_bad_number_of_days_is_refused_with_one_line_naming_it(sqlite_engine, value):
    result = _run(sqlite_engine, "--stalled-after-days", value)
    assert result.returncode == 2
    message = result.stderr.strip()
    assert "--stalled-after-days" in message and "\n" not in message and len(message) < 300
    with sqlite_engine.connect() as connection:
        assert connection.execute(select(bi_settings.c.stalled_after_days)).scalar_one() == 14
