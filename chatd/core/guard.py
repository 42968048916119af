"""Plugin safety: every plugin call timed, counted, cut off at a deadline, and a
circuit breaker that switches off a plugin that keeps failing.

Rule: plugin code runs only through :meth:`Guard.run`, which never raises
whatever the plugin does (an exception, ``sys.exit()``, running past its
deadline): it returns the result or the error, and the caller decides what the
user sees. Each plugin has a :class:`PluginRecord` with its counters and its
state:

    on --(breaker_slow slow calls, or breaker_errors errors, in breaker_window s)--> switched off
    on --(operator: plugin off)--> off
    off, switched off --(operator: plugin on; or a reload loads a new version)--> on

A switched-off or off plugin's commands answer that they are switched off and
its hooks are skipped; its ``chat.state`` is kept.

The deadline (``call_timeout``) is a real-time interval timer armed around the
outermost plugin call: its SIGALRM handler raises :class:`PluginTimeout` in
the main thread, between two bytecodes of whatever the plugin is doing, and a
blocking call (a sleep, a read) is interrupted by the signal itself. The
handler never raises in chatd's own code: while a plugin is inside chatd (a
``ctx.reply`` running the hub), the deadline is masked, and a timeout that
falls due then is raised as soon as control is back in the plugin. Signal
handlers can only be set in the main thread, so a server run in another thread
(as some tests do) times and counts calls but cannot cut one off; the stall
watchdog (chatd.core.watchdog) still names a stuck one.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final

from chatd.core import plugincall

log = logging.getLogger(__name__)

#: What a plugin may raise without taking the server down: anything at all,
#: ``sys.exit()``, KeyboardInterrupt, asyncio.CancelledError and a class of its
#: own deriving from BaseException included. The server's own shutdown never
#: travels as an exception (SIGINT and SIGTERM only wake the loop), so nothing
#: a plugin raises can be the server's.
PLUGIN_FAILURES: Final = (BaseException,)

ON: Final = "on"
OFF: Final = "off"  # by an operator
SWITCHED_OFF: Final = "switched off"  # by the breaker


#: When the deadline falls due in chatd's own code, it tries again this soon.
RETRY_SECONDS: Final = 0.01
#: chatd's own code, where the deadline never raises: everything in the package
#: but the built-in plugins, which are plugins like any other.
_CHATD_DIR: Final = os.path.dirname(os.path.dirname(__file__)) + os.sep
_PLUGINS_DIR: Final = os.path.join(_CHATD_DIR, "plugins") + os.sep
_BOUNDARY: Final = plugincall.__file__


class PluginTimeout(BaseException):
    """A plugin call ran past ``[plugins] call_timeout``. A BaseException, so a
    plugin's own ``except Exception`` cannot swallow it."""


@dataclass(frozen=True)
class GuardSettings:
    """The ``[plugins]`` settings the guard reads (see chatd.config)."""

    slow_call_ms: float = 100
    breaker_window: float = 60
    breaker_slow: int = 3
    breaker_errors: int = 5
    call_timeout: float = 2.0


class PluginRecord:
    """One plugin's counters and state, for the breaker and for operators."""

    __slots__ = (
        "_errors_at",
        "_slow_at",
        "calls",
        "errors",
        "name",
        "slow",
        "slowest",
        "slowest_what",
        "state",
        "why",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = ON
        self.why = ""  # why it is switched off
        self.calls = 0
        self.errors = 0
        self.slow = 0
        self.slowest = 0.0  # seconds
        self.slowest_what = ""
        # When the recent slow calls and errors happened: at most as many as
        # trip the breaker are kept, so the record's size is bounded.
        self._slow_at: deque[float] = deque()
        self._errors_at: deque[float] = deque()

    def snapshot(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "slow_calls": self.slow,
            "slowest_ms": round(self.slowest * 1000, 1),
            "slowest": self.slowest_what,
            "state": self.state,
            "why": self.why,
        }


class Deadline:
    """A SIGALRM timer around the outermost plugin call (see the module's docstring)."""

    def __init__(self) -> None:
        self.installed = False
        self._depth = 0  # plugin calls in progress (nested: a plugin's say runs filters)
        self._seconds = 0.0
        self._previous: Any = None

    def install(self) -> bool:
        """Take SIGALRM (main thread only); False, and the deadline is off, elsewhere."""
        if self.installed:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        self._previous = signal.signal(signal.SIGALRM, self._fire)
        self.installed = True
        return True

    def uninstall(self) -> None:
        if self.installed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous or signal.SIG_DFL)
            self.installed = False

    def enter(self, seconds: float) -> None:
        self._depth += 1
        if self._depth == 1 and self.installed and seconds > 0:
            self._seconds = seconds
            signal.setitimer(signal.ITIMER_REAL, seconds)

    def leave(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self.installed:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        if not self._depth:
            return  # the call had just ended: nothing to stop
        if _in_chatd(frame):
            # Never in chatd's own code (a plugin's ctx.reply running the hub):
            # try again in a moment, when control is likely back in the plugin.
            signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
            return
        # Again soon, in case the plugin swallows this (a bare except:).
        signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS * 10)
        raise PluginTimeout(f"still running after {self._seconds:g}s")


