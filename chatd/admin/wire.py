"""The admin protocol: one JSON object per line each way, shared by server and console.

Rule: this module is the protocol's single definition: the request and response
shapes, the command names with their arguments, and how a command line typed
by an operator becomes a request. Nothing here does I/O.

    request:   {"cmd": "kick", "args": {"nick": "alice", "reason": "spam"}}
    response:  {"ok": true, "result": ...}   or   {"ok": false, "error": "..."}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from chatd.wire import jsontext

#: The longest request line the server reads, in bytes: room for a long `say`.
MAX_REQUEST_BYTES: Final = 64 * 1024

RELOAD_WHAT: Final = ("words", "facts", "plugins", "config", "tls", "all")
#: What ``plugin ACTION NAME`` may do; the service checks it, the console completes it.
PLUGIN_ACTIONS: Final = ("on", "off")
#: What ``account ACTION NAME`` may do (a word, not a bare ``account NAME``:
#: a deletion is spelt out).
ACCOUNT_ACTIONS: Final = ("delete",)


@dataclass(frozen=True)
class CommandSpec:
    name: str
    args: tuple[str, ...]  # argument names; the last one takes the rest of the line
    required: int  # how many of them must be given
    usage: str
    help: str
    #: Arguments given as ``--NAME VALUE`` (or ``--NAME=VALUE``) anywhere, never
    #: required: where a positional one would be ambiguous (``say`` takes the
    #: whole rest of the line as its text, which may start with a ``#``).
    options: tuple[str, ...] = ()


COMMANDS: Final = {
    spec.name: spec
    for spec in (
        CommandSpec("users", (), 0, "users", "Who is online: address, times, lines, rooms, games."),
        CommandSpec("rooms", (), 0, "rooms", "Every room: its members, topic and operators."),
        CommandSpec(
            "kick", ("nick", "reason"), 1, "kick NICK [REASON]", "Disconnect a user, saying why."
        ),
        # A separate command, not kick --room: a mistyped option must never turn
        # "out of one room" into "off the server".
        CommandSpec(
            "roomkick",
            ("room", "nick", "reason"),
            2,
            "roomkick #ROOM NICK [REASON]",
            "Put NICK out of ROOM, saying why (they may rejoin; ban keeps them out).",
        ),
        CommandSpec(
            "topic",
            ("room", "text"),
            1,
            "topic #ROOM [TEXT]",
            "Set ROOM's topic to TEXT; without TEXT, clear it.",
        ),
        CommandSpec(
            "ban",
            ("nick", "duration", "reason"),
            2,
            "ban NICK DURATION [REASON]",
            "Keep NICK (and, if online, its address) out for DURATION (10m, 2h, 1d).",
        ),
        CommandSpec("unban", ("target",), 1, "unban NICK|ADDRESS", "Lift the bans on it."),
        CommandSpec("bans", (), 0, "bans", "The bans in force and how long each has left."),
        CommandSpec(
            "reload",
            ("what",),
            0,
            "reload [words|facts|plugins|config|all]",
            "Reload without a restart (default all) and say what changed.",
        ),
        CommandSpec(
            "plugins",
            (),
            0,
            "plugins",
            "Every plugin: where from, its commands, calls, errors, slow calls, state.",
        ),
        CommandSpec(
            "plugin",
            ("action", "name"),
            2,
            "plugin on|off NAME",
            "Turn a plugin on or off now (on also undoes a switch-off).",
        ),
        CommandSpec(
            "history",
            ("room", "count"),
            1,
            "history #ROOM [N]",
            "The last N lines kept of ROOM (default 20, at most 500), with their times.",
        ),
        CommandSpec(
            "accounts",
            (),
            0,
            "accounts",
            "Every account: created, last seen, private messages held for it.",
        ),
        CommandSpec(
            "account",
            ("action", "name"),
            2,
            "account delete NAME",
            "Delete an account, its held messages and its scores (its user is told).",
        ),
        CommandSpec(
            "stats",
            (),
            0,
            "stats",
            "Uptime, connections, lines, bytes, commands; the store's path, size and rows.",
        ),
        CommandSpec(
            "say",
            ("text",),
            1,
            "say [--room #ROOM] TEXT",
            "Announce TEXT to every user, or only to ROOM's members.",
            options=("room",),
        ),
        CommandSpec(
            "shutdown", ("message",), 0, "shutdown [MESSAGE]", "Stop the server gracefully."
        ),
    )
}


class WireError(Exception):
    """A request or response that does not follow the protocol; the message says how."""


@dataclass(frozen=True)
class Request:
    cmd: str
    args: dict[str, Any]


def encode(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def request(cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"cmd": cmd, "args": args or {}}


def parse_request(line: str) -> Request:
    """A request line -> Request; WireError says what is wrong with it."""
    try:
        obj = jsontext.load(line)
    except jsontext.TooDeep as exc:
        raise WireError(f"request {exc}") from None
    except ValueError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError('a request is a JSON object: {"cmd": "...", "args": {...}}')
    cmd, args = obj.get("cmd"), obj.get("args", {})
    if not isinstance(cmd, str):
        raise WireError('missing "cmd" (a string)')
    if not isinstance(args, dict):
        raise WireError('"args" must be an object')
    spec = COMMANDS.get(cmd)
    if spec is None:
        raise WireError(f"unknown command {cmd!r}; commands: {', '.join(COMMANDS)}")
    unknown = sorted(set(args) - set(spec.args) - set(spec.options))
    if unknown:
        raise WireError(f"{cmd}: unknown argument {unknown[0]!r}; usage: {spec.usage}")
    for name in spec.args[: spec.required]:
        if not args.get(name):
            raise WireError(f"{cmd}: missing {name!r}; usage: {spec.usage}")
    for name, value in args.items():
        if not isinstance(value, str):
            raise WireError(f"{cmd}: {name!r} must be a string")
    return Request(cmd, args)


def parse_response(line: str) -> dict[str, Any]:
    try:
        obj = jsontext.load(line)
    except jsontext.TooDeep as exc:
        raise WireError(f"the server sent a reply {exc}") from None
    except ValueError as exc:
        raise WireError(f"the server sent something that is not JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
        raise WireError(f"the server sent an unexpected reply: {line[:200]}")
    return obj


def _split_options(spec: CommandSpec, words: list[str]) -> tuple[dict[str, Any], list[str]]:
    """``spec``'s options among ``words`` (``--NAME VALUE`` or ``--NAME=VALUE``,
    anywhere, as ``chatd admin``'s argparse finds them) -> (the options, the
    other words). A ``--`` ends them and is dropped: every word after it is
    text. Any other word is text too, dashes and all."""
    options: dict[str, Any] = {}
    rest: list[str] = []
    words = list(words)
    while words:
        word = words.pop(0)
        if word == "--":
            rest += words
            break
        name, eq, value = word[2:].partition("=")
        if not word.startswith("--") or name not in spec.options:
            rest.append(word)
            continue
        if not eq:
            if not words:
                raise WireError(f"{spec.name}: --{name} needs a value; usage: {spec.usage}")
            value = words.pop(0)
        options[name] = value
    return options, rest


def from_words(words: list[str], options: dict[str, str] | None = None) -> dict[str, Any]:
    """An operator's command line, split into words -> a request; WireError if it's off.

    The command's options are read from the words (the console), unless
    ``options`` gives them already parsed (``chatd admin``, whose argparse
    finds them anywhere on the line, and takes ``--`` away).
    """
    if not words:
        raise WireError("no command given")
    name, rest = words[0].lower(), words[1:]
    spec = COMMANDS.get(name)
    if spec is None:
        raise WireError(f"unknown command {name!r}; commands: {', '.join(COMMANDS)}")
    if options is None:
        args, rest = _split_options(spec, rest) if spec.options else ({}, rest)
    else:
        args = {}
        for option, value in options.items():
            if option not in spec.options:
                raise WireError(f"{name} takes no --{option}; usage: {spec.usage}")
            args[option] = value
    if len(rest) < spec.required:
        raise WireError(f"usage: {spec.usage}")
    if rest and not spec.args:
        raise WireError(f"{name} takes no arguments")
    for i, arg in enumerate(spec.args):
        if i >= len(rest):
            break
        last = i == len(spec.args) - 1
        args[arg] = " ".join(rest[i:]) if last else rest[i]
    return request(name, args)
