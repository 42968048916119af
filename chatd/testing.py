"""A test kit for plugin authors: a whole chat server, sans-IO, on a fake clock.

    from chatd.testing import ChatHarness

    def test_roll() -> None:
        with ChatHarness(plugins=["plugins.d/roll.py"]) as chat:
            alice = chat.join("alice")
            alice.send("/roll 2x")
            assert alice.lines() == ["*** Usage: /roll [NdM], for example /roll 2d6 or /roll d20."]

Under pytest, ask for the ``chat_harness`` fixture instead (chatd.pytest_plugin,
registered through the ``pytest11`` entry point): it makes harnesses like this
one and closes them after the test.

Rule: this is the real server without its sockets. A :class:`ChatHarness`
builds the hub, the plugin host (with its guard: timing, the deadline, the
breaker) and the timers exactly as ``chatd serve`` does, and each thing a test
does is one turn of the loop: lines in through the real input buffer and line
decoder, due timers run, the fan-out flushed. Only the transport is fake: a
:class:`FakeLink` records the bytes each connection is sent, and time moves
only when the test calls :meth:`ChatHarness.advance`. Flood control and send
queues belong to the transport and are not modelled here.

A plugin that fails fails the test: with ``strict=True`` (the default) a plugin
call that raises, runs past ``[plugins] call_timeout`` or returns the wrong type
makes the harness method that caused it raise :class:`PluginFailed` (an
AssertionError naming the plugin, with the plugin's exception as its cause, so
pytest shows the plugin's traceback), once that turn is over (the user has had
the internal-error reply by then). With ``strict=False`` failures are only
collected in :attr:`ChatHarness.errors`, and the breaker switches a plugin off
as on a real server. A ``chatd_reload`` that raises is never a strict failure:
raising is how that hook reports that it kept its old data.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeAlias

from chatd.config import MAX_SLOW_CALL_MS, Config, check_extra, from_dict
from chatd.core.buffers import OVERLONG, InputBuffer
from chatd.core.fanout import Group, catch_up
from chatd.core.guard import Guard, GuardSettings, PluginTimeout, where_stopped
from chatd.core.hub import Hub, User
from chatd.core.plugins import DROPIN_MODULE_PREFIX, PluginHost, Report
from chatd.core.timers import Timers
from chatd.plugins import BUILTIN_PLUGINS
from chatd.wire import line as line_wire
from chatd.wire.text import decode_line

__all__ = [
    "ChatClient",
    "ChatHarness",
    "ChatHarnessFactory",
    "FakeClock",
    "FakeLink",
    "PluginFailed",
    "PluginFailure",
]

#: Where a harness's clock starts: any number would do; not 0, so that a plugin
#: treating 0 as "never" is not fooled.
START_TIME: Final = 1000.0
#: A harness's wall clock (the times history shows) is its clock moved on to
#: start at 2026-11-18 11:06:40 UTC: the two move together.
WALL_OFFSET: Final = 1_795_000_000.0 - START_TIME
#: Runs of plugins' timers at one instant, in one turn, before the harness gives
#: up: only a timer that keeps re-arming itself with no delay gets there (a real
#: server would spin on it for ever), and no plugin needs this many.
MAX_RUNS_AT_ONE_TIME: Final = 10_000
#: What users are told when the harness closes: what ``chatd serve`` says on stop.
SHUTDOWN_MESSAGE: Final = "Server shutting down. Goodbye!"
#: The first client's port; each further client gets the next one.
FIRST_PORT: Final = 40000


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = START_TIME) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock on (and nothing else: :meth:`ChatHarness.advance` also runs timers)."""
        self.now += seconds