def where_stopped(error: BaseException) -> str:
    """Where a PluginTimeout interrupted the plugin: "plugins.d/x.py line 10 in spin"."""
    skip = (__file__, _BOUNDARY)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename not in skip]
    if not frames:
        return "an unknown place"
    last = frames[-1]
    return f"{last.filename} line {last.lineno} in {last.name}"


def _in_chatd(frame: FrameType | None) -> bool:
    """Whether chatd's own code is running at ``frame``, or called what is: walk
    out to the plugin call (chatd.core.plugincall's frame) and look for it."""
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename == _BOUNDARY:
            return False  # reached the plugin call: nothing of ours in between
        if filename.startswith(_CHATD_DIR) and not filename.startswith(_PLUGINS_DIR):
            return True  # the guard itself, or the hub a plugin called
        frame = frame.f_back
    return False


class Guard:
    """Runs plugin code: times it, counts it, cuts it off, and trips the breaker."""

    def __init__(
        self,
        settings: GuardSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings = settings or GuardSettings()
        self.clock = clock  # for the breaker's window (injectable in tests)
        self.timer = timer  # for how long a call took
        self.deadline = Deadline()
        self.records: dict[str, PluginRecord] = {}
        #: The plugin whose code is running now, and what it is doing (for the
        #: stall watchdog, which reads it from its own thread).
        self.current: tuple[str, str] | None = None

    def record(self, name: str) -> PluginRecord:
        rec = self.records.get(name)
        if rec is None:
            rec = self.records[name] = PluginRecord(name)
        return rec

    def enabled(self, name: str) -> bool:
        rec = self.records.get(name)
        return rec is None or rec.state == ON

    def fresh(self, name: str) -> None:
        """A new version of the plugin was loaded: it starts on, with clean counters."""
        self.records.pop(name, None)

    def forget(self, keep: set[str]) -> None:
        """Drop the records of plugins no longer loaded."""
        for name in [n for n in self.records if n not in keep]:
            del self.records[name]

    def switch(self, name: str, on: bool) -> PluginRecord:
        """An operator turns a plugin on or off."""
        rec = self.record(name)
        rec.state = ON if on else OFF
        rec.why = "" if on else "turned off by an operator"
        if on:
            rec._slow_at.clear()
            rec._errors_at.clear()
        log.warning("plugin %s: %s by an operator", name, "turned on" if on else "turned off")
        return rec

    def run(
        self, name: str, what: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> tuple[Any, BaseException | None]:
        """Call ``fn(*args, **kwargs)`` as plugin ``name`` doing ``what`` ("/roll",
        "chatd_message").

        Returns ``(result, error)``: ``error`` is what it raised (PluginTimeout
        when it ran out of time), or None. Never raises.
        """
        outer = self.current
        self.current = (name, what)
        deadline = self.deadline
        started = self.timer()
        error: BaseException | None = None
        result: Any = None
        deadline.enter(self.settings.call_timeout)
        try:
            result = plugincall.call(fn, args, kwargs)
        except PLUGIN_FAILURES as exc:  # PluginTimeout included
            error = exc
        finally:
            deadline.leave()
            self.current = outer
        self._account(name, what, self.timer() - started, error)
        return result, error

    def bad_result(self, name: str, what: str, why: str) -> None:
        """A plugin returned something its hook does not allow: an error like any other."""
        log.error("plugin %s: %s returned %s", name, what, why)
        self._count_error(self.record(name), what)

    def _account(self, name: str, what: str, took: float, error: BaseException | None) -> None:
        rec = self.record(name)
        rec.calls += 1
        if took > rec.slowest:
            rec.slowest, rec.slowest_what = took, what
        settings = self.settings
        if took * 1000 > settings.slow_call_ms:
            rec.slow += 1
            log.warning(
                "plugin %s: %s was slow: %.0f ms (slow_call_ms is %g)",
                name,
                what,
                took * 1000,
                settings.slow_call_ms,
            )
            if _recent(rec._slow_at, self.clock(), settings) >= settings.breaker_slow:
                self._trip(
                    rec, f"{settings.breaker_slow} slow calls in {settings.breaker_window:g}s"
                )
        if error is not None:
            self._count_error(rec, what)

    def _count_error(self, rec: PluginRecord, what: str) -> None:
        rec.errors += 1
        settings = self.settings
        if _recent(rec._errors_at, self.clock(), settings) >= settings.breaker_errors:
            self._trip(rec, f"{settings.breaker_errors} errors in {settings.breaker_window:g}s")

    def _trip(self, rec: PluginRecord, why: str) -> None:
        if rec.state != ON:
            return
        rec.state = SWITCHED_OFF
        rec.why = why
        log.error(
            "plugin %s switched off: %s; `chatd admin plugin on %s` turns it back on",
            rec.name,
            why,
            rec.name,
        )


def _recent(times: deque[float], now: float, settings: GuardSettings) -> int:
    """Note one more event at ``now``; how many fell in the breaker's window."""
    times.append(now)
    horizon = now - settings.breaker_window
    while times and times[0] <= horizon:
        times.popleft()
    bound = max(settings.breaker_slow, settings.breaker_errors)
    while len(times) > bound:
        times.popleft()
    return len(times)
