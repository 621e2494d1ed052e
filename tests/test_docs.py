"""The README's settings table and docs/security.md agree with the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consumer import settings_docs
from consumer.cli import build_parser
from consumer.config import Settings
from consumer.settings_flags import FLAGS

ROOT = Path(__file__).resolve().parents[1]


def _table_rows(text: str) -> dict[str, list[str]]:
    """`| `NAME` | ... |` rows of every Markdown table, by the variable in their first cell."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([A-Z][A-Z0-9_]+)` \|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def _configuration_section() -> str:
    return (ROOT / "README.md").read_text().split("\n## Configuration\n", 1)[1].split("\n### ", 1)[0]


def test_the_readme_settings_table_is_generated_from_the_fields():
    readme = (ROOT / "README.md").read_text()
    table = settings_docs.settings_table(settings_docs.offered_by(build_parser()))
    assert settings_docs.with_table(readme, table) == readme, "run `python -m consumer.settings_docs`"


def test_every_setting_is_in_the_readme_with_its_flag_and_default():
    rows = _table_rows(_configuration_section())
    for name, field in Settings.model_fields.items():
        variable = name.upper()
        assert variable in rows, f"README's Configuration table lacks {variable}"
        flag, default = rows[variable][0], rows[variable][1]
        assert f"`{FLAGS[name]}`" in flag if name in FLAGS else flag == "none", (variable, flag)
        assert _shows_default(default, field.default), (variable, default, field.default)
        assert field.description in rows[variable][3], variable
    assert set(rows) == {name.upper() for name in Settings.model_fields}, "a README row names no setting"


def test_the_table_names_the_commands_that_offer_a_flag():
    rows = _table_rows(_configuration_section())
    assert rows["BATCH_SIZE"][0] == "`--batch-size` (`replay`, `run`, `receive`)"
    assert rows["DATABASE_URL"][0] == "`--database-url`"  # every command that uses the database
    assert rows["LOG_LEVELS"][0] == "none"
    assert rows["PUBLIC_URL"][1] == "from the request"
    assert rows["FLUSH_INTERVAL"][2] == "above 0, at most 60"


def test_the_generator_rewrites_a_stale_table_and_check_says_so(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{settings_docs.BEGIN}\n| old |\n{settings_docs.END}\n\nafter\n")
    assert settings_docs.main([str(readme), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert settings_docs.main([str(readme)]) == 0
    text = readme.read_text()
    assert "| old |" not in text and "| `BATCH_SIZE` |" in text and text.endswith(f"{settings_docs.END}\n\nafter\n")
    assert settings_docs.main([str(readme), "--check"]) == 0


@pytest.mark.parametrize("content", ["# no markers\n", f"{settings_docs.BEGIN}\nno end\n"])
def test_the_generator_refuses_a_readme_without_the_markers(tmp_path, capsys, content):
    readme = tmp_path / "README.md"
    readme.write_text(content)
    assert settings_docs.main([str(readme)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {readme}: the README has no settings table")
    assert readme.read_text() == content


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


COMMANDS = set(build_parser()._subparsers._group_actions[0].choices)


def _shows_default(cell: str, default: object) -> bool:
    """Whether a table cell shows the setting's default (any default for settings without one)."""
    if default is None or default == "":
        return True
    if isinstance(default, bool):
        return f"`{str(default).lower()}`" in cell
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`" in cell
