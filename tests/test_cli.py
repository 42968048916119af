"""The ``chatd`` command as a user runs it: a real process, real signals, real sockets."""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import LineClient, ServerProcess, run_chatd


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path)
    yield server
    server.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_tells_clients_flushes_and_exits_zero(tmp_path: Path, signum: int) -> None:
    server = ServerProcess(tmp_path)
    try:
        alice = LineClient(server.address)
        alice.register("alice")
        bob = LineClient(server.address)
        bob.register("bob")
        assert server.signal(signum) == 0
        for client in (alice, bob):
            assert client.wait_closed()[-1] == "*** Server shutting down. Goodbye!"
        assert "Traceback" not in server.log
        assert f"received {signal.Signals(signum).name}" in server.log
    finally:
        server.stop()


def test_the_log_says_joins_leaves_and_nick_changes(proc: ServerProcess) -> None:
    alice = LineClient(proc.address)
    alice.register("alice")
    alice.send("/nick alicia")
    alice.expect("*** You are now known as alicia.")
    alice.send("/quit bye")
    alice.wait_closed()
    proc.wait_log(re.compile(r"alice joined from 127\.0\.0\.1:\d+"))
    proc.wait_log(re.compile(r"alice is now known as alicia"))
    proc.wait_log(re.compile(r"alicia left \(Quit: bye\)"))


def test_the_config_file_sets_host_and_port(tmp_path: Path) -> None:
    with socket.socket() as probe:  # an ephemeral port that is free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "chatd.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\n')
    server = ServerProcess(tmp_path, "--config", str(config))
    try:
        assert server.address == ("127.0.0.1", port)
        LineClient(server.address).register("alice")
    finally:
        server.stop()


