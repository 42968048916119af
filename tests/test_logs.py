"""The server's log: one plain line a record, bounded, escaped, and never fatal
(issue 12, items 4 and 17)."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chatd import logs
from tests.helpers import DEFAULT_SERVE_ARGS, WAIT, LineClient, ServerProcess, serve_args

RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


@contextmanager
def _plain_log(name: str) -> Iterator[tuple[logging.Logger, io.StringIO, logs.SafeStreamHandler]]:
    """A logger whose records go, formatted as the server's, to a string."""
    stream = io.StringIO()
    handler = logs.SafeStreamHandler(stream)
    handler.setFormatter(logs.PlainFormatter())
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)


def _record(message: str, *args: object, exc: bool = False) -> str:
    with _plain_log("tests.logs") as (logger, stream, _):
        if exc:
            try:
                raise ValueError("bad\nvalue")
            except ValueError:
                logger.exception(message, *args)
        else:
            logger.warning(message, *args)
    return stream.getvalue()


def test_a_record_is_one_line_with_its_controls_escaped() -> None:
    text = _record("%s left (%s)", "alice", "Quit: bye\n2026-01-01 00:00:00 ERROR forged\x1b[2J")
    assert text.count("\n") == 1
    assert RECORD.match(text)
    assert text.endswith(
        "WARNING alice left (Quit: bye\\n2026-01-01 00:00:00 ERROR forged\\x1b[2J)\n"
    )


def test_a_long_message_is_cut_to_the_bound() -> None:
    text = _record("quit reason: %s", "x" * 65_000)
    (line,) = text.splitlines()
    assert len(line) < logs.MAX_MESSAGE_CHARS + 100
    assert line.endswith(
        f"... ({65_000 + len('quit reason: ') - logs.MAX_MESSAGE_CHARS} more characters)"
    )


def test_a_traceback_follows_its_record_indented() -> None:
    first, *rest = _record("plugin %s failed", "roll", exc=True).splitlines()
    assert RECORD.match(first) and first.endswith("ERROR plugin roll failed")
    assert rest and all(line.startswith("    ") for line in rest)
    # The exception's own newline starts a line, indented like the rest, so
    # it can't pass for a record.
    assert rest[-2:] == ["    ValueError: bad", "    value"]
    assert not any(RECORD.match(line) for line in rest)


def test_a_stream_that_fails_is_dropped_quietly() -> None:
    class Gone(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    handler = logs.SafeStreamHandler(Gone())
    handler.setFormatter(logs.PlainFormatter())
    saved = os.dup(2), sys.stderr
    try:
        handler.emit(logging.makeLogRecord({"msg": "hello", "levelno": logging.INFO}))
        assert handler.broken
        handler.emit(logging.makeLogRecord({"msg": "again", "levelno": logging.INFO}))
    finally:  # silence_stderr() pointed fd 2 at /dev/null: give pytest its stderr back
        os.dup2(saved[0], 2)
        os.close(saved[0])
        sys.stderr = saved[1]


def _long_quit_config(tmp_path: Path) -> Path:
    config = tmp_path / "chatd.toml"
    config.write_text(
        '[server]\nhost = "127.0.0.1"\nport = 0\n'
        "[limits]\nmax_line_bytes = 65536\nflood_rate = 0\nmax_per_ip = 0\n"
        "[admin]\nenabled = false\n"
    )
    return config


def test_a_65_kb_quit_reason_costs_nobody_a_stall(tmp_path: Path) -> None:
    # Before: rich wrapped the log record of the leave, one long word, in
    # quadratic time: 36 s during which nobody was served.
    server = ServerProcess(tmp_path, "--config", str(_long_quit_config(tmp_path)))
    try:
        alice, bob = LineClient(server.address), LineClient(server.address)
        alice.register("alice")
        bob.register("bob")
        reason = "z" * 65_000
        alice.send(f"/quit {reason}")
        bob.expect(f"*** alice left (Quit: {reason})", wait=WAIT)
        bob.send("/who")
        bob.expect("*** 1 user in #lobby: bob")
        log_lines = server.log.splitlines()
        assert all(RECORD.match(line) or line.startswith("    ") for line in log_lines), log_lines
        assert all(len(line) < logs.MAX_MESSAGE_CHARS + 100 for line in log_lines)
        assert any(line.endswith(" more characters)") for line in log_lines)
    finally:
        server.stop()


def test_a_log_reader_that_goes_away_does_not_take_the_server_down(tmp_path: Path) -> None:
    # `chatd serve 2>&1 | tee log`, then Ctrl-C: tee dies first, and every log
    # write after that fails with EPIPE.
    read_end, write_end = os.pipe()
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatd", "serve", *serve_args(DEFAULT_SERVE_ARGS)],
        stdin=subprocess.DEVNULL,
        stdout=write_end,
        stderr=write_end,
        env=env,
    )
    os.close(write_end)
    try:
        seen = b""
        while not (found := re.search(rb"listening for chat on 127\.0\.0\.1:(\d+)\n", seen)):
            chunk = os.read(read_end, 4096)
            assert chunk, seen
            seen += chunk
        address = ("127.0.0.1", int(found.group(1)))
        alice = LineClient(address)
        alice.register("alice")
        os.close(read_end)  # the reader has gone
        read_end = -1
        bob = LineClient(address)
        bob.register("bob")  # its join is logged: the first write that fails
        bob.send("still served")
        alice.expect("<bob> still served")
        proc.send_signal(signal.SIGINT)
        assert "*** Server shutting down. Goodbye!" in alice.wait_closed()
        assert proc.wait(WAIT) == 0
    finally:
        if read_end >= 0:
            os.close(read_end)
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)


def test_a_record_that_cannot_be_formatted_costs_only_itself() -> None:
    # Found in review: ctx.log.info("%d items", "x") silenced the whole log.
    with _plain_log("tests.logs.bad") as (logger, stream, handler):
        logger.warning("%d items", "x")
        logger.warning("still logging")
    first, second = stream.getvalue().splitlines()
    assert "unloggable record from tests.logs.bad" in first and "'%d items'" in first
    assert second.endswith("WARNING still logging") and not handler.broken


def test_unicode_line_separators_are_escaped_readably() -> None:
    assert logs.one_line("a\u2028b\x85c\x1b") == "a\\u2028b\\x85c\\x1b"
