"""The hub and the built-in commands, without sockets: text in, lines out."""

from __future__ import annotations

import dataclasses
import logging
import sys
import types

import pytest

from chatd import Command, Context, hookimpl
from chatd.core.commands import CommandTable
from chatd.core.nicks import NICK_PROMPT, NICK_RULE
from tests.helpers import FakeLink, HubFixture

PROMPT = "*** " + NICK_PROMPT


@pytest.fixture
def fx() -> HubFixture:
    return HubFixture()


def test_greeting_ends_with_the_nickname_prompt(fx: HubFixture) -> None:
    link = FakeLink()
    fx.hub.connect(link)
    assert link.lines[0].startswith("*** Welcome to chatd")
    assert link.lines[-1] == PROMPT


@pytest.mark.parametrize(
    "bad", ["bad name", "x" * 17, "émile", "a.b", "<alice>", "*bob*", "#lobby", "~t"]
)
def test_invalid_nickname_gets_a_reason_and_the_prompt_again(fx: HubFixture, bad: str) -> None:
    link = FakeLink()
    user = fx.hub.connect(link)
    link.take()
    fx.hub.receive(user, bad)
    reason, prompt = link.take()
    assert reason.startswith("*** ") and "not a valid nickname" in reason
    assert prompt == PROMPT
    assert not link.closed


@pytest.mark.parametrize("nick", ["[tom]", "ann|away", "x^", "{a}", "`q", "back\\slash", "-_-"])
def test_irc_style_nicknames_are_everyones(fx: HubFixture, nick: str) -> None:
    user, _ = fx.join(nick)  # asserts the welcome
    assert fx.hub.find(nick.upper()) is user


def test_empty_nickname_line_just_asks_again(fx: HubFixture) -> None:
    link = FakeLink()
    user = fx.hub.connect(link)
    link.take()
    fx.hub.receive(user, "")
    assert link.take() == [PROMPT]


def test_taken_nickname_ignores_case_and_then_another_is_accepted(fx: HubFixture) -> None:
    fx.join("Alice")
    link = FakeLink()
    user = fx.hub.connect(link)
    link.take()
    fx.hub.receive(user, "aLiCe")
    assert link.take() == ["*** The nickname aLiCe is taken; choose another.", PROMPT]
    fx.hub.receive(user, "alice_2")
    assert link.take() == [
        "*** Welcome, alice_2! 2 users online; you are in #lobby. Type /help for commands."
    ]


def test_welcome_counts_users_and_others_see_the_join(fx: HubFixture) -> None:
    _, alice = fx.join("alice")
    link = FakeLink()
    user = fx.hub.connect(link)
    fx.hub.receive(user, "bob")
    assert (
        link.lines[-1]
        == "*** Welcome, bob! 2 users online; you are in #lobby. Type /help for commands."
    )
    assert alice.take() == ["*** bob joined"]


def test_chat_reaches_every_other_named_user_exactly_and_never_the_sender(fx: HubFixture) -> None:
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    _, carol = fx.join("carol")
    pending = FakeLink()
    fx.hub.connect(pending)  # not named yet: gets no chat
    alice.take()
    pending.take()
    fx.hub.receive(alice_user, "hello, world")
    assert bob.take() == carol.take() == ["<alice> hello, world"]
    assert alice.take() == []
    assert pending.take() == []


def test_fan_out_hands_every_recipient_the_same_bytes_once_per_batch(fx: HubFixture) -> None:
    sender, _ = fx.join("alice")
    received: list[bytes | memoryview] = []
    links = [fx.join(nick)[1] for nick in ("bob", "carol", "dave")]
    for link in links:
        link.deliver_batch = received.append  # type: ignore[method-assign]
    fx.hub.receive(sender, "once")
    fx.hub.receive(sender, "twice")
    assert received == []  # nothing per recipient until the batch is handed out
    fx.hub.fanout.flush()
    assert len(received) == 3
    assert received[0] is received[1] is received[2]  # one bytes object for all
    assert received[0] == b"<alice> once\n<alice> twice\n"


def test_empty_lines_are_ignored(fx: HubFixture) -> None:
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    fx.hub.receive(alice_user, "")
    assert bob.take() == [] and alice.take() == []


def test_double_slash_sends_a_slash_line_as_chat(fx: HubFixture) -> None:
    alice_user, _ = fx.join("alice")
    _, bob = fx.join("bob")
    fx.hub.receive(alice_user, "//shrug")
    assert bob.take() == ["<alice> /shrug"]


def test_unknown_command_names_help(fx: HubFixture) -> None:
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/frobnicate now")
    assert alice.take() == ["*** Unknown command /frobnicate. Type /help for the list of commands."]
    fx.hub.receive(alice_user, "/")
    assert alice.take() == ["*** Type a command name after the /; /help lists them (// sends a /)."]


