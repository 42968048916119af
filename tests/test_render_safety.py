"""Nothing leaves the server with a control byte in it, or as a line without its
prefix, whoever produced the text: a user, a plugin, an operator (issue 12,
items 8 and 9).

The test walks every path that can put text on the wire, over real sockets,
with text built to forge lines and take over terminals, and checks every byte
each client receives.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.admin.client import AdminClient
from chatd.config import AdminSettings, PluginSettings
from chatd.wire import line as protocol
from chatd.wire.text import one_line
from tests.helpers import WAIT, LineClient, make_config, running_server

#: ESC, a CSI colour, an OSC title with BEL, an 8-bit CSI, C1, NUL, DEL, and
#: line breaks that would start an unprefixed (forged) line.
NASTY = (
    "a\x1b[31mred\x1b]0;pwned\x07 \x9b2J\x85\x00\x7f\x1b\\"
    "\n<root> forged chat line\r\n*** forged notice\rx\u2028<y> z"
)

PLUGIN = """
    from chatd import Command, Drop, hookimpl

    NASTY = {nasty!r}

    def nasty(ctx, args):
        ctx.reply(NASTY)
        ctx.announce(NASTY, include_self=True)
        ctx.send(ctx.nick, NASTY)
        ctx.say(NASTY)
        ctx.emote(NASTY)

    @hookimpl
    def chatd_commands():
        return [Command("nasty", nasty)]

    @hookimpl
    def chatd_message(ctx, text, action):
        if text == "rewrite me":
            return NASTY
        if text == "drop me":
            return Drop(NASTY)
        return None
"""

#: What a line may start with: the server's prefix, chat, an action.
PREFIXED = re.compile(r"^(\*\*\* |<[A-Za-z0-9_-]+> |\* [A-Za-z0-9_-]+ )")


def _check(lines: list[str]) -> None:
    for line in lines:
        assert PREFIXED.match(line), f"a line without its prefix: {line!r}"
        assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", line), repr(line)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "plugins.d"
    folder.mkdir()
    (folder / "nasty.py").write_text(textwrap.dedent(PLUGIN.format(nasty=NASTY)))
    yield folder
    sys.modules.pop("chatd_plugin_nasty", None)


def test_every_path_to_the_wire_is_sanitized(tmp_path: Path, plugin_dir: Path) -> None:
    config = make_config(
        plugins=PluginSettings(dirs=[str(plugin_dir)]),
        admin=AdminSettings(enabled=True, socket=str(tmp_path / "a.sock")),
    )
    with running_server(config) as server:
        assert server.address and server.admin_path
        alice, bob, carol = (LineClient(server.address) for _ in range(3))
        seen: dict[str, list[str]] = {}
        for nick, client in (("alice", alice), ("bob", bob), ("carol", carol)):
            client.register(nick)
        # a user: what they type is sanitized on the way in
        alice.send_raw(NASTY.replace("\n", " ").replace("\r", " ").encode() + b"\n")
        # a plugin: reply, announce, send, say, emote, a rewrite, a Drop reason
        alice.send("/nasty")
        alice.send("rewrite me")
        alice.send("drop me")
        alice.send("/me marks the end")
        seen["bob"] = [*bob.lines_until("* alice marks the end"), "* alice marks the end"]
        # an operator: say, a kick reason, a shutdown message
        admin = AdminClient(server.admin_path, timeout=WAIT)
        try:
            admin.call("say", {"text": NASTY})
            admin.call("kick", {"nick": "carol", "reason": NASTY})
            seen["carol"] = carol.wait_closed()
            admin.call("shutdown", {"message": NASTY})
        finally:
            admin.close()
        seen["alice"] = alice.wait_closed()
        seen["bob"] += bob.wait_closed()
    for nick, lines in seen.items():
        _check(lines)
        assert lines, nick
    # Each path did reach the wire, as one clean line with its breaks turned to
    # spaces (how many depends on the path: the user's own line and the admin's
    # request line lose their C1 controls before anything else sees them).
    assert one_line(NASTY) == "ared   <root> forged chat line *** forged notice x <y> z"
    clean = r"ared +<root> forged chat line +\*\*\* forged notice x <y> z"

    def count(lines: list[str], pattern: str) -> int:
        return sum(1 for line in lines if re.fullmatch(pattern, line))

    bob_lines = seen["bob"]
    assert count(bob_lines, f"<alice> {clean}") == 3  # typed, ctx.say, the rewrite
    assert count(bob_lines, rf"\* alice {clean}") == 1  # ctx.emote
    assert count(bob_lines, rf"\*\*\* carol left \(kicked by an operator: {clean}\)") == 1
    assert count(bob_lines, rf"\*\*\* Server shutting down: {clean}\.") == 1
    # A multi-line reply or announcement keeps each line's prefix.
    assert bob_lines.count("*** Announcement: ared") == 1  # admin say
    assert bob_lines.count("*** <root> forged chat line") == 2  # admin say, ctx.announce
    # ctx.reply, ctx.announce, chat.send, admin say
    assert seen["alice"].count("*** <root> forged chat line") == 4
    assert count(seen["alice"], rf"\*\*\* Not sent: {clean}\.") == 1  # a Drop reason
    assert count(seen["carol"], rf"\*\*\* You have been kicked by an operator: {clean}\.") == 1


@pytest.mark.parametrize(
    "text", [NASTY, "\x1b", "\n", "\r\n\r\n", "", "plain", "tab\there", "\u2029"]
)
def test_formatters_always_give_one_clean_prefixed_line(text: str) -> None:
    for line in (protocol.notice(text), protocol.chat("bob", text), protocol.action("bob", text)):
        data = protocol.encode_line(line)
        assert data.count(b"\n") == 1 and data.endswith(b"\n")
        _check([line])
    notices = protocol.encode_notices(text).decode().splitlines()
    assert notices
    _check(notices)
