"""The stall watchdog: a thread that says where the loop is stuck, when it is.

Rule: this thread touches no socket and no hub state. It reads two plain
values the loop writes (when the loop last turned, and which plugin is
running: both single attribute stores, atomic under the GIL), reads the main
thread's stack through ``sys._current_frames()``, and logs. It never stops or
changes anything: the deadline (chatd.core.guard) interrupts calls that return
to the interpreter; this is for the ones that do not (a C extension spinning,
a blocking call the signal cannot interrupt), so the operator learns which
plugin, file and line to blame.

One record per stall, however long it lasts, and one when the loop turns again.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Final

log = logging.getLogger(__name__)

#: Stack frames shown in a stall record: enough to see the plugin's call and
#: what it is doing, few enough for one screen.
STACK_FRAMES: Final = 8


class Watchdog:
    def __init__(
        self,
        stall_seconds: float,
        last_turn: Callable[[], float],
        running: Callable[[], tuple[str, str] | None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``last_turn()`` is when the loop last turned (on ``clock``); ``running()``
        names the plugin whose code runs now and what it does, or None."""
        self.stall_seconds = stall_seconds
        self._last_turn = last_turn
        self._running = running
        self._clock = clock
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stalls = 0  # stalls seen, for tests and operators

    def start(self, main_ident: int | None = None) -> None:
        """Watch the thread ``main_ident`` (default: this one, which runs the loop)."""
        if self.stall_seconds <= 0 or self._thread is not None:
            return
        self._main = main_ident if main_ident is not None else threading.get_ident()
        self._thread = threading.Thread(target=self._watch, name="chatd-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.stall_seconds + 1)
            self._thread = None

    def _watch(self) -> None:
        _block_signals()  # signals are the loop's: never delivered to this thread
        stalled_at: float | None = None
        tick = max(0.05, self.stall_seconds / 4)
        while not self._stop.wait(tick):
            turned = self._last_turn()
            stuck = self._clock() - turned
            if stalled_at is not None and turned != stalled_at:
                log.warning("the loop is turning again after a stall of %.1fs", turned - stalled_at)
                stalled_at = None
            if stalled_at is None and stuck >= self.stall_seconds:
                stalled_at = turned
                self.stalls += 1
                self._report(stuck)

    def _report(self, stuck: float) -> None:
        frame = sys._current_frames().get(self._main or 0)
        running = self._running()
        who = f"plugin {running[0]} ({running[1]})" if running else "no plugin"
        if frame is None:
            log.error("the loop has not turned for %.1fs; %s is running", stuck, who)
            return
        stack = traceback.extract_stack(frame)[-STACK_FRAMES:]
        where = stack[-1]
        log.error(
            "the loop has not turned for %.1fs: %s is running, at %s line %s in %s;"
            " stack (innermost last): %s",
            stuck,
            who,
            where.filename,
            where.lineno,
            where.name,
            " <- ".join(f"{f.filename}:{f.lineno} {f.name}" for f in reversed(stack)),
        )


def _block_signals() -> None:
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
