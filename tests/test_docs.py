"""The README's settings table and docs/security.md agree with the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

from consumer.cli import FLAGS
from consumer.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _table_rows(text: str) -> dict[str, list[str]]:
    """`| `NAME` | ... |` rows of every Markdown table, by the variable in their first cell."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([A-Z][A-Z0-9_]+)` \|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_every_setting_is_in_the_readme_with_its_flag_and_default():
    rows = _table_rows((ROOT / "README.md").read_text())
    for name, field in Settings.model_fields.items():
        variable = name.upper()
        assert variable in rows, f"README's Configuration table lacks {variable}"
        flag, default = rows[variable][0], rows[variable][1]
        if name in FLAGS:
            assert f"`{FLAGS[name]}`" in flag, (variable, flag)
        assert _shows_default(default, field.default), (variable, default, field.default)


def test_the_security_page_names_only_real_settings_with_their_defaults():
    text = (ROOT / "docs" / "security.md").read_text()
    rows = _table_rows(text)
    assert {"PUBLIC_URL", "ALLOWED_HOSTS", "METRICS_HOST", "REPORT_JOBS_PER_ACCOUNT", "REPORT_RETENTION_DAYS",
            "REJECTED_RETENTION_DAYS", "STORE_USER_NAMES"} <= set(rows)
    for variable, cells in rows.items():
        field = Settings.model_fields.get(variable.lower())
        assert field is not None, f"docs/security.md names {variable}, which is no setting"
        assert _shows_default(cells[0], field.default), (variable, cells)
    for path in re.findall(r"`(consumer/[\w/]+\.py)`", text):
        assert (ROOT / path).is_file(), f"docs/security.md points at {path}, which does not exist"
    for command in re.findall(r"`canvas-progress ([a-z-]+)", text):
        assert command in COMMANDS, f"docs/security.md names `canvas-progress {command}`, which is no command"


COMMANDS = set(__import__("consumer.cli", fromlist=["build_parser"]).build_parser()._subparsers._group_actions[0].choices)


def _shows_default(cell: str, default: object) -> bool:
    """Whether a table cell shows the setting's default (any default for settings without one)."""
    if default is None or default == "":
        return True
    if isinstance(default, bool):
        return f"`{str(default).lower()}`" in cell
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`" in cell
