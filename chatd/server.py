"""Puts a chat server together from its settings: plugins, hub, reactor.

Rule: this is the only place that wires the parts to each other; each part gets
what it needs as arguments, so tests can build any of them alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from chatd.config import Config
from chatd.core.hub import Hub
from chatd.core.plugins import PluginHost
from chatd.core.reactor import Listener, Reactor, format_address
from chatd.core.stats import Stats
from chatd.core.timers import Clock, Timers
from chatd.plugins import BUILTIN_PLUGINS

log = logging.getLogger(__name__)


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
        self.plugins.startup()
        self.address: tuple[str, int] | None = None
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
        return self.address

    def run(self) -> None:
        """Serve until stopped; returns after a graceful shutdown."""
        log.info("%s", self.plugins.describe())
        self.reactor.run()
        log.info("stopped")

    def reload(self, what: str = "all") -> list[str]:
        """Reload words, facts or plugins without a restart (loop thread only)."""
        return self.plugins.reload(what)

    def stop(self) -> None:
        """Ask a running server to shut down gracefully; safe from any thread."""
        self.reactor.request_stop()