class FakeLink:
    """A hub Link that records what the server sent, as the client would receive it.

    Reading it flushes its fan-out group first, as the reactor does at the end
    of every loop iteration, so what it shows is what a client would have got.
    """

    def __init__(self, peer: str = f"127.0.0.1:{FIRST_PORT}") -> None:
        self.peer = peer
        self.host = peer.rpartition(":")[0]
        #: Every byte the server sent, in order.
        self.data = bytearray()
        #: Whether the server has closed the connection (nothing arrives after that).
        self.closed = False
        self.groups: set[Group] = set()
        self._read = 0  # bytes of data already handed out by take()

    def send(self, data: bytes) -> None:
        if not isinstance(data, bytes):  # the Link contract; a hub bug otherwise
            raise TypeError(f"Link.send takes bytes, got {type(data).__name__}")
        catch_up(self)
        self.deliver(data)

    def deliver(self, data: bytes | memoryview) -> None:
        if not self.closed:
            self.data += data

    deliver_batch = deliver

    def close(self) -> None:
        self.closed = True

    def _flush(self) -> None:
        # As the reactor does: every group of the loop, in the order they got lines.
        for fanout in {group.fanout for group in self.groups}:
            if fanout is not None:
                fanout.flush()

    @property
    def all_lines(self) -> list[str]:
        """Every complete line received, decoded."""
        self._flush()
        return _complete_lines(self.data)[0]

    def take(self) -> list[str]:
        """The complete lines received since the last take()."""
        self._flush()
        lines, used = _complete_lines(self.data, self._read)
        self._read += used
        return lines


def _complete_lines(data: bytearray, start: int = 0) -> tuple[list[str], int]:
    """The complete lines in ``data[start:]``, decoded, and how many bytes they took."""
    end = data.rfind(b"\n", start) + 1
    if end <= start:
        return [], 0
    return data[start : end - 1].decode("utf-8", "replace").split("\n"), end - start


@dataclasses.dataclass(frozen=True)
class PluginFailure:
    """One plugin call that failed: it raised, ran out of time, or returned the wrong type."""

    #: The plugin's name ("roll" for roll.py).
    plugin: str
    #: Where it came from: a file's path, or "built-in" for a module.
    origin: str
    #: What chatd was calling: "/roll", a hook's name, or "timer <function name>".
    what: str
    #: What it raised: :class:`~chatd.core.guard.PluginTimeout` when it was cut
    #: off; a TypeError for a wrong result.
    error: BaseException

    def __str__(self) -> str:
        who = f"plugin {self.plugin}"
        if self.origin != "built-in":
            who += f" ({self.origin})"
        if isinstance(self.error, PluginTimeout):
            return f"{who}: {self.what} {self.error}, stopped at {where_stopped(self.error)}"
        return f"{who}: {self.what} failed: {type(self.error).__name__}: {self.error}"


class PluginFailed(AssertionError):
    """A plugin call failed in a strict harness; the message names the plugin and
    the call, and ``__cause__`` is what the plugin raised."""

    def __init__(self, message: str, failures: list[PluginFailure]) -> None:
        super().__init__(message)
        #: Every failure of the turn that raised this (the first is the cause).
        self.failures = failures


class _Spinning(BaseException):
    """Timers re-arm with no delay for ever. A BaseException, so that it gets out
    of Timers.run_due, which logs and goes on after an Exception."""


