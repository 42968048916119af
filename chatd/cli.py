"""The ``chatd`` command: ``chatd serve | admin | connect | bench``.

Rule: argument parsing and process concerns (logging set-up, exit status,
signals) live here; everything it runs is importable and testable without it.
Errors a user can fix are one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatd import __version__
from chatd.config import Config, ConfigError, load, with_overrides

log = logging.getLogger("chatd")


def _setup_logging(level: str) -> None:
    from chatd import logs

    logs.setup(level)


def _fail(message: str) -> int:
    print(f"chatd: {message}", file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from chatd.admin.paths import SocketPathError
    from chatd.core.commands import CommandError
    from chatd.core.plugins import PluginError
    from chatd.server import ListenError, Server
    from chatd.store import StoreError
    from chatd.wire.tls import TlsFileError

    try:
        config: Config = load(args.config)
        config = with_overrides(config, "server", host=args.host, port=args.port)
        config = with_overrides(config, "irc", host=args.irc_host, port=args.irc_port)
        config = with_overrides(config, "web", host=args.web_host, port=args.web_port)
        config = with_overrides(config, "store", path=args.store)
    except ConfigError as exc:
        return _fail(str(exc))
    _setup_logging(args.log_level)
    try:
        server = Server(config)
    except (PluginError, CommandError, ConfigError, StoreError) as exc:
        return _fail(str(exc))
    try:
        server.listen()
    except (SocketPathError, ListenError, TlsFileError) as exc:  # each names its file or port
        server.store.close()
        return _fail(str(exc))
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
    from chatd.admin.top import run_top

    def fail(message: str, status: int = 1) -> int:
        print(f"chatd admin: {message}", file=sys.stderr)
        return status

    try:
        config = load(args.config)
        # argparse has taken the options (found anywhere on the line) out of the words.
        options = {"room": args.room} if args.room is not None else {}
        if options and not args.words:
            raise wire.WireError("--room goes with a command: say --room #ROOM TEXT")
        # Not a command of the protocol: a view made of several of them.
        top = bool(args.words) and args.words[0].lower() == "top"
        if top and (args.words[1:] or options or args.json):
            raise wire.WireError("top is a live view: it takes no arguments, --room or --json")
        request = wire.from_words(args.words, options) if args.words and not top else None
    except (ConfigError, wire.WireError) as exc:
        return fail(str(exc), 2)
    if top and not (sys.stdin.isatty() and sys.stdout.isatty()):
        return fail("top is a live view: run it in a terminal (stdin and stdout)", 2)
    try:
        client = AdminClient(socket_path(config, args.socket))
    except AdminUnavailable as exc:
        return fail(str(exc))
    try:
        if top:
            return run_top(client, Console())
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
    from chatd.core.nicks import nick_problem

    try:
        config = load(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    host, port_text = args.host, args.port
    if port_text is None and host is not None and host.isascii() and host.isdigit():
        host, port_text = None, host  # a lone number is the port, not a host
    host = host or config.server.host
    port_text = port_text if port_text is not None else str(config.server.port)
    number = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    port = int(port_text) if number else 0
    if not 0 < port < 65536:
        return _fail(f"connect: port {port_text} is not a TCP port; give a number from 1 to 65535")
    if args.nick and (problem := nick_problem(args.nick)):
        return _fail(f"connect: --nick {problem}")
    return client_main(host, port, args.nick)


def _bench(args: argparse.Namespace) -> int:
    import json
    import ssl

    from rich.console import Console

    from chatd.admin.render import bench_table
    from chatd.bench import Options, client_context, run

    opts = Options(
        host=args.host,
        port=args.port,
        clients=args.clients,
        senders=args.senders,
        duration=args.duration,
        warmup=args.warmup,
        window=args.window,
        rate=args.rate,
        pad=args.pad,
        procs=args.procs,
        checkers=args.checkers,
        rooms=args.rooms,
        ws=args.ws,
        tls=args.tls,
        ca_file=str(args.ca_file or ""),
    )
    if not 0 < opts.senders < opts.clients:
        return _fail("bench: --senders must be at least 1 and fewer than --clients")
    if not 1 <= opts.rooms <= opts.clients - opts.senders:
        return _fail(
            "bench: --rooms must be 1 to --clients minus --senders (each room needs a listener)"
        )
    if opts.duration <= 0 or opts.window < 1 or opts.procs < 1 or opts.rate < 0:
        return _fail("bench: --duration must be positive, --window and --procs at least 1")
    if opts.tls and opts.ws:
        return _fail("bench: --tls with --ws is not supported yet; drop one of them")
    if args.ca_file and not opts.tls:
        return _fail("bench: --ca-file needs --tls")
    if opts.ca_file:
        try:  # here, not in a worker: a file missing is named, not taken for the server's
            client_context(opts.ca_file)
        except (OSError, ssl.SSLError) as exc:
            why = getattr(exc, "strerror", None) or exc
            return _fail(f"bench: --ca-file {opts.ca_file}: {why}")
    try:
        summary = run(opts).summary()
    except OSError as exc:
        return _fail(f"bench: {opts.host}:{opts.port}: {exc.strerror or exc}")
    if summary["ready"] == 0:
        return _fail(f"bench: no client could connect to {opts.host}:{opts.port}")
    summary["options"] = {"window": opts.window, "rate": opts.rate, "pad": opts.pad}
    if args.json:
        print(json.dumps(summary))
    else:
        Console().print(bench_table(summary))
    ok = summary["delivery_ratio"] == 1.0 and not summary["order_errors"]
    return 0 if ok else 1


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser; with ``intermixed=True`` it finds options anywhere
    among its words, as ``parse_intermixed_args`` does: a plain parser fills a
    ``nargs="*"`` positional once, so ``chatd admin say --room #games hi`` would
    leave ``hi`` over. (The intermixed parse calls parse_known_args itself:
    hence the flag.)"""

    def __init__(self, *args: Any, intermixed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._intermixed = intermixed
        self._intermixing = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if not self._intermixed or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatd", description="A chat server for people in a terminal."
    )
    parser.add_argument("--version", action="version", version=f"chatd {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_SubcommandParser
    )

    serve = sub.add_parser("serve", help="run the chat server")
    serve.add_argument("--config", type=Path, help="settings file (default: built-in defaults)")
    serve.add_argument("--host", help="address to listen on (overrides [server] host)")
    serve.add_argument("--port", type=int, help="TCP port (overrides [server] port; 0 = any)")
    serve.add_argument("--irc-host", help="address for IRC clients (overrides [irc] host)")
    serve.add_argument(
        "--irc-port", type=int, help="TCP port for IRC (overrides [irc] port; 0 = any)"
    )
    serve.add_argument("--web-host", help="address for browsers (overrides [web] host)")
    serve.add_argument(
        "--web-port", type=int, help="TCP port for HTTP (overrides [web] port; 0 = any)"
    )
    serve.add_argument(
        "--store", metavar="PATH", help='history database (overrides [store] path; ":memory:")'
    )
    serve.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log to stderr (default INFO)",
    )
    serve.set_defaults(run=_serve)

    admin = sub.add_parser(
        "admin",
        intermixed=True,
        help="operator console, or one operator command",
        description="Without COMMAND: an interactive console. With one: run it and exit."
        " Commands: users, rooms, kick NICK [REASON], roomkick #ROOM NICK [REASON],"
        " topic #ROOM [TEXT], ban NICK DURATION [REASON], unban NICK|ADDRESS,"
        " bans, reload [words|facts|plugins|config|tls|all], plugins, plugin on|off NAME,"
        " history #ROOM [N], accounts, account delete NAME, stats, say [--room #ROOM] TEXT,"
        " shutdown [MESSAGE]; and top, a live view of the server (q quits)."
        " A room's # may be left out (the shell reads an unquoted # as a comment).",
    )
    admin.add_argument("--socket", help="the admin socket (default: [admin] socket, or the usual)")
    admin.add_argument("--config", type=Path, help="settings file, for [admin] socket")
    admin.add_argument("--json", action="store_true", help="print the raw JSON result")
    admin.add_argument("--room", help="for say: announce to this room's members only")
    # nargs="*", not REMAINDER: options may go anywhere (chatd admin users --json,
    # chatd admin say --room games hi); text that starts with "-" goes after "--"
    # (chatd admin say -- -5 degrees outside).
    admin.add_argument("words", nargs="*", metavar="COMMAND [ARGS...]")
    admin.set_defaults(run=_admin)
    connect = sub.add_parser(
        "connect",
        help="terminal chat client",
        description="Chat on a chatd server (default: [server] host and port from --config,"
        " else 127.0.0.1 7777). Tab completes /commands and nicknames; Ctrl-D or /quit leaves.",
    )
    # HOST and PORT are read in _connect: a lone number is the port, and a bad
    # port is one line there rather than argparse's usage and error.
    connect.add_argument("host", nargs="?", help="server address; a lone number is the port")
    connect.add_argument("port", nargs="?", help="server port")
    connect.add_argument("--nick", help="answer the nickname prompt with NICK")
    connect.add_argument("--config", type=Path, help="settings file, for the default host/port")
    connect.set_defaults(run=_connect)

    bench = sub.add_parser(
        "bench",
        help="load-test a chat server",
        description="Connect CLIENTS clients to a chatd-compatible server, let SENDERS of them"
        " send for DURATION seconds, and report deliveries/s, delivery ratio and latency."
        " Exit status 1 if a delivery was missing or out of order.",
    )
    bench.add_argument("host", nargs="?", default="127.0.0.1", help="server address")
    bench.add_argument("port", nargs="?", type=int, default=7777, help="server port")
    bench.add_argument("--clients", type=int, default=100, help="connections (100)")
    bench.add_argument("--senders", type=int, default=4, help="how many of them send (4)")
    bench.add_argument("--duration", type=float, default=5.0, help="measured seconds (5)")
    bench.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring (1)")
    bench.add_argument(
        "--window", type=int, default=64, help="lines a sender may have unacknowledged (64)"
    )
    bench.add_argument(
        "--rate", type=float, default=0.0, help="lines a second per sender; 0 = window-bound"
    )
    bench.add_argument("--pad", type=int, default=0, help="extra bytes per line (0)")
    bench.add_argument("--procs", type=int, default=1, help="processes to split clients over")
    bench.add_argument(
        "--checkers", type=int, default=4, help="clients per process that parse every line (4)"
    )
    bench.add_argument(
        "--rooms",
        type=int,
        default=1,
        help="spread the clients over N rooms, client i alone in #bench-(i mod N)"
        " (1: everyone in the default room)",
    )
    bench.add_argument("--json", action="store_true", help="print the result as one JSON line")
    bench.add_argument(
        "--ws",
        action="store_true",
        help="speak the web protocol over a WebSocket (PORT is the web listener's)",
    )
    bench.add_argument(
        "--tls",
        action="store_true",
        help="connect over TLS (PORT is a TLS listener's, [server] tls_port)",
    )
    bench.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="with --tls: verify the server's certificate and name against this CA;"
        " without, nothing is verified",
    )
    bench.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
