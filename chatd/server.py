"""Puts a chat server together from its settings: plugins, hub, admin, reactor.

Rule: this is the only place that wires the parts to each other; each part gets
what it needs as arguments, so tests can build any of them alone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from chatd import metrics
from chatd.admin import wire
from chatd.admin.paths import check_leftover, prepare_folder, serve_error, socket_path
from chatd.admin.service import AdminService
from chatd.cluster.backplane import Backplane
from chatd.config import (
    Config,
    ConfigError,
    changed_settings,
    check_extra,
    load,
    reapply_overrides,
)
from chatd.core.buffers import chunks
from chatd.core.hub import Hub
from chatd.core.link import Framing, Handler
from chatd.core.passwords import Hasher
from chatd.core.plugins import PluginHost, Report
from chatd.core.reactor import (
    Limits,
    Listener,
    Reactor,
    Tally,
    Tls,
    format_address,
    notify_service,
)
from chatd.core.stats import Stats
from chatd.core.timers import Clock, Timers
from chatd.core.watchdog import Watchdog
from chatd.irc_gateway import IrcGateway
from chatd.plugins import BUILTIN_PLUGINS
from chatd.store.store import Store, open_store
from chatd.web_gateway import WebGateway
from chatd.wire import irc_message, line
from chatd.wire.resp import parse_url
from chatd.wire.text import sentence
from chatd.wire.tls import TlsFileError, server_context

log = logging.getLogger(__name__)

#: Unsent output an admin connection may hold: a `users` reply for 10,000
#: users is a few MiB of JSON, and operators are trusted.
ADMIN_SENDQ_BYTES: Final = 64 * 1024 * 1024
#: Settings that only take effect at startup (a config reload reports them):
#: where the chat ports are, everything about the admin socket, the default
#: room (every nc user is in it; a room users made must not become it by a
#: reload), the names every IRC line carries (the server's, the network's,
#: the service's: a client would be left talking to a name that is gone), and
#: the database and what its writer prunes by, and the cluster a node is in.
RESTART_ONLY: Final = (
    "[server] host",
    "[server] port",
    "[admin]",
    "[rooms] default",
    "[history] max_lines_per_room",
    "[history] keep_days",
    "[store]",
    "[irc] enabled",
    "[irc] host",
    "[irc] port",
    "[irc] server_name",
    "[irc] network",
    "[irc] service_nick",
    "[web] enabled",
    "[web] host",
    "[web] port",
    "[web] tls_port",
    "[web] plain",
    "[server] tls_port",
    "[server] plain",
    "[irc] tls_port",
    "[irc] plain",
    "[cluster]",
)
#: Unsent output the Redis command connection may hold: a node's sync of
#: 10,000 users is about a MiB, and a burst of chat while Redis is slow
#: queues behind it; past this Redis is not keeping up, and the connection is
#: dropped (the node serves alone, then catches up).
REDIS_SENDQ_BYTES: Final = 64 * 1024 * 1024
#: File descriptors kept beyond max_clients: listeners, the admin socket and its
#: clients, the selector, the wake-up pair, word lists being read, the log.
RESERVED_FDS: Final = 64


def chat_limits(config: Config) -> Limits:
    """What the chat listener allows, from the settings."""
    limits = config.limits
    return Limits(
        max_line_bytes=limits.max_line_bytes,
        sendq_bytes=limits.sendq_bytes,
        flood_burst=limits.flood_burst,
        flood_rate=limits.flood_rate,
        max_connections=config.server.max_clients,
        max_per_host=limits.max_per_ip,
    )


def irc_limits(config: Config) -> Limits:
    """What the IRC listener allows: the chat's limits, but lines as IRC has
    them (512 bytes and IRCv3 tags: the gateway answers 417 past 512; past
    that the reactor refuses the line unread)."""
    return dataclasses.replace(chat_limits(config), max_line_bytes=irc_message.MAX_LINE_BYTES)


class ListenError(Exception):
    """A chat port cannot be listened on; the message says which, where and why."""


def _listen_error(what: str, where: str, setting: str, exc: OSError) -> ListenError:
    # A host name that does not resolve is a socket.gaierror (by name here: the
    # reactor alone imports socket), which create_server re-raises as a plain
    # OSError with the gaierror as its context; its errno is getaddrinfo's
    # (EAI_NONAME is -2), which os.strerror does not know.
    if "gaierror" in (type(exc).__name__, type(exc.__context__).__name__):
        return ListenError(
            f"cannot listen for {what} on {where}: the host name could not be resolved;"
            f" set {setting} host to an address of this machine"
        )
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return ListenError(f"cannot listen for {what} on {where}: {reason} (see {setting})")


def _open_fds() -> int:
    """How many file descriptors this process has open (Linux's /proc; elsewhere
    the reserve chatd assumes)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one listdir opened
    except OSError:
        return RESERVED_FDS


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (as far as the
    hard limit allows: no privilege needed); returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if new > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    return wanted if soft == resource.RLIM_INFINITY else soft


