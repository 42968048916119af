from __future__ import annotations

import dataclasses
import math
import re
import time
import tomllib
from pathlib import Path
from typing import get_type_hints

import pytest

from chatd.config import (
    Config,
    ConfigError,
    LimitSettings,
    ServerSettings,
    allowed,
    changed_settings,
    default_of,
    from_dict,
    load,
    reapply_overrides,
    sections,
    with_overrides,
)

ROOT = Path(__file__).resolve().parent.parent


def _every_setting() -> list[tuple[str, dataclasses.Field[object]]]:
    return [(table, f) for table, cls in sections().items() for f in dataclasses.fields(cls)]


def _number_settings() -> list[tuple[str, dataclasses.Field[object], type]]:
    """(table, field, int or float) for every number setting."""
    found = []
    for table, cls in sections().items():
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] in (int, float):
                found.append((table, f, hints[f.name]))
    return found


def _ids(settings: list[tuple[str, dataclasses.Field[object], type]]) -> list[str]:
    return [f"{table}.{f.name}" for table, f, _ in settings]


NUMBERS = _number_settings()
FLOATS = [s for s in NUMBERS if s[2] is float]


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
    ("table", "values", "message"),
    [
        ("server", {"port": 65536}, "[server] port must be at most 65535, got 65536"),
        ("server", {"port": -1}, "[server] port must be at least 0, got -1"),
        (
            "limits",
            {"idle_timeout": math.inf},
            "[limits] idle_timeout must be a finite number, got inf",
        ),
    ],
)
def test_overrides_from_the_command_line_are_checked_as_the_file_is(
    table: str, values: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        with_overrides(Config(), table, **values)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"server": {"port": True}}, "config: [server] port must be an integer, got True"),
        ({"server": {"port": 1.5}}, "config: [server] port must be an integer, got 1.5"),
        ({"server": {"host": 7}}, "config: [server] host must be a string, got 7"),
        ({"limits": {"max_line_bytes": 10}}, "[limits] max_line_bytes must be at least 64"),
        ({"server": 5}, "config: server must be a table ([server])"),
        (
            {"irc": {"server_name": "localhost"}},
            "config: [irc] server_name: 'localhost' is not a server name: use a host name"
            " with a dot in it, like chat.example.org",
        ),
        ({"irc": {"server_name": "a b.c"}}, "[irc] server_name: 'a b.c' is not a server name"),
        ({"irc": {"network": "my net"}}, "[irc] network: 'my net' is not a network name"),
        ({"irc": {"service_nick": "no way"}}, '[irc] service_nick: "no way" is not a valid nick'),
        ({"irc": {"autojoin": ["lobby"]}}, '[irc] autojoin: "lobby" is not a room name'),
        ({"irc": {"ping_interval": 1}}, "[irc] ping_interval must be 0 or at least 5, got 1"),
    ],
)
def test_wrong_types_and_ranges_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict(data)
    assert message in str(caught.value)


def test_every_number_setting_has_a_least_and_a_most_value() -> None:
    assert len(NUMBERS) >= 10
    for table, f, _ in NUMBERS:
        low, high, off = (f.metadata.get(k) for k in ("min", "max", "off"))
        assert low is not None and high is not None, f"[{table}] {f.name} has no range"
        assert low <= high
        assert off is None or not low <= off <= high
        default = default_of(f)
        assert default == off or low <= default <= high, f"[{table}] {f.name}"


def test_the_repo_chatd_toml_states_every_number_settings_range() -> None:
    lines = (ROOT / "chatd.toml").read_text().splitlines()
    for table, f, _ in NUMBERS:
        start = lines.index(f"[{table}]")
        at = next(i for i in range(start, len(lines)) if lines[i].startswith(f"{f.name} = "))
        comment = []
        while lines[at - 1].startswith("# "):
            at -= 1
            comment.insert(0, lines[at].removeprefix("# "))
        assert f"({allowed(f)}" in " ".join(comment), f"[{table}] {f.name}: {comment}"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(("table", "f", "kind"), FLOATS, ids=_ids(FLOATS))
