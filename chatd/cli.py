"""The ``chatd`` command: ``chatd serve | admin | connect``.

Rule: argument parsing and process concerns (logging set-up, exit status,
signals) live here; everything it runs is importable and testable without it.
Errors a user can fix are one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from chatd import __version__
from chatd.config import Config, ConfigError, load, with_overrides

log = logging.getLogger("chatd")


def _setup_logging(level: str) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(
        console=Console(stderr=True),
        show_path=False,
        omit_repeated_times=False,
        log_time_format="%Y-%m-%d %H:%M:%S",
    )
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)


def _fail(message: str) -> int:
    print(f"chatd: {message}", file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from chatd.admin.paths import SocketPathError
    from chatd.core.commands import CommandError
    from chatd.core.plugins import PluginError
    from chatd.server import Server

    try:
        config: Config = load(args.config)
        config = with_overrides(config, "server", host=args.host, port=args.port)
    except ConfigError as exc:
        return _fail(str(exc))
    _setup_logging(args.log_level)
    try:
        server = Server(config)
    except (PluginError, CommandError, ConfigError) as exc:
        return _fail(str(exc))
    try:
        server.listen()
    except SocketPathError as exc:
        return _fail(str(exc))
    except FileExistsError as exc:
        return _fail(
            f"another chatd is serving the admin socket {exc.filename}; stop it,"
            " or give this one its own [admin] socket"
        )
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.filename:  # the admin socket
            return _fail(f"cannot serve the admin socket {exc.filename}: {reason}")
        where = f"{config.server.host}:{config.server.port}"
        return _fail(f"cannot listen on {where}: {reason}")
    server.reactor.install_signal_handlers()
    server.run()
    return 0


def _admin(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from chatd.admin import render, wire
    from chatd.admin.client import AdminClient, AdminFailed, AdminUnavailable
    from chatd.admin.console import run_console
    from chatd.admin.paths import socket_path

    def fail(message: str, status: int = 1) -> int:
        print(f"chatd admin: {message}", file=sys.stderr)
        return status

    try:
        config = load(args.config)
        request = wire.from_words(args.words) if args.words else None
    except (ConfigError, wire.WireError) as exc:
        return fail(str(exc), 2)
    try:
        client = AdminClient(socket_path(config, args.socket))
    except AdminUnavailable as exc:
        return fail(str(exc))
    try:
        if request is None:
            return run_console(client, Console())
        value = client.send(request)
    except (AdminFailed, AdminUnavailable, wire.WireError) as exc:
        return fail(str(exc))
    finally:
        client.close()
    if args.json:
        print(json.dumps(value, indent=2, ensure_ascii=False))
    else:
        Console().print(render.result(request["cmd"], value))
    return 0


def _connect(args: argparse.Namespace) -> int:
    from chatd.client.app import main as client_main
    from chatd.core.hub import nick_problem

    try:
        config = load(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    if not 0 < port < 65536:
        return _fail(f"connect: {port} is not a TCP port (1-65535)")
    if args.nick and (problem := nick_problem(args.nick)):
        return _fail(f"connect: --nick {problem}")
    return client_main(host, port, args.nick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatd", description="A chat server for people in a terminal."
    )
    parser.add_argument("--version", action="version", version=f"chatd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the chat server")
    serve.add_argument("--config", type=Path, help="settings file (default: built-in defaults)")
    serve.add_argument("--host", help="address to listen on (overrides [server] host)")
    serve.add_argument("--port", type=int, help="TCP port (overrides [server] port; 0 = any)")
    serve.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log to stderr (default INFO)",
    )
    serve.set_defaults(run=_serve)

    admin = sub.add_parser(
        "admin",
        help="operator console, or one operator command",
        description="Without COMMAND: an interactive console. With one: run it and exit."
        " Commands: users, kick NICK [REASON], reload [words|facts|plugins|config|all],"
        " stats, say TEXT, shutdown [MESSAGE].",
    )
    admin.add_argument("--socket", help="the admin socket (default: [admin] socket, or the usual)")
    admin.add_argument("--config", type=Path, help="settings file, for [admin] socket")
    admin.add_argument("--json", action="store_true", help="print the raw JSON result")
    # nargs="*", not REMAINDER: options may follow the command (chatd admin users --json);
    # text that starts with "-" goes after "--" (chatd admin say -- -5 degrees outside).
    admin.add_argument("words", nargs="*", metavar="COMMAND [ARGS...]")
    admin.set_defaults(run=_admin)
    connect = sub.add_parser(
        "connect",
        help="terminal chat client",
        description="Chat on a chatd server (default: [server] host and port from --config,"
        " else 127.0.0.1 7777). Tab completes /commands and nicknames; Ctrl-D or /quit leaves.",
    )
    connect.add_argument("host", nargs="?", help="server address")
    connect.add_argument("port", nargs="?", type=int, help="server port")
    connect.add_argument("--nick", help="answer the nickname prompt with NICK")
    connect.add_argument("--config", type=Path, help="settings file, for the default host/port")
    connect.set_defaults(run=_connect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
