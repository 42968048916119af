from __future__ import annotations

import json
import re

import pytest

from chatd.admin import wire
from chatd.wire import jsontext


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
        (["plugins"], {"cmd": "plugins", "args": {}}),
        (["plugin", "off", "roll"], {"cmd": "plugin", "args": {"action": "off", "name": "roll"}}),
        (["rooms"], {"cmd": "rooms", "args": {}}),
        (
            ["say", "--room", "#games", "chess", "at", "8"],
            {"cmd": "say", "args": {"room": "#games", "text": "chess at 8"}},
        ),
        (["say", "--room=games", "hi"], {"cmd": "say", "args": {"room": "games", "text": "hi"}}),
        # "--" ends the options; a word that is no option is text, dashes and all.
        (["say", "--", "--room", "x"], {"cmd": "say", "args": {"text": "--room x"}}),
        (["say", "---", "hi", "---"], {"cmd": "say", "args": {"text": "--- hi ---"}}),
        (  # anywhere, as argparse finds it for chatd admin
            ["say", "hi", "--room", "#games", "all"],
            {"cmd": "say", "args": {"room": "#games", "text": "hi all"}},
        ),
        (
            ["say", "a", "--", "--room", "b"],
            {"cmd": "say", "args": {"text": "a --room b"}},
        ),
        (["topic", "#games"], {"cmd": "topic", "args": {"room": "#games"}}),
        (
            ["topic", "#games", "chess", "tonight"],
            {"cmd": "topic", "args": {"room": "#games", "text": "chess tonight"}},
        ),
        (
            ["roomkick", "#games", "bob", "too", "loud"],
            {"cmd": "roomkick", "args": {"room": "#games", "nick": "bob", "reason": "too loud"}},
        ),
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
        (["say"], "usage: say [--room #ROOM] TEXT"),
        (["stats", "now"], "stats takes no arguments"),
        (["dance"], "unknown command 'dance'"),
        (["plugin", "off"], "usage: plugin on|off NAME"),
        (["plugins", "all"], "plugins takes no arguments"),
        (["say", "--room"], "say: --room needs a value; usage: say [--room #ROOM] TEXT"),
        (["say", "--room", "#games"], "usage: say [--room #ROOM] TEXT"),
        (["topic"], "usage: topic #ROOM [TEXT]"),
        (["roomkick", "#games"], "usage: roomkick #ROOM NICK [REASON]"),
        (["rooms", "#games"], "rooms takes no arguments"),
    ],
)
def test_bad_command_lines(words: list[str], message: str) -> None:
    with pytest.raises(wire.WireError, match=re.escape(message)):
        wire.from_words(words)


def test_nesting_past_the_limit_is_a_clear_error_not_a_recursion_error() -> None:
    deep = "[" * 32000 + "]" * 32000  # fits in one request line (64 KiB)
    too_deep = rf"nested too deep \(at most {jsontext.MAX_NESTING} levels\)"
    with pytest.raises(wire.WireError, match=rf"^request {too_deep}$"):
        wire.parse_request(deep)
    with pytest.raises(wire.WireError, match=rf"^the server sent a reply {too_deep}$"):
        wire.parse_response('{"ok": true, "result": ' + deep + "}")
    at_limit = "[" * jsontext.MAX_NESTING + "]" * jsontext.MAX_NESTING
    with pytest.raises(wire.WireError, match="a request is a JSON object"):
        wire.parse_request(at_limit)  # deep, but within the limit: judged on its shape
    with pytest.raises(wire.WireError, match=rf"^request {too_deep}$"):
        wire.parse_request("[" + at_limit + "]")
    with pytest.raises(wire.WireError, match=rf"^request {too_deep}$"):
        wire.parse_request("{" * 40000)  # never closed: too deep all the same


@pytest.mark.parametrize(
    "text",
    ["[" * 30000, '\\"' + "{[" * 20000, "\\\\" * 100 + "]" * 100, '"' + "[" * 100],
)
def test_brackets_inside_strings_do_not_count_as_nesting(text: str) -> None:
    line = json.dumps({"cmd": "say", "args": {"text": text}})
    assert wire.parse_request(line) == wire.Request("say", {"text": text})
    reply = json.dumps({"ok": True, "result": [{"text": text}]})
    assert wire.parse_response(reply)["result"] == [{"text": text}]


def test_options_parsed_already_are_taken_as_they_are() -> None:
    # chatd admin: argparse found --room anywhere and took "--" away, so the
    # words are all text.
    assert wire.from_words(["say", "--room", "x"], {"room": "#games"}) == wire.request(
        "say", {"room": "#games", "text": "--room x"}
    )
    assert wire.from_words(["say", "hi"], {}) == wire.request("say", {"text": "hi"})
    with pytest.raises(wire.WireError, match=r"^users takes no --room; usage: users$"):
        wire.from_words(["users"], {"room": "#games"})


def test_the_server_takes_a_room_only_where_a_command_has_one() -> None:
    say = json.dumps(wire.request("say", {"text": "hi", "room": "#games"}))
    assert wire.parse_request(say) == wire.Request("say", {"text": "hi", "room": "#games"})
    with pytest.raises(wire.WireError, match=r"^stats: unknown argument 'room'; usage: stats$"):
        wire.parse_request(json.dumps(wire.request("stats", {"room": "#games"})))
    with pytest.raises(wire.WireError, match=r"^topic: missing 'room'; usage: topic #ROOM"):
        wire.parse_request(json.dumps(wire.request("topic", {"text": "x"})))
