from __future__ import annotations

import json

import pytest

from chatd.admin import wire


def test_requests_round_trip() -> None:
    line = wire.encode(wire.request("kick", {"nick": "alice", "reason": "spam"}))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert wire.parse_request(line.decode()) == wire.Request(
        "kick", {"nick": "alice", "reason": "spam"}
    )


def test_responses() -> None:
    assert json.loads(wire.encode(wire.ok([1]))) == {"ok": True, "result": [1]}
    assert json.loads(wire.encode(wire.error("no"))) == {"ok": False, "error": "no"}
    assert wire.parse_response('{"ok": false, "error": "x"}') == {"ok": False, "error": "x"}
    with pytest.raises(wire.WireError, match="unexpected reply"):
        wire.parse_response('{"result": 1}')


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["users"], {"cmd": "users", "args": {}}),
        (["KICK", "bob"], {"cmd": "kick", "args": {"nick": "bob"}}),
        (
            ["kick", "bob", "too", "many", "links"],
            {"cmd": "kick", "args": {"nick": "bob", "reason": "too many links"}},
        ),
        (["reload"], {"cmd": "reload", "args": {}}),
        (["say", "hello", "all"], {"cmd": "say", "args": {"text": "hello all"}}),
    ],
)
def test_command_lines_become_requests(words: list[str], expected: dict[str, object]) -> None:
    assert wire.from_words(words) == expected
    wire.parse_request(json.dumps(expected))  # and the server accepts it


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([], "no command given"),
        (["kick"], "usage: kick NICK [REASON]"),
        (["say"], "usage: say TEXT"),
        (["stats", "now"], "stats takes no arguments"),
        (["dance"], "unknown command 'dance'"),
    ],
)
def test_bad_command_lines(words: list[str], message: str) -> None:
    with pytest.raises(wire.WireError, match=message.replace("[", r"\[").replace("]", r"\]")):
        wire.from_words(words)