def test_commands_are_case_insensitive(fx: HubFixture) -> None:
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/WHO")
    assert alice.take() == ["*** 1 user in #lobby: alice"]


def test_help_lists_every_command_sorted_and_shows_usage(fx: HubFixture) -> None:
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/help")
    lines = alice.take()
    assert all(line.startswith("*** ") for line in lines)
    names = [line.split()[1] for line in lines if line.startswith("***   /")]
    assert names == [
        "/deop", "/fact", "/game", "/giveup", "/guess", "/help", "/hint", "/history",
        "/identify", "/join", "/kick", "/me", "/msg", "/names", "/nick", "/op", "/part",
        "/password", "/quit", "/r", "/register", "/rooms", "/scores", "/topic", "/unregister",
        "/who",
    ]  # fmt: skip
    fx.hub.receive(alice_user, "/help nick")
    assert alice.take() == ["*** Usage: /nick NEWNAME  -  Change your nickname."]
    fx.hub.receive(alice_user, "/help /ME")
    assert alice.take()[0].startswith("*** Usage: /me ACTION")
    fx.hub.receive(alice_user, "/help nope")
    assert alice.take() == ["*** No command /nope. Type /help for the list of commands."]


def test_who_lists_named_users_sorted_ignoring_case(fx: HubFixture) -> None:
    for nick in ("carol", "Bob"):
        fx.join(nick)
    alice_user, alice = fx.join("alice")
    fx.hub.connect(FakeLink())  # unnamed: not listed
    fx.hub.receive(alice_user, "/who")
    assert alice.take() == ["*** 3 users in #lobby: alice, Bob, carol"]


def test_who_wraps_a_long_list_into_several_lines(fx: HubFixture) -> None:
    for i in range(100):
        fx.join(f"user{i:03d}_long_nm")
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/who")
    lines = alice.take()
    assert lines[0].startswith("*** 101 users in #lobby: alice, user000_long_nm")
    assert len(lines) > 3 and all(len(line) < 450 for line in lines)
    names = ", ".join(line.removeprefix("*** ") for line in lines).split(": ", 1)[1]
    assert len([n for n in names.replace(",,", ",").split(", ") if n]) == 101


def test_nick_change_is_told_to_everyone_and_frees_the_old_name(fx: HubFixture) -> None:
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    alice.take()
    fx.hub.receive(alice_user, "/nick Alicia")
    assert alice.take() == ["*** You are now known as Alicia."]
    assert bob.take() == ["*** alice is now known as Alicia"]
    fx.hub.receive(alice_user, "after")
    assert bob.take() == ["<Alicia> after"]
    fx.join("alice")  # the old name is free again


def test_nick_change_follows_the_same_rules(fx: HubFixture) -> None:
    alice_user, alice = fx.join("alice")
    fx.join("bob")
    alice.take()
    fx.hub.receive(alice_user, "/nick BOB")
    assert alice.take() == ["*** The nickname BOB is taken; choose another."]
    fx.hub.receive(alice_user, "/nick no way")
    assert alice.take() == [f"*** Usage: /nick NEWNAME ({NICK_RULE})."]
    fx.hub.receive(alice_user, "/nick bad!")
    assert "not a valid nickname" in alice.take()[0]
    fx.hub.receive(alice_user, "/nick alice")
    assert alice.take() == ["*** You are already alice."]
    fx.hub.receive(alice_user, "/nick ALICE")  # a change of case is a change
    assert alice.take() == ["*** You are now known as ALICE."]


def test_me_is_an_action_for_the_others(fx: HubFixture) -> None:
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    alice.take()
    fx.hub.receive(alice_user, "/me waves hello")
    assert bob.take() == ["* alice waves hello"]
    assert alice.take() == []
    fx.hub.receive(alice_user, "/me")
    assert alice.take()[0].startswith("*** Usage: /me ACTION")


def test_quit_says_goodbye_closes_and_others_see_the_reason(fx: HubFixture) -> None:
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    alice.take()
    fx.hub.receive(alice_user, "/quit off to lunch")
    assert alice.take() == ["*** Goodbye, alice."]
    assert alice.closed
    assert bob.take() == ["*** alice left (Quit: off to lunch)"]
    assert fx.hub.nicks() == ["bob"]
    # The transport reports the end of the connection later: nothing more happens.
    fx.hub.disconnect(alice_user, "connection closed")
    assert bob.take() == []


def test_quit_without_reason(fx: HubFixture) -> None:
    alice_user, _ = fx.join("alice")
    _, bob = fx.join("bob")
    fx.hub.receive(alice_user, "/quit")
    assert bob.take() == ["*** alice left (Quit)"]


def test_quit_while_choosing_a_nickname(fx: HubFixture) -> None:
    link = FakeLink()
    user = fx.hub.connect(link)
    fx.hub.receive(user, "/quit")
    assert link.closed


