"""Plugin safety end to end: real plugins that sleep, loop and block, on a real
server process, with real clients (issue 13).

Each test bounds what it waits for; the plugins that never end on their own
are stopped by the server's deadline, and the server process is killed at the
end whatever happens.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

from tests.helpers import LIFTED_LIMITS_TOML, LineClient, ServerProcess, write_plugin

PLUGIN = """
    import signal
    import time

    from chatd import Command, hookimpl

    def nap(ctx, args):
        time.sleep(float(args))
        ctx.reply("rested")

    def spin(ctx, args):
        while True:
            pass

    def stuck(ctx, args):
        # What the deadline cannot stop: code that does not come back to the
        # interpreter (here: a sleep with the deadline's signal blocked).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        try:
            time.sleep(float(args))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
        ctx.reply("unstuck")

    @hookimpl
    def chatd_commands():
        return [Command("nap", nap), Command("spin", spin), Command("stuck", stuck)]
"""


def _serve(tmp_path: Path, plugins: str = "") -> ServerProcess:
    folder = tmp_path / "plugins.d"
    write_plugin(folder, "careless.py", PLUGIN)
    config = tmp_path / "chatd.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = 0\n{LIFTED_LIMITS_TOML}[admin]\nenabled = false\n'
        f'[plugins]\ndirs = ["{folder}"]\n{plugins}'
    )
    return ServerProcess(tmp_path, "--config", str(config))


def _pair(server: ServerProcess) -> tuple[LineClient, LineClient]:
    alice, bob = LineClient(server.address), LineClient(server.address)
    alice.register("alice")
    bob.register("bob")
    alice.expect("*** bob joined")
    return alice, bob


def _stall(bob: LineClient) -> float:
    """How long bob waits for an answer to /who now."""
    started = time.monotonic()
    bob.send("/who")
    bob.expect(re.compile(r"^\*\*\* 2 users in #lobby"))
    return time.monotonic() - started


def test_a_burst_of_slow_commands_costs_at_most_breaker_slow_of_them(tmp_path: Path) -> None:
    server = _serve(tmp_path)
    try:
        alice, bob = _pair(server)
        alice.send_raw(b"/nap 0.2\n" * 10)  # ten in one burst: read in one go
        time.sleep(0.05)  # let the server take the burst before bob asks
        stalled = _stall(bob)
        answers = [
            alice.expect(re.compile(r"^\*\*\* (rested|/nap is switched off)")) for _ in range(10)
        ]
        assert answers[:3] == ["*** rested"] * 3
        assert (
            answers[3:]
            == ["*** /nap is switched off: it failed repeatedly. An operator can turn it back on."]
            * 7
        )
        # Three slow calls (600 ms), then nothing: not the ten (2 s) of before.
        assert stalled < 1.5, stalled
        server.wait_log(re.compile(r"plugin careless switched off: 3 slow calls in 60s"))
        assert _stall(bob) < 0.5
        print(f"burst of 10 x 200 ms: bob stalled {stalled:.2f}s, then {_stall(bob):.3f}s")
    finally:
        server.stop()


def test_an_endless_loop_and_a_long_sleep_cost_call_timeout_once(tmp_path: Path) -> None:
    server = _serve(tmp_path, "call_timeout = 0.5\n")
    try:
        alice, bob = _pair(server)
        for command in ("/spin", "/nap 30"):
            alice.send(command)
            time.sleep(0.05)
            stalled = _stall(bob)
            name = command.split()[0]
            alice.expect(f"*** {name} failed (internal error).")
            assert 0.3 < stalled < 2.0, (command, stalled)
            print(f"{command}: bob stalled {stalled:.2f}s")
        log = server.log
        assert re.search(
            r"plugin careless: /spin for alice still running after 0\.5s,"
            r" stopped at \S+careless\.py line \d+ in spin",
            log,
        ), log
        assert re.search(
            r"/nap for alice still running after 0\.5s, stopped at \S+careless\.py", log
        )
        assert "Traceback" not in log
        # SIGTERM is honoured: control came back to the loop.
        assert server.signal(signal.SIGTERM) == 0
    finally:
        server.stop()


def test_the_watchdog_names_a_stall_the_deadline_cannot_stop(tmp_path: Path) -> None:
    server = _serve(tmp_path, "call_timeout = 0.5\nstall_seconds = 1\n")
    try:
        alice, bob = _pair(server)
        alice.send("/stuck 2.5")
        found = server.wait_log(
            re.compile(
                r"the loop has not turned for \d+\.\ds: plugin careless \(/stuck\) is running,"
                r" at \S+careless\.py line (\d+) in stuck"
            )
        )
        assert int(found.group(1)) > 0
        alice.expect("*** /stuck failed (internal error).")  # the deadline, once it could
        server.wait_log(re.compile(r"the loop is turning again after a stall of"))
        assert _stall(bob) < 0.5
    finally:
        server.stop()


def test_an_idle_server_is_not_a_stalled_one(tmp_path: Path) -> None:
    """Asleep in select() for longer than stall_seconds, the loop is waiting,
    not stuck: no stall is logged (it was, at ERROR, every idle pause)."""
    server = _serve(tmp_path, "stall_seconds = 1\n")
    try:
        _, bob = _pair(server)
        deadline = time.monotonic() + 2.5  # idle for 2.5 stall_seconds
        while time.monotonic() < deadline:
            assert "has not turned" not in server.log, server.log
            time.sleep(0.1)
        assert _stall(bob) < 0.5
        assert "has not turned" not in server.log and "stall" not in server.log
    finally:
        server.stop()