def test_command_line_overrides_are_checked_like_the_file() -> None:
    result = run_chatd("serve", "--port", "-1")
    assert result.returncode == 2
    assert result.stderr.strip() == "chatd: [server] port must be at least 0, got -1"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\npotr = 7777\n", "[server] unknown key 'potr'; known keys: host, port"),
        ('[server]\nport = "7777"\n', "[server] port must be an integer, got '7777'"),
        ("[server]\nport = 70000\n", "[server] port must be at most 65535, got 70000"),
        ("[sever]\nport = 1\n", "unknown table [sever]: no setting or loaded plugin has that name"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_a_bad_config_is_one_line_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "chatd.toml"
    config.write_text(toml)
    result = run_chatd("serve", "--config", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"chatd: {config}")
    assert message in result.stderr


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    result = run_chatd("serve", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"chatd: {tmp_path / 'nope.toml'}: no such file"


def test_a_port_in_use_is_one_line(proc: ServerProcess) -> None:
    host, port = proc.address
    result = run_chatd("serve", "--host", host, "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"chatd: cannot listen for chat on {host}:{port}: Address already in use (see [server])"
    )


def test_an_irc_port_in_use_is_one_line_naming_irc(proc: ServerProcess) -> None:
    host, port = proc.address  # taken: by the nc listener, which makes no difference
    result = run_chatd("serve", "--port", "0", "--irc-host", host, "--irc-port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"chatd: cannot listen for IRC on {host}:{port}: Address already in use (see [irc])"
    )


def test_python_m_chatd_is_chatd() -> None:
    result = run_chatd("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"chatd \d+\.\d+\.\d+\n", result.stdout)


def test_a_bad_words_file_stops_startup_naming_key_and_file(tmp_path: Path) -> None:
    config = tmp_path / "chatd.toml"
    config.write_text('[jumble]\nwords_file = "missing.txt"\n')
    result = run_chatd("serve", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"chatd: plugin jumble: [jumble] words_file: {tmp_path / 'missing.txt'}: no such file"
    )


def test_sighup_reloads_config_and_dropins_without_dropping_anyone(tmp_path: Path) -> None:
    dropins = tmp_path / "plugins.d"
    dropins.mkdir()
    config = tmp_path / "chatd.toml"
    config.write_text('[server]\nhost = "127.0.0.1"\nport = 0\n')
    server = ServerProcess(tmp_path, "--config", str(config))
    try:
        alice = LineClient(server.address)
        alice.register("alice")
        alice.send("/shout hi")
        alice.expect("*** Unknown command /shout. Type /help for the list of commands.")
        (dropins / "shout.py").write_text(
            "from chatd import Command, hookimpl\n"
            "@hookimpl\n"
            "def chatd_commands():\n"
            "    return [Command('shout', lambda ctx, a: ctx.reply(a.upper()))]\n"
        )
        config.write_text(config.read_text() + "[limits]\nmax_per_ip = 7\n")
        server.proc.send_signal(signal.SIGHUP)
        server.wait_log(
            re.compile(r"reload: plugins: 4 -> 5 loaded, commands 26 -> 27 \(\+/shout\)")
        )
        server.wait_log(re.compile(r"reload: config: .*: changed \[limits\] max_per_ip\s*$", re.M))
        alice.send("/shout hi")
        alice.expect("*** HI")
        # A broken file keeps the settings in force, and the server goes on.
        config.write_text("[limits]\nmax_per_ip = -1\n")
        server.proc.send_signal(signal.SIGHUP)
        server.wait_log(
            re.compile(r"config: reload failed, kept the old settings: .*max_per_ip must be at")
        )
        alice.send("/shout still here")
        alice.expect("*** STILL HERE")
    finally:
        server.stop()


def test_a_host_that_does_not_resolve_is_one_line_saying_so(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 6761); the admin socket would go under tmp_path
    result = run_chatd(
        "serve", "--host", "no.such.host.invalid", "--port", "0",
        env={"XDG_RUNTIME_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "chatd: cannot listen for chat on no.such.host.invalid:0: the host name could not be"
        " resolved;"
        " set [server] host to an address of this machine"
    )


# -- issue 12: a config file that cannot be read, a list file that is no file --


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'[server]\nhost = "caf\xe9"\n', "not UTF-8 (byte 20); save it as UTF-8"),
        (
            b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
            "not valid TOML for chatd: arrays or tables nested too deeply",
        ),
    ],
    ids=["not-utf8", "nested-100000"],
)
@pytest.mark.parametrize(
    ("command", "prefix"),
    [(["serve"], "chatd"), (["admin", "users"], "chatd admin"), (["connect"], "chatd")],
    ids=["serve", "admin", "connect"],
)
def test_a_config_chatd_cannot_read_is_one_line_and_status_2(
    tmp_path: Path, command: list[str], prefix: str, content: bytes, message: str
) -> None:
    config = tmp_path / "chatd.toml"
    config.write_bytes(content)
    result = run_chatd(
        command[0], "--config", str(config), *command[1:], env={"XDG_RUNTIME_DIR": str(tmp_path)}
    )
    assert "Traceback" not in result.stderr
    assert result.stderr == f"{prefix}: {config}: {message}\n"
    assert result.returncode == 2


def test_a_words_file_that_is_a_fifo_stops_startup_at_once(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "words.fifo"
    os.mkfifo(fifo)
    config = tmp_path / "chatd.toml"
    config.write_text('[server]\nport = 0\n[jumble]\nwords_file = "words.fifo"\n')
    # run_chatd's deadline bounds the test: a server that waits on the FIFO is killed.
    result = run_chatd("serve", "--config", str(config), env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert result.stderr == (
        f"chatd: plugin jumble: [jumble] words_file: {fifo}: is a FIFO (named pipe),"
        " not a regular file; name a plain text file\n"
    )
    assert result.returncode == 2


def _free_port() -> int:
    """An ephemeral port that nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_connect_takes_a_lone_number_for_the_port(tmp_path: Path) -> None:
    port = _free_port()
    result = run_chatd("connect", str(port), "--nick", "carol")
    assert result.stderr == f"chatd connect: cannot reach 127.0.0.1:{port}: Connection refused\n"
    assert result.returncode == 1
    # the host then comes from --config, as it does with no argument at all
    config = tmp_path / "chatd.toml"
    config.write_text('[server]\nhost = "127.0.0.2"\nport = 1\n')
    result = run_chatd("connect", str(port), "--config", str(config))
    assert result.stderr.startswith(f"chatd connect: cannot reach 127.0.0.2:{port}: ")
    assert result.stderr.count("\n") == 1 and result.returncode == 1


def test_connect_host_alone_and_host_and_port_still_work(tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "chatd.toml"
    config.write_text(f'[server]\nhost = "127.0.0.2"\nport = {port}\n')
    result = run_chatd("connect", "127.0.0.1", "--config", str(config))
    assert result.stderr == f"chatd connect: cannot reach 127.0.0.1:{port}: Connection refused\n"
    result = run_chatd("connect", "127.0.0.1", str(port), "--config", str(config))
    assert result.stderr == f"chatd connect: cannot reach 127.0.0.1:{port}: Connection refused\n"
    assert result.returncode == 1


@pytest.mark.parametrize(
    "args",
    [("127.0.0.1", "abc"), ("127.0.0.1", "0"), ("127.0.0.1", "65536"), ("99999",), ("::1", "-5")],
)
def test_connect_with_a_bad_port_is_one_line(args: tuple[str, ...]) -> None:
    result = run_chatd("connect", *args)
    bad = args[-1]
    assert result.stderr == (
        f"chatd: connect: port {bad} is not a TCP port; give a number from 1 to 65535\n"
    )
    assert result.returncode == 2


def test_connect_to_a_host_that_does_not_resolve_says_so() -> None:
    result = run_chatd("connect", "no-such-host.invalid", "7777")
    assert result.stderr == (
        "chatd connect: cannot resolve the host name 'no-such-host.invalid';"
        " check it, or give an IP address\n"
    )
    assert result.returncode == 1
