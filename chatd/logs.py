"""The server's log: plain one-line records on stderr, and a write that fails is never fatal.

Rule: a log record is one line, ``2026-12-01 10:32:05 INFO message``, whatever
the message holds: control characters (a newline in a kick reason, an escape in
a nickname attempt) are shown escaped, never written, so no one can forge a
record or drive the operator's terminal, and a long message is cut to
MAX_MESSAGE_CHARS. A traceback follows its record on lines of its own, each
indented. Formatting costs time linear in the message, so a 64 KB quit reason
costs microseconds (rich's wrapping of one long word, which this replaces for
the server, was quadratic: 36 s for 64 KB, with the whole chat waiting).

Writing never raises: stderr may be a pipe whose reader has gone (``chatd serve
2>&1 | tee log``, then Ctrl-C kills tee first), and the server must still say
goodbye to every client and exit 0. The first failed write turns stderr into
/dev/null for the rest of the run. rich stays for the consoles (chatd admin,
chatd connect), which are programs a person watches.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from typing import Final, TextIO

#: The longest message a record shows, in characters; the rest is cut and
#: counted. Long enough for any line chatd logs about itself (a reload report,
#: a plugin's error), short enough that a 64 KB line from a user or an operator
#: is one readable record, not a screenful.
MAX_MESSAGE_CHARS: Final = 1000

FORMAT: Final = "%(asctime)s %(levelname)s %(message)s"
DATE_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    return named or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as part of one log line: controls escaped, cut to ``limit`` characters."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    if text.isprintable():
        return text
    return _UNSAFE.sub(_escape, text)


class PlainFormatter(logging.Formatter):
    """One line a record; a traceback on indented lines after it."""

    def __init__(self) -> None:
        super().__init__(FORMAT, DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        # Not the base class's format(): it caches the traceback's text on the
        # record, and another handler's cache (pytest's, say) must not be used.
        record.message = one_line(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        if record.exc_info:
            text += "\n" + _indent(self.formatException(record.exc_info))
        if record.stack_info:
            text += "\n" + _indent(record.stack_info)
        return text


def _indent(text: str) -> str:
    """Lines that follow a record: indented, so none can pass for a record."""
    return "\n".join("    " + _UNSAFE.sub(_escape, line) for line in text.splitlines())


class SafeStreamHandler(logging.StreamHandler[TextIO]):
    """A stderr handler whose failing write costs only the log, never the server."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.broken = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.broken:
            return
        try:
            text = self.format(record)
        except Exception as exc:  # a bad call ("%d" given a str): that record only
            text = one_line(
                f"{logging.getLevelName(record.levelno)} unloggable record from {record.name}"
                f" ({type(exc).__name__}: {exc}): {record.msg!r} % {record.args!r}"
            )
        try:
            self.stream.write(text + self.terminator)
            self.flush()
        except RecursionError:
            raise
        except Exception:  # the stream is gone: stop writing, quietly
            self._give_up()

    def flush(self) -> None:
        if self.broken:
            return
        try:
            super().flush()
        except Exception:
            self._give_up()

    def _give_up(self) -> None:
        """The log cannot be written (its reader is gone): stop trying, quietly."""
        self.broken = True
        silence_stderr()


def silence_stderr() -> None:
    """Point file descriptor 2 at /dev/null, so no later write to stderr (this
    log, a warning, Python's final flush at exit) fails or ends the process."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    with contextlib.suppress(Exception):
        # What Python's own stderr object still holds would fail at exit: drop it.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def setup(level: str | int) -> SafeStreamHandler:
    """Send every record at ``level`` or above to stderr, one plain line each."""
    handler = SafeStreamHandler()
    handler.setFormatter(PlainFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.raiseExceptions = False  # a record that fails to format is dropped, not printed
    return handler