class _WatchedGuard(Guard):
    """The real guard, telling the harness about every failed call, and stopping
    timers that would spin for ever."""

    def __init__(
        self, settings: GuardSettings, failed: Callable[[str, str, BaseException], None]
    ) -> None:
        super().__init__(settings)
        self._failed = failed
        self.timer_runs = 0  # at the instant below, in this turn
        self._instant = math.nan

    def run(
        self, name: str, what: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> tuple[Any, BaseException | None]:
        if what.startswith("timer "):
            self._count_timer_run(name, what)
        result, error = super().run(name, what, fn, *args, **kwargs)
        if error is not None:
            self._failed(name, what, error)
        return result, error

    def _count_timer_run(self, name: str, what: str) -> None:
        now = self.clock()
        if now != self._instant:
            self._instant, self.timer_runs = now, 0
        self.timer_runs += 1
        if self.timer_runs > MAX_RUNS_AT_ONE_TIME:
            raise _Spinning(
                f"plugin {name}: {what} ran {MAX_RUNS_AT_ONE_TIME} times at one instant:"
                " it re-arms itself with no delay, and a real server would spin on it for ever"
            )

    def bad_result(self, name: str, what: str, why: str) -> None:
        super().bad_result(name, what, why)
        self._failed(name, what, TypeError(f"returned {why}"))


class ChatClient:
    """One connection to the harness, as a user with nc sees it."""

    def __init__(self, harness: ChatHarness, link: FakeLink) -> None:
        self._harness = harness
        #: What the server sent this connection.
        self.link = link
        #: The hub's record of this connection.
        self.user: User = harness.hub.connect(link)
        self._input = InputBuffer(harness.config.limits.max_line_bytes)
        self._unread: list[str] = []

    def __repr__(self) -> str:
        return f"<ChatClient {self.nick or '?'} {self.link.peer}>"

    @property
    def nick(self) -> str:
        """The user's nickname now ("" until one is chosen)."""
        return self.user.nick

    @property
    def online(self) -> bool:
        """Whether the user is in the chat (has a nickname and has not left)."""
        return self._harness.hub.is_online(self.user)

    @property
    def closed(self) -> bool:
        """Whether the server has closed this connection (a /quit, a kick, a timeout)."""
        return self.link.closed

    def send(self, text: str) -> None:
        """Type ``text`` and press Enter; each line of a multi-line text is a line
        of its own. The server handles it as it would from a socket (the same line
        splitting, length limit and cleaning), then runs the timers due now."""
        if self.link.closed:
            raise AssertionError(f"{self!r} cannot send {text!r}: the server closed it")
        data = text.encode("utf-8")
        self._input.feed(data if data.endswith(b"\n") else data + b"\n")
        hub = self._harness.hub
        with self._harness._turn():
            while not self.link.closed:  # it may quit part-way
                line = self._input.next_line()
                if line is None:
                    break
                if line is OVERLONG:
                    hub.line_too_long(self.user, self._input.max_line_bytes)
                else:
                    hub.receive(self.user, decode_line(line))
            self._harness.timers.run_due()

    def lines(self) -> list[str]:
        """The lines received since the last call, exactly as nc shows them."""
        lines, self._unread = [*self._unread, *self.link.take()], []
        return lines

    @property
    def all_lines(self) -> list[str]:
        """Every line received since the connection was made."""
        return self.link.all_lines

    def leave(self, reason: str = "connection closed") -> None:
        """Close the connection from the user's side, as nc does on Ctrl-D or Ctrl-C
        (others see ``*** alice left (connection closed)``)."""
        with self._harness._turn():
            self.link.close()
            self._harness.hub.disconnect(self.user, reason)

    def _read_through(self, wanted: Callable[[str], bool]) -> list[str] | None:
        """Read the lines up to the first that is ``wanted`` and return them; the
        rest stay unread. None, and nothing read, if no line is."""
        lines = self._unread + self.link.take()
        for i, line in enumerate(lines):
            if wanted(line):
                self._unread = lines[i + 1 :]
                return lines[: i + 1]
        self._unread = lines
        return None


class ChatHarness:
    """A chat server with plugins, users typing, and a clock the test moves."""

    def __init__(
        self,
        plugins: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] = (),
        *,
        builtins: bool = True,
        config: Config | Mapping[str, Mapping[str, Any]] | None = None,
        strict: bool = True,
        entry_points: bool = False,
    ) -> None:
        """Load the plugins and start them.

        :param plugins: plugin files by path (``"plugins.d/roll.py"``; relative
            to the current directory), loaded as drop-in files are, and importable
            modules by name (``"mypkg.roll"``), loaded as the built-ins are. Other
            files in a plugin file's folder are not loaded.
        :param builtins: load chatd's built-in plugins too (help, basics, jumble, fact).
        :param config: the settings, as tables (``{"roll": {"max_dice": 5}}``: what
            chatd.toml would hold) or a :class:`chatd.config.Config`. From tables,
            no plugin folder is scanned and ``[plugins] slow_call_ms`` is a minute
            unless given, so that a slow test machine cannot switch a plugin off.
        :param strict: a plugin failure raises :class:`PluginFailed` (see the module's docstring).
        :param entry_points: load plugins installed through the ``chatd`` entry
            point group too, as ``chatd serve`` does.

        A plugin that cannot be loaded raises: a module's error as it is, a file's
        as PluginFailed naming the file (with strict; else it is in
        :attr:`problems`). A config table no loaded plugin owns is a ConfigError.
        """
        if isinstance(plugins, str | os.PathLike):
            plugins = [plugins]
        #: Whether a plugin failure raises PluginFailed (it may be changed at any time).
        self.strict = strict
        #: Every plugin call that failed, in order.
        self.errors: list[PluginFailure] = []
        modules: list[str] = list(BUILTIN_PLUGINS) if builtins else []
        files: list[Path] = []
        for plugin in plugins:
            if _is_path(plugin):
                files.append(_plugin_file(plugin))
            elif plugin not in modules:
                modules.append(str(plugin))
        self._files = files
        self._modules = tuple(modules)
        self._ports = itertools.count(FIRST_PORT)
        self._closed = False
        self.clock = FakeClock()
        self.timers = Timers(self.clock)
        try:
            #: The loaded plugins: chatd's PluginHost (``.names``, ``.guard``, ``.states``).
            self.plugins = PluginHost(
                self._settings(config), self._modules, entry_points=entry_points
            )
            self.plugins.guard = _WatchedGuard(self.plugins.guard.settings, self._failed)
            #: The hub: who is on and who gets what (for what this kit has no method for).
            self.hub = Hub(
                self.plugins,
                self.timers,
                wire=line_wire,
                clock=self.clock,
                wall=lambda: self.clock() + WALL_OFFSET,
            )
            self.plugins.attach(self.hub)
            #: Plugin files and entry points that failed to load, one line each.
            self.problems: list[str] = list(self.plugins.set.problems)
            if strict and self.problems:
                raise PluginFailed("; ".join(self.problems), [])
            with self._turn():
                self.plugins.startup()
        except BaseException:
            self._forget_modules()
            raise

    # -- the chat ---------------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The settings in force (a plugin reads its own table as ``chat.config``)."""
        return self.hub.config

    def connect(self, peer: str | None = None) -> ChatClient:
        """A new connection that has not chosen a nickname: it has been greeted
        and asked for one (its :meth:`~ChatClient.lines` show that)."""
        address = peer or f"127.0.0.1:{next(self._ports)}"
        with self._turn():
            return ChatClient(self, FakeLink(address))

    def join(self, nick: str, peer: str | None = None) -> ChatClient:
        """A user who connects and chooses ``nick``. Fails (AssertionError, with what
        the server said) unless welcomed; its :meth:`~ChatClient.lines` start after
        the welcome line, so they hold what plugins said to the newcomer."""
        client = self.connect(peer)
        client.send(nick)
        if client._read_through(lambda line: line.startswith(f"*** Welcome, {nick}!")) is None:
            raise AssertionError(f"{nick} was not let in; the server said: {client.all_lines}")
        return client

    def users(self) -> list[str]:
        """The nicknames of everyone in the chat, sorted ignoring case."""
        return self.hub.nicks()

    def advance(self, seconds: float) -> int:
        """Let ``seconds`` pass: every timer due in that time runs at its own time,
        in order, as on a real server (a timer every 10 s runs 6 times in a
        minute). Returns how many timer runs there were."""
        if not seconds >= 0:  # NaN too
            raise ValueError(f"advance() takes seconds >= 0, got {seconds!r}")
        clock, timers = self.clock, self.timers
        target = clock.now + seconds
        ran = 0
        with self._turn():
            while (delay := timers.next_delay()) is not None and clock.now + delay <= target:
                if delay > 0:
                    clock.now += delay
                    while timers.next_delay() not in (0.0, None):  # float rounding fell short
                        clock.now = math.nextafter(clock.now, math.inf)
                ran += timers.run_due()
                self.hub.fanout.flush()
            clock.now = max(clock.now, target)
        return ran

    def reload(
        self, what: str = "all", *, config: Config | Mapping[str, Mapping[str, Any]] | None = None
    ) -> Report:
        """Reload as an operator would (``chatd admin reload WHAT``): ``"plugins"``
        or ``"all"`` load every plugin file again (``chat.state`` is kept), and
        each plugin's ``chatd_reload`` hears ``what``. With ``config``, those
        settings take effect first, as a changed chatd.toml would. Returns the
        reload's report: one line per change, ``.failed`` if anything failed."""
        with self._turn():
            if config is not None:
                settings = self._settings(config)
                check_extra(settings, set(self.plugins.names))
                self.plugins.set_config(settings)
                self.hub.limits_changed()
            if what == "config":
                return self.plugins.run_reload_hooks("config")
            return self.plugins.reload(what)

    def close(self, message: str = SHUTDOWN_MESSAGE) -> None:
        """Stop the server: everyone is told ``message`` and disconnected, and each
        plugin's ``chatd_shutdown`` runs. Safe to call twice."""
        if self._closed:
            return
        try:
            with self._turn():
                self.hub.shutdown(message)
        finally:
            self._closed = True
            self._forget_modules()

    def __enter__(self) -> ChatHarness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- inside -------------------------------------------------------------------------

    def _settings(self, given: Config | Mapping[str, Mapping[str, Any]] | None) -> Config:
        """The Config to run with: ``given`` and the folders of the plugin files,
        with their other files disabled."""
        if isinstance(given, Config):
            config = given
        else:
            tables = {name: dict(values) for name, values in (given or {}).items()}
            tables.setdefault("plugins", {}).setdefault("dirs", [])
            tables["plugins"].setdefault("slow_call_ms", MAX_SLOW_CALL_MS)
            config = from_dict(tables)
        scanned = {config.path(folder).resolve() for folder in config.plugins.dirs}
        folders = [path.parent for path in self._files]
        new = list(dict.fromkeys(folder for folder in folders if folder not in scanned))
        if not new:
            return config
        # A file that would clash with a module's name is left on, so that it is
        # refused with a reason, as chatd serve would refuse it.
        keep = {path.stem for path in self._files} | {m.rpartition(".")[2] for m in self._modules}
        others = [
            path.stem
            for folder in new
            for path in sorted(folder.glob("*.py"))
            if not path.name.startswith("_") and path.stem not in keep
        ]
        plugins = dataclasses.replace(
            config.plugins,
            dirs=[*config.plugins.dirs, *map(str, new)],
            disabled=[*config.plugins.disabled, *others],
        )
        return dataclasses.replace(config, plugins=plugins)

    def _failed(self, name: str, what: str, error: BaseException) -> None:
        origin = self.plugins.set.origins.get(name, "built-in")
        self.errors.append(PluginFailure(name, origin, what, error))

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """One turn of the loop: plugins' calls cut off at their deadline where
        this thread can have one, the fan-out flushed, strict failures raised."""
        if self._closed:
            raise AssertionError("this ChatHarness is closed")
        seen = len(self.errors)
        guard = self.plugins.guard
        assert isinstance(guard, _WatchedGuard), "PluginHost.guard was replaced"
        guard.timer_runs = 0
        armed = _sigalrm_is_free() and guard.deadline.install()
        try:
            yield
            self.hub.fanout.flush()
        except _Spinning as spin:
            raise AssertionError(str(spin)) from None
        finally:
            if armed:
                guard.deadline.uninstall()
        failures = [f for f in self.errors[seen:] if f.what != "chatd_reload"]
        if self.strict and failures:
            more = f" (and {len(failures) - 1} more: see .failures)" if len(failures) > 1 else ""
            raise PluginFailed(f"{failures[0]}{more}", failures) from failures[0].error

    def _forget_modules(self) -> None:
        """Drop the modules the plugin files were imported as, so that the next
        harness imports them afresh and nothing of this one stays in sys.modules."""
        for path in self._files:
            name = DROPIN_MODULE_PREFIX + path.stem
            module = sys.modules.get(name)
            filename = getattr(module, "__file__", None)
            if filename is not None and Path(filename).resolve() == path:
                del sys.modules[name]


#: The type of the ``chat_harness`` fixture: call it as you would ChatHarness.
ChatHarnessFactory: TypeAlias = Callable[..., ChatHarness]


def _is_path(plugin: str | os.PathLike[str]) -> bool:
    """A plugin file (a path, or a name ending in .py or holding a slash), not a module name."""
    if isinstance(plugin, os.PathLike):
        return True
    return plugin.endswith(".py") or "/" in plugin or os.sep in plugin


def _plugin_file(plugin: str | os.PathLike[str]) -> Path:
    """A plugin file's absolute path; an error naming it if chatd would not load it."""
    path = Path(plugin).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"plugin file {plugin}: no such file")
    if path.suffix != ".py" or path.name.startswith("_"):
        raise ValueError(
            f"plugin file {plugin}: chatd loads only *.py files whose names do not start"
            " with _; rename it"
        )
    return path


def _sigalrm_is_free() -> bool:
    """Whether the guard's deadline may take SIGALRM now: in the main thread, when
    nothing else (pytest-timeout, the test itself) has a handler or a timer on it."""
    return (
        hasattr(signal, "SIGALRM")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )
