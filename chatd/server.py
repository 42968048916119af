"""Puts a chat server together from its settings: plugins, hub, admin, reactor.

Rule: this is the only place that wires the parts to each other; each part gets
what it needs as arguments, so tests can build any of them alone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from chatd.admin import wire
from chatd.admin.paths import prepare_folder, socket_path
from chatd.admin.service import AdminService
from chatd.config import Config, ConfigError, changed_settings, check_extra, load
from chatd.core.hub import Hub
from chatd.core.plugins import PluginHost
from chatd.core.reactor import Listener, Reactor, format_address
from chatd.core.stats import Stats
from chatd.core.timers import Clock, Timers
from chatd.plugins import BUILTIN_PLUGINS

log = logging.getLogger(__name__)

#: Unsent output an admin connection may hold: a `users` reply for 10,000
#: users is a few MiB of JSON, and operators are trusted.
ADMIN_SENDQ_BYTES: Final = 64 * 1024 * 1024
#: Settings that only take effect at startup; a config reload reports them.
RESTART_ONLY: Final = ("server", "admin")


class Server:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = time.monotonic,
        builtins: Iterable[str] = BUILTIN_PLUGINS,
        entry_points: bool = True,
    ) -> None:
        """Load plugins and build the parts; raises PluginError, CommandError or
        ConfigError (each a one-line message) when the plugins don't fit."""
        self.config = config
        self.clock = clock
        self.timers = Timers(clock)
        self.stats = Stats(clock())
        self.plugins = PluginHost(config, builtins, entry_points=entry_points)
        self.hub = Hub(self.plugins, self.timers, clock=clock, stats=self.stats)
        self.reactor = Reactor(self.timers, on_reload=lambda: self.reload("all"))
        self.admin = AdminService(self)
        self.plugins.startup()
        self.address: tuple[str, int] | None = None
        self.admin_path: Path | None = None
        self._chat: Listener | None = None

    def listen(self) -> tuple[str, int]:
        """Bind the chat port; returns (host, port) as bound (port 0 picks one)."""
        limits = self.config.limits
        self._chat = self.reactor.listen(
            self.config.server.host,
            self.config.server.port,
            self.hub,
            max_line_bytes=limits.max_line_bytes,
            sendq_bytes=limits.sendq_bytes,
            stats=self.stats,
        )
        host, port = self._chat.sock.getsockname()[:2]
        self.address = (host, port)
        log.info("listening for chat on %s", format_address(self.address))
        if self.config.admin.enabled:
            self.listen_admin()
        return self.address

    def listen_admin(self) -> Path:
        """Serve the admin API on its Unix socket, to this user and root only.

        Raises SocketPathError for an unsafe folder, FileExistsError when another
        server answers on the socket, OSError otherwise.
        """
        path = socket_path(self.config)
        prepare_folder(path)
        self.reactor.listen_unix(
            str(path),
            self.admin,
            allowed_uids=frozenset({os.getuid(), 0}),
            max_line_bytes=wire.MAX_REQUEST_BYTES,
            sendq_bytes=ADMIN_SENDQ_BYTES,
        )
        self.admin_path = path
        log.info("admin socket: %s", path)
        return path

    def run(self) -> None:
        """Serve until stopped; returns after a graceful shutdown."""
        log.info("%s", self.plugins.describe())
        self.reactor.run()
        log.info("stopped")

    def reload(self, what: str = "all") -> list[str]:
        """Reload config, words, facts or plugins without a restart (loop thread only).

        Returns one line per change or failure; whatever fails keeps what worked.
        """
        report = self._reload_config() if what in ("config", "all") else []
        if what != "config":
            report += self.plugins.reload(what)
        return report

    def _reload_config(self) -> list[str]:
        source = self.config.source
        if source is None:
            return ["config: no file to reload (the server was started without --config)"]
        old = self.config
        try:
            new = load(source)
            check_extra(new, set(self.plugins.names))
        except ConfigError as exc:
            log.warning("reload: config: %s", exc)
            return [f"config: reload failed, kept the old settings: {exc}"]
        changed = changed_settings(old, new)
        now = [label for table, label in changed if table not in RESTART_ONLY]
        restart = [label for table, label in changed if table in RESTART_ONLY]
        # What runs now keeps its address and socket; everything else takes effect.
        applied = dataclasses.replace(new, server=old.server, admin=old.admin)
        self.config = applied
        self.plugins.set_config(applied)
        if self._chat is not None:  # for connections from now on
            self._chat.max_line_bytes = applied.limits.max_line_bytes
            self._chat.sendq_bytes = applied.limits.sendq_bytes
        if not changed:
            line = f"config: {source}: nothing changed"
        else:
            line = f"config: {source}: changed {', '.join(now) or 'nothing that applies now'}"
            if restart:
                line += f"; needs a restart: {', '.join(restart)}"
        log.info("reload: %s", line)
        return [line]

    def stop(self, message: str | None = None) -> None:
        """Ask a running server to shut down gracefully; safe from any thread."""
        if message:
            self.reactor.shutdown_message = f"Server shutting down: {message}"
        self.reactor.request_stop()