class Server:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = time.monotonic,
        builtins: Iterable[str] = BUILTIN_PLUGINS,
        entry_points: bool = True,
        store: Store | None = None,
    ) -> None:
        """Load plugins, open the store (``store``, else the one [store] path
        names) and build the parts; raises PluginError, CommandError or
        ConfigError when the plugins don't fit, StoreError when the database
        cannot be used (each a one-line message)."""
        self.config = config
        self.clock = clock
        self.timers = Timers(clock)
        self.stats = Stats(clock())
        self.plugins = PluginHost(config, builtins, entry_points=entry_points)
        self.store = store if store is not None else open_store(config)
        self.reactor = Reactor(
            self.timers,
            on_reload=lambda: self.reload("all"),
            on_stopping=lambda: notify_service("STOPPING=1"),  # as the goodbyes go out
        )
        # The iteration's lines go to the store's writer once its output is out.
        self.reactor.add_turn_hook(self.store.end_turn)
        self.cluster = self._backplane(config)
        self.hub = Hub(
            self.plugins,
            self.timers,
            wire=line,
            clock=clock,
            stats=self.stats,
            fanout=self.reactor.fanout,
            store=self.store,
            # scrypt runs on its own thread; the answer comes back on the loop.
            hasher=Hasher(self.reactor.call_soon_threadsafe),
            peers=self.cluster,
        )
        if self.cluster is not None:
            self.cluster.hub = self.hub
            # The iteration's entry goes out with the iteration's output.
            self.reactor.add_turn_hook(self.cluster.end_turn, before_flush=True)

        self.plugins.attach(self.hub)
        self.irc = IrcGateway(self.hub) if config.irc.enabled else None
        self.web = (
            WebGateway(self.hub, metrics=self.metrics, health=self.health)
            if config.web.enabled
            else None
        )
        self.admin = AdminService(
            self.hub,
            self.plugins,
            self.stats,
            clock=clock,
            reload=self.reload,
            stop=self.stop,
            # Each listener's counts (and Redis's connections'), as /metrics has them.
            listeners=lambda: [*self.reactor.listeners, *self.reactor.outbound],
        )
        self.plugins.startup()
        self.address: tuple[str, int] | None = None
        self.irc_address: tuple[str, int] | None = None
        self.web_address: tuple[str, int] | None = None
        self.admin_path: Path | None = None
        self._chat: Listener | None = None
        self._irc: Listener | None = None
        self._web: Listener | None = None
        #: The TLS listeners (those there are), by what they serve: "nc", "irc", "web".
        self.tls_addresses: dict[str, tuple[str, int]] = {}
        self._tls_listeners: dict[str, Listener] = {}
        #: The TLS every TLS listener serves (its context replaced on a reload),
        #: and the [tls] settings it was loaded with.
        self._tls: Tls | None = None
        self._tls_settings = config.tls

    def _backplane(self, config: Config) -> Backplane | None:
        """The cluster's backplane when ``[cluster] redis`` names one."""
        cluster = config.cluster
        if not cluster.redis:
            return None
        return Backplane(
            parse_url(cluster.redis),  # checked as the settings were read
            cluster.node,  # "" until listen() knows the port
            self.timers,
            lambda host, port, handler, name: self.reactor.connect(
                host,
                port,
                handler,
                framing=chunks,
                limits=Limits(sendq_bytes=REDIS_SENDQ_BYTES),
                name=name,
            ),
            prefix=cluster.prefix,
            node_timeout=cluster.node_timeout,
        )

    def listen(self) -> tuple[str, int]:
        """Bind the chat ports (nc, and IRC unless it is off); returns the nc
        one's (host, port) as bound (port 0 picks one). Raises ListenError for
        a port that cannot be had, SocketPathError for the admin socket."""
        config = self.config
        max_clients = config.server.max_clients
        fds = raise_fd_limit(max_clients + RESERVED_FDS)
        tally = Tally()  # max_clients and max_per_ip count nc and IRC together
        self._tls = self._load_tls()
        self._chat = self._serve("chat", "server", self.hub, chat_limits(config), tally, "nc")
        address = self._address(self._chat, "nc")
        assert address is not None, "plain = false is refused without TLS (config)"
        self.address = address
        if self.cluster is not None and not self.cluster.node:
            self.cluster.node = f"{os.uname().nodename}:{self.address[1]}"
        if self.irc is not None:
            self._irc = self._serve("IRC", "irc", self.irc, irc_limits(config), tally, "irc")
            self.irc_address = self._address(self._irc, "")
        if self.web is not None:
            framing = self.web.framing
            self._web = self._serve(
                "web", "web", self.web, chat_limits(config), tally, "web", framing
            )
            self.web_address = self._address(self._web, "")
            for scheme, address in (
                ("http", self.web_address),
                ("https", self.tls_addresses.get("web")),
            ):
                if address is not None:
                    log.info("web: %s://%s/", scheme, format_address(address))
        if self.config.admin.enabled:
            self.listen_admin()
        # Counted now that everything but the clients is open: what is left is
        # theirs, less one for each admin connection (an operator's is taken
        # from the reserve the reactor holds, when all else is taken).
        room = fds - _open_fds()
        if room < max_clients:
            log.warning(
                "[server] max_clients is %d, but this process may open only %d files"
                " (ulimit -n): connections past about %d will wait until others leave",
                max_clients,
                fds,
                max(0, room),
            )
        return self.address

    def _listen_tcp(
        self,
        what: str,
        table: str,
        host: str,
        port: int,
        handler: Handler,
        limits: Limits,
        tally: Tally,
        name: str,
        framing: Framing | None = None,
        tls: Tls | None = None,
    ) -> Listener:
        """One chat listener, logged as bound; ListenError naming ``table`` if not.
        ``name`` labels its metrics ("nc", "irc", "web"; "nc-tls" and so on
        over ``tls``)."""
        try:
            listener = self.reactor.listen(
                host,
                port,
                handler,
                limits,
                stats=self.stats,
                tally=tally,
                framing=framing,
                name=name,
                tls=tls,
            )
        except OSError as exc:
            where = f"{table} tls_port" if tls is not None else table
            raise _listen_error(what, format_address((host, port)), where, exc) from None
        over = " over TLS" if tls is not None else ""
        log.info(
            "listening for %s%s on %s", what, over, format_address(listener.sock.getsockname())
        )
        return listener

    def _serve(
        self,
        what: str,
        table: str,
        handler: Handler,
        limits: Limits,
        tally: Tally,
        name: str,
        framing: Framing | None = None,
    ) -> Listener | None:
        """The listeners of ``[table]``: its plain one (returned, unless it
        is ``plain = false``) and its TLS one, if there is TLS and its
        ``tls_port`` is not -1 (in tls_addresses under ``name``)."""
        settings = getattr(self.config, table)
        where = f"[{table}]"
        plain = None
        if settings.plain:
            plain = self._listen_tcp(
                what, where, settings.host, settings.port, handler, limits, tally, name, framing
            )
        if self._tls is not None and settings.tls_port >= 0:
            listener = self._listen_tcp(
                what, where, settings.host, settings.tls_port, handler, limits, tally,
                f"{name}-tls", framing, self._tls,
            )  # fmt: skip
            self._tls_listeners[name] = listener
            self.tls_addresses[name] = listener.sock.getsockname()[:2]
        return plain

    def _address(self, listener: Listener | None, tls_name: str) -> tuple[str, int] | None:
        """Where ``listener`` listens, or (with no plain listener) the TLS one of
        ``tls_name``, or None."""
        if listener is not None:
            return listener.sock.getsockname()[:2]  # type: ignore[no-any-return]
        return self.tls_addresses.get(tls_name)

    def _load_tls(self) -> Tls | None:
        """The TLS of ``[tls]``, or None without a certificate; TlsFileError
        (one line naming the file) when it cannot be used."""
        settings = self.config.tls
        if not settings.cert_file:
            return None
        cert = self.config.path(settings.cert_file)
        key = self.config.path(settings.key_file) if settings.key_file else cert
        try:
            context = server_context(cert, key)
        except TlsFileError as exc:
            raise TlsFileError(f"[tls] {exc}") from None
        return Tls(context, settings.handshake_timeout)

    def listen_admin(self) -> Path:
        """Serve the admin API on its Unix socket, to this user and root only.

        Raises SocketPathError, naming the socket's path, for whatever stops it:
        an unsafe folder, something at the path that is not a stale socket of
        ours, another server answering there, or any error from listening.
        """
        path = socket_path(self.config)
        prepare_folder(path)
        check_leftover(path)
        try:
            self.reactor.listen_unix(
                str(path),
                self.admin,
                allowed_uids=frozenset({os.getuid(), 0}),
                limits=Limits(max_line_bytes=wire.MAX_REQUEST_BYTES, sendq_bytes=ADMIN_SENDQ_BYTES),
                name="admin",
            )
        except OSError as exc:
            raise serve_error(path, exc) from None
        self.admin_path = path
        log.info("admin socket: %s", path)
        return path

    def run(self) -> None:
        """Serve until stopped; returns after a graceful shutdown."""
        log.info("%s", self.plugins.describe())
        log.info("history: %s", self.store.path or "in memory only ([store] path is :memory:)")
        guard = self.plugins.guard
        # The deadline needs SIGALRM, so only a server run in the main thread has it.
        if not guard.deadline.install() and self.config.plugins.call_timeout > 0:
            log.info("plugin calls are timed but not cut off: not run in the main thread")
        watchdog = Watchdog(
            self.config.plugins.stall_seconds,
            # A loop asleep in select() has not stalled: it "turned" just now.
            last_turn=lambda: time.monotonic() if self.reactor.idle else self.reactor.turned,
            running=lambda: guard.current,
        )
        watchdog.start()
        if self.cluster is not None:
            log.info(
                "cluster: node %s, through Redis at %s", self.cluster.node, self.cluster.address
            )
            self.cluster.start()
        # Under systemd (Type=notify): up now, every listener bound.
        notify_service(f"READY=1\nSTATUS={self._status()}\nMAINPID={os.getpid()}")
        try:
            self.reactor.run()
        finally:
            watchdog.stop()
            guard.deadline.uninstall()
            self.store.close()  # what the last iterations recorded is written first
        log.info("stopped")

    def _status(self) -> str:
        """One line for `systemctl status`: where it listens."""
        where = [f"chat {format_address(self._chat.sock.getsockname())}"] if self._chat else []
        if self.irc_address:
            where.append(f"IRC {format_address(self.irc_address)}")
        if self.web_address:
            where.append(f"web {format_address(self.web_address)}")
        where += [f"{name} over TLS {format_address(a)}" for name, a in self.tls_addresses.items()]
        return "serving " + ", ".join(where)

    def reload(self, what: str = "all") -> Report:
        """Reload config, words, facts or plugins without a restart (loop thread only).

        Returns one line per change or failure (``failed`` set if any part
        failed); whatever fails keeps what worked. A service manager is told
        it is reloading, then ready again.
        """
        notify_service("RELOADING=1")
        try:
            return self._reload(what)
        finally:
            notify_service(f"READY=1\nSTATUS={self._status()}")

    def _reload(self, what: str) -> Report:
        if what == "tls":
            return self._reload_tls()
        if what == "config":
            report = self._reload_config()
            if not report.failed:  # the plugins hear of settings that took effect
                report.extend(self.plugins.run_reload_hooks("config"))
                if self._tls is not None and self.config.tls != self._tls_settings:
                    report.extend(self._reload_tls())  # [tls] changed: it applies now
            report.extend(self._reload_motd())
            return report
        report = Report()
        if what == "all":
            report.extend(self._reload_config())
            report.extend(self._reload_motd())
            report.extend(self._reload_tls())
        report.extend(self.plugins.reload(what))
        return report

    def _reload_tls(self) -> Report:
        """The certificate and key read again, for connections from now on
        (those up keep theirs); a pair that fails to load keeps the old one."""
        settings = self.config.tls
        if self._tls is None:
            if not settings.cert_file:
                return Report(["tls: no [tls] cert_file, no TLS listeners"])
            line = "tls: [tls] cert_file is set, but TLS listeners open only at startup: restart"
            log.warning("reload: %s", line)
            return Report([line], failed=True)
        try:
            fresh = self._load_tls()
        except TlsFileError as exc:
            line = f"tls: reload failed, kept the old certificate: {exc}"
            log.warning("reload: %s", line)
            return Report([line], failed=True)
        if fresh is None:
            line = "tls: [tls] cert_file is now empty: kept the old certificate until a restart"
            log.warning("reload: %s", line)
            return Report([line], failed=True)
        self._tls.context = fresh.context
        self._tls.handshake_timeout = fresh.handshake_timeout
        self._tls_settings = settings
        line = f"tls: {self.config.path(settings.cert_file)} loaded, for new connections"
        log.info("reload: %s", line)
        return Report([line])

    def _reload_motd(self) -> Report:
        """The IRC MOTD, read again (its file may have changed, or the setting)."""
        if self.irc is None:
            return Report()
        line = self.irc.reload_motd()
        if not line:
            return Report()
        failed = line.startswith("irc: kept")
        (log.warning if failed else log.info)("reload: %s", line)
        return Report([line], failed=failed)

    def _reload_config(self) -> Report:
        source = self.config.source
        if source is None:
            return Report(["config: no file to reload (the server was started without --config)"])
        old = self.config
        try:
            if not source.is_file():  # a FIFO (--config <(...)) would block the loop here
                raise ConfigError(f"{source}: not a regular file, so it cannot be read again")
            new = reapply_overrides(old, load(source))  # --port and such still hold
            check_extra(new, set(self.plugins.names))
        except ConfigError as exc:
            line = f"config: reload failed, kept the old settings: {exc}"
            log.warning("reload: %s", line)
            return Report([line], failed=True)
        changed = changed_settings(old, new)
        now = [label for label in changed if not label.startswith(RESTART_ONLY)]
        restart = [label for label in changed if label.startswith(RESTART_ONLY)]
        # What runs now keeps its address and socket; everything else takes effect.
        irc_kept = {
            name: getattr(old.irc, name)
            for name in ("enabled", "host", "port", "server_name", "network", "service_nick")
        }
        applied = dataclasses.replace(
            new,
            server=dataclasses.replace(new.server, host=old.server.host, port=old.server.port),
            admin=old.admin,
            store=old.store,
            history=dataclasses.replace(
                new.history,
                max_lines_per_room=old.history.max_lines_per_room,
                keep_days=old.history.keep_days,
            ),
            rooms=dataclasses.replace(new.rooms, default=old.rooms.default),
            irc=dataclasses.replace(new.irc, **irc_kept),
            web=dataclasses.replace(
                new.web, enabled=old.web.enabled, host=old.web.host, port=old.web.port
            ),
        )
        self.config = applied
        self.plugins.set_config(applied)
        self.hub.limits_changed()
        for name, listener in self._tls_listeners.items():
            listener.limits = irc_limits(applied) if name == "irc" else chat_limits(applied)
        if self._chat is not None:  # for connections from now on
            self._chat.limits = chat_limits(applied)
        if self._irc is not None:
            self._irc.limits = irc_limits(applied)
        if self._web is not None:
            self._web.limits = chat_limits(applied)
        if not changed:
            line = f"config: {source}: nothing changed"
        else:
            line = f"config: {source}: changed {', '.join(now) or 'nothing that applies now'}"
            if restart:
                line += f"; needs a restart: {', '.join(restart)}"
        log.info("reload: %s", line)
        if self.irc is not None:
            self.irc.settings_changed()
        if self.web is not None:
            self.web.settings_changed()
        return Report([line])

    def metrics(self) -> bytes:
        """/metrics: the Prometheus text exposition format (chatd.metrics)."""
        families = metrics.collect(
            hub=self.hub,
            store=self.store,
            # Redis's connections too: their bytes, under their own names.
            listeners=[*self.reactor.listeners, *self.reactor.outbound],
            plugins=self.plugins.names,
            guard=self.plugins.guard,
            loop_times=self.reactor.loop_times,
            http=self.web.answers if self.web is not None else None,
        )
        return metrics.render(families)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """/healthz: whether the server is well, and what it shows."""
        well, facts = metrics.health(self.store)  # 503 while the store cannot write
        facts["uptime_seconds"] = round(self.clock() - self.stats.started, 1)
        facts["connections"] = len(self.reactor.connections)
        if self.cluster is not None:
            facts["cluster"] = self.cluster.describe()
        return well, facts

    def stop(self, message: str | None = None) -> None:
        """Ask a running server to shut down gracefully; safe from any thread."""
        if message:
            self.reactor.shutdown_message = f"Server shutting down: {sentence(message)}"
        self.reactor.request_stop()