def test_nan_and_inf_are_refused_for_every_float_setting(
    table: str, f: dataclasses.Field[object], kind: type, value: float
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict({table: {f.name: value}})
    assert str(caught.value) == (
        f"config: [{table}] {f.name} must be a finite number, got {value!r}"
    )


def test_nan_in_a_file_is_one_line_naming_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "chatd.toml"
    for text in ("nan", "+nan", "-nan"):
        path.write_text(f"[limits]\nidle_timeout = {text}\n")
        with pytest.raises(ConfigError) as caught:
            load(path)
        assert str(caught.value) == (
            f"{path}: [limits] idle_timeout must be a finite number, got nan"
        )
    path.write_text("[limits]\nregister_timeout = inf\n")
    with pytest.raises(ConfigError, match=r"register_timeout must be a finite number, got inf$"):
        load(path)


@pytest.mark.parametrize(("table", "f", "kind"), NUMBERS, ids=_ids(NUMBERS))
def test_every_number_setting_takes_its_range_and_refuses_past_it(
    table: str, f: dataclasses.Field[object], kind: type
) -> None:
    low, high, off = (f.metadata[k] for k in ("min", "max", "off"))
    for good in (low, high) if off is None else (off, low, high):
        assert getattr(getattr(from_dict({table: {f.name: good}}), table), f.name) == good
    under = low - 1 if kind is int or off is None else low / 2
    if under == off:  # off just below the range (tls_port's -1): below that, then
        under -= 1
    over = high + 1
    least = f"at least {low}" if off is None else f"{off} or at least {low}"
    for bad, message in ((under, f"must be {least}"), (over, f"must be at most {high}")):
        with pytest.raises(ConfigError) as caught:
            from_dict({table: {f.name: bad}})
        assert str(caught.value) == f"config: [{table}] {f.name} {message}, got {bad!r}"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        # Past what a poll timeout in milliseconds holds: these killed the server.
        ("idle_timeout", 2147484, "must be at most 604800"),
        ("register_timeout", 2147484, "must be at most 3600"),
        # A timer due at once, again and again; a slowed client woken in aeons.
        ("idle_timeout", 0.001, "must be 0 or at least 1"),
        ("flood_rate", 1e-300, "must be 0 or at least 0.01"),
        ("flood_rate", 10**400, "must be at most 1000000"),
        ("sendq_bytes", 2**63, "must be at most 1073741824"),
        ("max_per_ip", 10**9, "must be at most 1000000"),
    ],
    ids=[
        "idle-2147484",
        "register-2147484",
        "idle-1ms",
        "rate-1e-300",
        "rate-1e400",
        "sendq-2**63",
        "per-ip-1e9",
    ],
)
def test_values_past_what_the_server_can_use_are_refused(
    key: str, value: float, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"[limits] {key} {message}, got ")):
        from_dict({"limits": {key: value}})


def test_a_config_that_is_not_utf8_is_one_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "chatd.toml"
    path.write_bytes(b'[server]\nhost = "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: not UTF-8 (byte 20); save it as UTF-8"


@pytest.mark.parametrize(
    "toml",
    [
        "a = " + "[" * 100_000 + "]" * 100_000,
        "a = " + "[" * 2_000 + "]" * 2_000,
        "a = " + "{b = " * 5_000 + "1" + "}" * 5_000,
    ],
    ids=["arrays-100000", "arrays-2000", "inline-tables-5000"],
)
def test_a_deeply_nested_config_is_one_error_naming_the_file(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "chatd.toml"
    path.write_text(toml + "\n")
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        f"{path}: not valid TOML for chatd: arrays or tables nested too deeply"
    )


def test_a_config_that_is_a_folder_is_one_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    assert str(caught.value) == f"{tmp_path}: cannot read: Is a directory"


def test_changed_settings_names_each_setting_and_plugin_table() -> None:
    old = from_dict({"roll": {"sides": 6}})
    new = from_dict(
        {"server": {"port": 7000}, "limits": {"sendq_bytes": 65536}, "roll": {"sides": 20}}
    )
    assert changed_settings(old, new) == ["[server] port", "[limits] sendq_bytes", "[roll]"]
    assert changed_settings(new, new) == []


def test_command_line_settings_hold_over_a_file_read_again(tmp_path: Path) -> None:
    path = tmp_path / "chatd.toml"
    path.write_text("[server]\nport = 7000\n[irc]\nport = 6000\n")
    started = with_overrides(load(path), "irc", port=0, host=None)
    path.write_text('[server]\nport = 7000\n[irc]\nport = 6001\nnetwork = "new"\n')
    again = reapply_overrides(started, load(path))
    assert (again.server.port, again.irc.port, again.irc.network) == (7000, 0, "new")
    assert changed_settings(started, again) == ["[irc] network"]  # not the port it keeps


def test_irc_autojoin_left_out_follows_the_default_room() -> None:
    assert from_dict({"rooms": {"default": "#main"}}).irc.autojoin == ["#main"]
    assert from_dict({"rooms": {"default": "#main"}, "irc": {"port": 0}}).irc.autojoin == ["#main"]
    given = {"rooms": {"default": "#main"}, "irc": {"autojoin": ["#a"]}}
    assert from_dict(given).irc.autojoin == ["#a"]
    assert from_dict({}).irc.autojoin == ["#lobby"]
