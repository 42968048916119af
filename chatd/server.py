"""Puts a chat server together from its settings: plugins, commands, hub, reactor.

Rule: this is the only place that wires the parts to each other; each part gets
what it needs as arguments, so tests can build any of them alone.
"""

from __future__ import annotations

import logging
import time

from chatd.config import Config
from chatd.core.commands import CommandTable
from chatd.core.hub import Hub
from chatd.core.plugins import make_plugin_manager
from chatd.core.reactor import Reactor, format_address
from chatd.core.timers import Clock, Timers

log = logging.getLogger(__name__)


class Server:
    def __init__(self, config: Config, *, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.timers = Timers(clock)
        self.plugins = make_plugin_manager()
        self.hub = Hub(CommandTable.from_plugins(self.plugins), self.timers, clock=clock)
        self.reactor = Reactor(
            self.hub,
            self.timers,
            max_line_bytes=config.limits.max_line_bytes,
            sendq_bytes=config.limits.sendq_bytes,
        )
        self.address: tuple[str, int] | None = None

    def listen(self) -> tuple[str, int]:
        """Bind the chat port; returns (host, port) as bound (port 0 picks one)."""
        self.address = self.reactor.listen(self.config.server.host, self.config.server.port)
        log.info("listening for chat on %s", format_address(self.address))
        return self.address

    def run(self) -> None:
        """Serve until stopped; returns after a graceful shutdown."""
        self.reactor.run()
        log.info("stopped")

    def stop(self) -> None:
        """Ask a running server to shut down gracefully; safe from any thread."""
        self.reactor.request_stop()
