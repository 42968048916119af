from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from chatd.config import (
    Config,
    ConfigError,
    LimitSettings,
    ServerSettings,
    changed_settings,
    default_of,
    from_dict,
    load,
    sections,
    with_overrides,
)

ROOT = Path(__file__).resolve().parent.parent


def _every_setting() -> list[tuple[str, dataclasses.Field[object]]]:
    return [(table, f) for table, cls in sections().items() for f in dataclasses.fields(cls)]


def test_no_file_means_built_in_defaults() -> None:
    config = load(None)
    assert config == Config()
    assert config.server == ServerSettings(host="127.0.0.1", port=7777)


def test_the_repo_chatd_toml_lists_every_setting_with_its_default() -> None:
    data = tomllib.loads((ROOT / "chatd.toml").read_text())
    listed = {(table, key) for table, values in data.items() for key in values}
    assert listed == {(table, f.name) for table, f in _every_setting()}
    assert load(ROOT / "chatd.toml") == Config()  # every value is the default


def test_the_repo_chatd_toml_has_a_comment_above_every_key() -> None:
    lines = (ROOT / "chatd.toml").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\w+ = ", line):
            assert lines[i - 1].startswith("# "), f"no comment above {line!r}"


def test_the_readme_documents_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    for table, f in _every_setting():
        row = re.search(rf"^\| `\[{table}\] {f.name}` \| `([^`]*)` \|", readme, re.MULTILINE)
        assert row, f"README has no settings row for [{table}] {f.name}"
        assert tomllib.loads(f"v = {row.group(1)}")["v"] == default_of(f)


def test_every_setting_has_a_doc() -> None:
    for table, f in _every_setting():
        assert f.metadata.get("doc"), f"[{table}] {f.name} has no doc"


def test_a_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[limits]\nsendq_bytes = 65536\n")
    config = load(path)
    assert config.limits == LimitSettings(sendq_bytes=65536)
    assert config.server == ServerSettings()
    assert config.source == path


def test_overrides_replace_keys_and_ignore_none() -> None:
    config = with_overrides(Config(), "server", host="::1", port=None)
    assert config.server == ServerSettings(host="::1", port=7777)
    with pytest.raises(ConfigError, match=r"\[server\] port must be an integer"):
        with_overrides(Config(), "server", port="80")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"server": {"port": True}}, "config: [server] port must be an integer, got True"),
        ({"server": {"port": 1.5}}, "config: [server] port must be an integer, got 1.5"),
        ({"server": {"host": 7}}, "config: [server] host must be a string, got 7"),
        ({"limits": {"max_line_bytes": 10}}, "[limits] max_line_bytes must be at least 64"),
        ({"server": 5}, "config: server must be a table ([server])"),
    ],
)
def test_wrong_types_and_ranges_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict(data)
    assert message in str(caught.value)


def test_changed_settings_names_each_setting_and_plugin_table() -> None:
    old = from_dict({"roll": {"sides": 6}})
    new = from_dict(
        {"server": {"port": 7000}, "limits": {"sendq_bytes": 65536}, "roll": {"sides": 20}}
    )
    assert changed_settings(old, new) == ["[server] port", "[limits] sendq_bytes", "[roll]"]
    assert changed_settings(new, new) == []
