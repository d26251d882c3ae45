"""README.md documents every setting in its configuration table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.config import SETTINGS, Setting

README = Path(__file__).resolve().parents[2] / "README.md"


def configuration_table() -> dict[str, tuple[str, str]]:
    """Variable -> (meaning, default) from the table under ``## Configuration``."""
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"^\|\s*`([A-Z0-9_]+)`\s*\|(.*)\|(.*)\|\s*$", line)
        if match:
            rows[match.group(1)] = (match.group(2).strip(), match.group(3).strip())
    return rows


def test_the_table_is_found() -> None:
    assert len(configuration_table()) >= 10


def _documented(setting: Setting) -> object:
    return pytest.param(setting, id=setting.env)


def readme_default(value: object) -> str:
    """How the table writes a default: the variable's text in backquotes, or a dash."""
    if value in ("", ()):
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{','.join(value)}`"
    return f"`{value}`"


@pytest.mark.parametrize("setting", [_documented(s) for s in SETTINGS])
def test_every_setting_is_in_the_readme_table(setting: Setting) -> None:
    table = configuration_table()
    assert setting.env in table, f"{setting.env} is missing from README.md's table"
    meaning, default = table[setting.env]
    assert meaning == setting.help
    assert default == readme_default(setting.default)


def test_the_table_names_no_unknown_variable() -> None:
    known = {setting.env for setting in SETTINGS}
    assert set(configuration_table()) <= known