def test_connection_end_tells_the_others_once(fx: HubFixture) -> None:
    alice_user, _ = fx.join("alice")
    _, bob = fx.join("bob")
    fx.hub.disconnect(alice_user, "connection reset")
    fx.hub.disconnect(alice_user, "connection reset")
    assert bob.take() == ["*** alice left (connection reset)"]
    fx.hub.receive(alice_user, "ghost line")
    assert bob.take() == []


def test_an_unnamed_connection_leaving_is_silent(fx: HubFixture) -> None:
    _, bob = fx.join("bob")
    user = fx.hub.connect(FakeLink())
    fx.hub.disconnect(user, "connection closed")
    assert bob.take() == []


def test_line_too_long_is_told_to_the_sender(fx: HubFixture) -> None:
    alice_user, alice = fx.join("alice")
    fx.hub.line_too_long(alice_user, 1024)
    assert alice.take() == ["*** Line too long (over 1024 bytes); it was not sent."]


def test_shutdown_tells_everyone_and_closes_every_link(fx: HubFixture) -> None:
    _, alice = fx.join("alice")
    _, bob = fx.join("bob")
    pending = FakeLink()
    fx.hub.connect(pending)
    fx.hub.shutdown("Server shutting down.")
    for link in (alice, bob, pending):
        assert link.lines[-1] == "*** Server shutting down."
        assert link.closed
    assert "left" not in " ".join(alice.lines + bob.lines)
    assert fx.hub.nicks() == []


def _plugin_module(name: str, **attrs: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def test_a_plugin_that_raises_costs_only_its_own_reply(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(ctx: Context, args: str) -> None:
        raise RuntimeError("plugin bug")

    @hookimpl
    def chatd_commands() -> list[Command]:
        return [Command("boom", boom, help="Always fails.")]

    _plugin_module("tests_boom_plugin", chatd_commands=chatd_commands)
    try:
        fx = HubFixture(("chatd.plugins.help", "chatd.plugins.basics", "tests_boom_plugin"))
    finally:
        del sys.modules["tests_boom_plugin"]
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    alice.take()
    with caplog.at_level(logging.ERROR):
        fx.hub.receive(alice_user, "/boom")
    assert alice.take() == ["*** /boom failed (internal error)."]
    assert "tests_boom_plugin" in caplog.text and "plugin bug" in caplog.text
    fx.hub.receive(alice_user, "still here")
    assert bob.take() == ["<alice> still here"]


def test_context_gives_plugins_what_the_api_promises(fx: HubFixture) -> None:
    calls: list[str] = []

    def probe(ctx: Context, args: str) -> None:
        calls.append(ctx.nick)
        ctx.reply("line one\nline two")
        assert ctx.send("BOB", "psst")
        assert not ctx.send("nobody", "lost")
        ctx.announce("to the others")
        ctx.announce("to all", include_self=True)
        ctx.say("said")
        ctx.emote("emoted")
        assert ctx.nicks() == ["alice", "bob"]
        assert [c.name for c in ctx.commands()][:3] == ["deop", "fact", "game"]
        ctx.call_later(3, lambda: ctx.reply("later"))

    table = fx.plugins.commands
    entries = {c.name: (c, table.plugin_of(c.name)) for c in table}
    entries["probe"] = (Command("probe", probe), "basics")
    fx.plugins.set = dataclasses.replace(fx.plugins.set, commands=CommandTable(entries))
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    alice.take()
    fx.hub.receive(alice_user, "/probe")
    assert calls == ["alice"]
    assert alice.take() == ["*** line one", "*** line two", "*** to all"]
    assert bob.take() == [
        "*** psst",
        "*** to the others",
        "*** to all",
        "<alice> said",
        "* alice emoted",
    ]
    fx.clock.advance(3)
    fx.timers.run_due()
    assert alice.take() == ["*** later"]


def test_at_the_nickname_prompt_commands_get_clear_answers(fx: HubFixture) -> None:
    link = FakeLink()
    user = fx.hub.connect(link)
    link.take()
    fx.hub.receive(user, "/who")
    assert link.take() == ["*** Choose a nickname first; then /who works.", PROMPT]
    fx.hub.receive(user, "/")
    assert link.take() == ["*** Choose a nickname first; then a command works.", PROMPT]
    fx.hub.receive(user, "/quit")
    assert link.take() == ["*** Goodbye."]
    assert link.closed


def test_shutdown_counts_connections_in_words(
    fx: HubFixture, caplog: pytest.LogCaptureFixture
) -> None:
    fx.join("alice")
    with caplog.at_level(logging.INFO):
        fx.hub.shutdown("Server shutting down. Goodbye!")
    assert "shutting down: 1 connection told" in caplog.text
