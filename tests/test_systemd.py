"""chatd as a systemd service: the unit in contrib/ passes `systemd-analyze
verify` (skipped, saying why, where Debian's systemd is not installed), and a
real `chatd serve` speaks the sd_notify protocol to $NOTIFY_SOCKET: READY=1
once bound, RELOADING=1 and READY=1 around a SIGHUP, STOPPING=1 at SIGTERM."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.core.reactor import notify_service
from tests.helpers import WAIT, ServerProcess

UNIT = Path(__file__).resolve().parent.parent / "contrib" / "chatd.service"


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """What systemd listens on: a datagram socket, named in $NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(WAIT)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def _told(sock: socket.socket) -> dict[str, str]:
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())


def test_the_unit_file_is_one_systemd_accepts(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze here (apt-get install systemd)")
    chatd = Path(sys.executable).with_name("chatd")
    assert chatd.exists(), chatd
    text = UNIT.read_text()
    assert "ExecStart=/opt/chatd/bin/chatd serve" in text
    # Checked as installed: verify wants the program it starts to exist.
    unit = tmp_path / "chatd.service"
    unit.write_text(text.replace("/opt/chatd/bin/chatd", str(chatd)))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=WAIT * 3
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


def test_the_unit_asks_for_what_the_readme_promises() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=chatd",
        "RuntimeDirectory=chatd",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LimitNOFILE=16384",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line


def test_a_served_chatd_says_ready_reloading_and_stopping(
    tmp_path: Path, listener: socket.socket
) -> None:
    server = ServerProcess(tmp_path)
    try:
        ready = _told(listener)
        assert ready["READY"] == "1"
        assert ready["MAINPID"] == str(server.proc.pid)
        assert ready["STATUS"].startswith(f"serving chat 127.0.0.1:{server.address[1]}")
        server.proc.send_signal(signal.SIGHUP)
        assert _told(listener) == {"RELOADING": "1"}
        assert _told(listener)["READY"] == "1"
        assert server.signal(signal.SIGTERM) == 0
        assert _told(listener) == {"STOPPING": "1"}
    finally:
        server.stop()


def test_an_abstract_notify_socket_is_reached_and_none_is_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"chatd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(WAIT)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify_service("READY=1")
        assert sock.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not notify_service("READY=1")  # not run by systemd: nothing to tell
    monkeypatch.setenv("NOTIFY_SOCKET", os.devnull)  # not a socket: logged, never raised
    assert not notify_service("READY=1")
