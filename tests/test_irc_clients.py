"""Real IRC clients from Debian in the same chat as an nc user: weechat-headless
and irssi, each against a real server on ephemeral ports.

What is checked is what the client *shows*, read from its log files (which hold
what its windows print), as well as what the nc user reads. One conversation,
:func:`converse`, runs against each client: join, talk and /me both ways, a
private message both ways, a plugin command (to the service nick and as a raw
verb), a nick change, a part, a rejoin and a quit.

How each client is driven, and the traps behind each choice:

* **weechat-headless** reads no input at all (no terminal, no stdin); it is
  driven through its ``fifo`` plugin (Debian's weechat-plugins: weechat-core has
  no fifo), by one writer held open for the whole run, so its lines arrive in
  order. ``-P irc,logger,fifo`` loads nothing else.
* **irssi** runs in tmux on a private socket (``-L``, so ``kill-server`` only
  ever ends our own tmux server, and ``-f /dev/null``: no user's tmux.conf),
  typed into with ``send-keys``.
* Both clients' flood queues are off (weechat's ``anti_flood_prio_*``, irssi's
  per-network ``cmdspeed``/``cmdmax``): with them on, lines go out seconds apart
  and the last ones are lost at /quit.
* A client's next line is typed only once the previous one's effect shows *in
  that client*, not only at the nc user: the nc user reads a PART before the
  client has read its echo, and a /join typed then is taken as "already there"
  and never sent.

Every wait polls with a deadline; every process started here is ended in a
``finally``, whatever the test's outcome.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from chatd.server import Server
from tests.certs import Certificate
from tests.helpers import WAIT, LineClient, make_config, running_server, wait_until

#: The nc user every client talks with.
NC_NICK = "ana"


def need(program: str, package: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} not installed (apt-get install {package})")


def client_env(home: Path) -> dict[str, str]:
    """The environment a client runs in: its home under tmp_path (so no user's
    config is read and nothing is written outside the test), no outer tmux."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    return {**env, "HOME": str(home), "LANG": "C.UTF-8"}


class Logs:
    """A client's log files (one per window), read afresh at every look."""

    def __init__(self, folder: Path, suffix: str) -> None:
        self.folder = folder
        self.suffix = suffix

    def text(self, name: str) -> str:
        path = self.folder / f"{name}{self.suffix}"
        return path.read_text(errors="replace") if path.exists() else ""

    def everything(self) -> str:
        if not self.folder.exists():
            return ""
        return "".join(
            f"== {path.name}\n{path.read_text(errors='replace')}"
            for path in sorted(self.folder.rglob(f"*{self.suffix}"))
        )

    def count(self, pattern: str, name: str | None = None) -> int:
        """Lines matching ``pattern`` in log ``name``, or in all of them."""
        text = self.everything() if name is None else self.text(name)
        return len(re.findall(pattern, text, re.MULTILINE))

    def wait_for(self, pattern: str, name: str | None = None, times: int = 1) -> None:
        """Wait until ``pattern`` (a regex, one line) shows ``times`` times."""
        where = f"log {name}" if name else "the logs"
        try:
            wait_until(lambda: self.count(pattern, name) >= times, what=pattern)
        except AssertionError:
            raise AssertionError(f"{where} never showed {pattern!r} {times}x") from None


@dataclass(frozen=True)
class Looks:
    """How a client prints each kind of line: regexes over one log line, with
    ``{nick}``, ``{text}``... filled in (escaped) by :meth:`line`."""

    channel: str  # the log of #lobby
    query: str  # the log of a private conversation with {nick}
    joined: str  # {nick} joined #lobby
    said: str  # {nick} said {text} in a channel
    acted: str  # {nick} did /me {text}
    private: str  # {nick} said {text} in private
    notice: str  # a NOTICE from chatd's service nick
    renamed: str  # you are now known as {nick}
    parted: str  # {nick} left #lobby ({text})

    @staticmethod
    def line(template: str, **values: str) -> str:
        return template.format(**{k: re.escape(v) for k, v in values.items()})


class Client(Protocol):
    logs: Logs

    def type(self, line: str) -> None:
        """Type ``line`` as its user would: text or a /command."""

    def wait_gone(self) -> None:
        """Wait until the client has exited."""

    def printed(self) -> str:
        """Everything it printed so far, for failure messages."""


def converse(client: Client, looks: Looks, nc: LineClient, nick: str, new_nick: str) -> None:
    """One conversation between ``client`` (on IRC as ``nick``) and the nc user;
    a failure shows everything the client printed."""
    try:
        _converse(client, looks, nc, nick, new_nick)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n-- the client printed:\n{client.printed()}") from None


def _converse(client: Client, looks: Looks, nc: LineClient, nick: str, new_nick: str) -> None:
    logs, line = client.logs, Looks.line
    channel = looks.channel
    # join: chatd puts it in #lobby, and its own autojoin asks again
    nc.expect(f"*** {nick} joined")
    logs.wait_for(line(looks.joined, nick=nick), channel)
    # talk both ways
    client.type(f"hello from {nick}")
    nc.expect(f"<{nick}> hello from {nick}")
    nc.send("hi from nc")
    logs.wait_for(line(looks.said, nick=NC_NICK, text="hi from nc"), channel)
    # /me both ways
    client.type("/me waves")
    nc.expect(f"* {nick} waves")
    nc.send("/me waves back")
    logs.wait_for(line(looks.acted, nick=NC_NICK, text="waves back"), channel)
    # a private message both ways
    client.type(f"/msg {NC_NICK} psst")
    nc.expect(f"*{nick}* psst")
    nc.send(f"/msg {nick} psst back")
    logs.wait_for(
        line(looks.private, nick=NC_NICK, text="psst back"), looks.query.format(nick=NC_NICK)
    )
    # a plugin command: to the service nick, then as a raw verb; both answer
    # with a NOTICE from chatd
    client.type("/msg chatd fact")
    logs.wait_for(looks.notice)
    client.type("/quote FACT")
    logs.wait_for(looks.notice, times=2)
    # a nick change
    client.type(f"/nick {new_nick}")
    nc.expect(f"*** {nick} is now known as {new_nick}")
    logs.wait_for(line(looks.renamed, nick=new_nick))
    # a part, a rejoin (a quit is told only to those sharing a room), a quit
    client.type("/part #lobby bye all")
    nc.expect(f"*** {new_nick} left #lobby (bye all)")
    logs.wait_for(line(looks.parted, nick=new_nick, text="bye all"), channel)
    client.type("/join #lobby")
    nc.expect(f"*** {new_nick} joined #lobby")
    logs.wait_for(line(looks.joined, nick=new_nick), channel)
    client.type("/quit gone fishing")
    nc.expect(f"*** {new_nick} left (Quit: gone fishing)")
    client.wait_gone()


# ---------------------------------------------------------------- weechat

#: weechat's log lines: "YYYY-MM-DD HH:MM:SS<TAB>prefix<TAB>message".
WEECHAT_LOOKS = Looks(
    channel="irc.chatd.#lobby",
    query="irc.chatd.{nick}",
    joined=r"\t-->\t{nick} \(\S+@chatd\) has joined #lobby$",
    said=r"\t{nick}\t{text}$",
    acted=r"\t \*\t{nick} {text}$",
    private=r"\t{nick}\t{text}$",
    notice=r"\t--\tchatd \(chatd@chatd\): Fact: \S",
    renamed=r"\t--\tYou are now known as {nick}$",
    parted=r"\t<--\t{nick} \(\S+@chatd\) has left #lobby \({text}\)$",
)


def _weechat_tls() -> str:
    """weechat's /server add flag for TLS: -tls since 4.0, -ssl before (Debian 12's 3.8)."""
    done = subprocess.run(
        ["weechat-headless", "--version"], capture_output=True, text=True, timeout=WAIT
    )
    major = re.match(r"(\d+)\.", done.stdout.strip())
    return "-tls" if major is None or int(major.group(1)) >= 4 else "-ssl"


class Weechat:
    """weechat-headless on one server ("chatd"), typed into through its fifo."""

    BUFFER = "irc.chatd.#lobby"  # what it types into, as a user would

    def __init__(
        self, home: Path, address: tuple[str, int], nick: str, tls_ca: Path | None = None
    ) -> None:
        home.mkdir()
        self.home = home
        self.logs = Logs(home / "logs", ".weechatlog")
        host, port = address
        # TLS: the server's certificate checked against the test's CA only.
        tls = (
            [
                "/set weechat.network.gnutls_ca_system off",
                f"/set weechat.network.gnutls_ca_user {tls_ca}",
            ]
            if tls_ca is not None
            else []
        )
        commands = "; ".join(
            [
                "/set logger.file.flush_delay 0",  # logs written at once, not every 120 s
                *tls,
                f"/server add chatd {host}/{port} {_weechat_tls() if tls else '-notls'}"
                f" -nicks={nick} -username={nick} -realname=weechat -autojoin=#lobby"
                " -anti_flood_prio_high=0 -anti_flood_prio_low=0",
                "/connect chatd",
            ]
        )
        self._out = open(home / "stdout", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["weechat-headless", "--dir", str(home), "-P", "irc,logger,fifo", "-r", commands],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=client_env(home),
        )
        self._fifo = -1

    def begin(self) -> None:
        """Wait for the fifo plugin's pipe and hold it open; skip if there is none."""
        path = self.home / f"weechat_fifo_{self.proc.pid}"

        def opened() -> bool:
            assert self.proc.poll() is None, f"weechat-headless exited: {self.logs.everything()}"
            loaded = re.search(r"Plugins loaded: (.*)", self.logs.text("core.weechat"))
            if loaded and "fifo" not in loaded.group(1).split(", "):
                pytest.skip(
                    "weechat's fifo plugin is not installed (apt-get install weechat-plugins);"
                    " weechat-headless has no other input"
                )
            try:
                self._fifo = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # not made yet, or not opened by weechat yet (ENXIO)
                return False
            return True

        wait_until(opened, what=f"weechat's fifo {path}")

    def type(self, line: str) -> None:
        os.write(self._fifo, f"{self.BUFFER} *{line}\n".encode())

    def wait_gone(self) -> None:
        assert self.proc.wait(WAIT) == 0

    def printed(self) -> str:
        return self.logs.everything()

    def stop(self) -> None:
        """/quit if it can still be typed into, else SIGTERM; SIGKILL if it lingers."""
        if self.proc.poll() is None:
            try:
                os.write(self._fifo, b"core.weechat */quit\n")
            except OSError:  # no fifo (yet), or it is exiting already
                self.proc.terminate()
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(WAIT)
        finally:
            if self._fifo >= 0:
                os.close(self._fifo)
            self._out.close()


class RealClient(Protocol):
    def begin(self) -> None: ...

    def stop(self) -> None: ...


Started = TypeVar("Started", bound=RealClient)


def started_clients(
    make: Callable[..., Started],
) -> Iterator[Callable[..., Started]]:
    """A fixture's body: ``start(nick, ...)`` makes a client and begins it;
    every client started is stopped afterwards, whatever the test did."""
    started: list[Started] = []

    def start(nick: str, *more: str) -> Started:
        client = make(nick, *more)
        started.append(client)
        client.begin()
        return client

    try:
        yield start
    finally:
        for client in started:
            client.stop()


@pytest.fixture
def weechat(server: Server, tmp_path: Path) -> Iterator[Callable[[str], Weechat]]:
    need("weechat-headless", "weechat-headless weechat-plugins")
    assert server.irc_address is not None
    address = server.irc_address
    yield from started_clients(lambda nick: Weechat(tmp_path / "weechat", address, nick))


def test_weechat_in_the_same_chat_as_an_nc_user(
    connect: Callable[[str], LineClient], weechat: Callable[[str], Weechat]
) -> None:
    nc = connect(NC_NICK)
    client = weechat("wee")
    converse(client, WEECHAT_LOOKS, nc, "wee", "wee2")
    # weechat marks everything it found wrong (an unexpected reply, a command
    # that failed) with "=!=", in whichever window it happened; but the ERROR
    # line that answers a QUIT is one too, when weechat reads it before it exits
    shown = client.logs.everything()
    errors = [line for line in shown.splitlines() if "\t=!=\t" in line]
    quit_answer = "\t=!=\tClosing Link: wee2 (Quit: gone fishing)"
    assert [line for line in errors if not line.endswith(quit_answer)] == [], shown
    # and its own log (config files, plugins) has no error either
    core = (client.home / "weechat.log").read_text(errors="replace")
    assert "error" not in core.lower(), core


# ---------------------------------------------------------------- irssi

#: irssi's log lines: "HH:MM message", as its windows print them.
IRSSI_LOOKS = Looks(
    channel="#lobby",
    query="{nick}",
    joined=r"^\d\d:\d\d -!- {nick} \[\S+@chatd\] has joined #lobby$",
    said=r"^\d\d:\d\d < {nick}> {text}$",
    acted=r"^\d\d:\d\d  \* {nick} {text}$",
    private=r"^\d\d:\d\d <{nick}> {text}$",
    notice=r"^\d\d:\d\d -chatd\(chatd@chatd\)- Fact: \S",
    renamed=r"^\d\d:\d\d -!- You're now known as {nick}$",
    parted=r"^\d\d:\d\d -!- {nick} \[\S+@chatd\] has left #lobby \[{text}\]$",
)

IRSSI_CONFIG = """\
servers = (
  {{ address = "{host}"; chatnet = "chatd"; port = "{port}"; use_tls = "no"; autoconnect = "yes"; }}
);
chatnets = {{
  chatd = {{
    type = "IRC"; nick = "{nick}"; username = "{nick}"; realname = "irssi user";
    autosendcmd = "/join #lobby";
    cmdspeed = "1"; cmdmax = "1000";
  }};
}};
logs = {{ "{home}/all.log" = {{ auto_open = "yes"; level = "ALL"; }}; }};
settings = {{
  core = {{ real_name = "irssi user"; user_name = "{nick}"; nick = "{nick}"; }};
  "fe-common/core" = {{
    autolog = "yes"; autolog_path = "{home}/logs/$tag/$0.log";
    autolog_level = "all -crap -clientcrap -ctcps";
  }};
}};
"""


class Irssi:
    """irssi in a tmux session on a private tmux server, typed into with send-keys.

    Its windows are logged one file each under ``logs/chatd/``; ``all.log`` has
    every line it printed (the status window too), for failure messages."""

    SESSION = "irssi"

    def __init__(
        self,
        home: Path,
        address: tuple[str, int],
        nick: str,
        password: str = "",
        tls_ca: Path | None = None,
    ) -> None:
        home.mkdir()
        self.home = home
        self.logs = Logs(home / "logs" / "chatd", ".log")
        host, port = address
        config = IRSSI_CONFIG.format(host=host, port=port, nick=nick, home=home)
        if tls_ca is not None:  # TLS, the server's certificate checked against the test's CA
            config = config.replace(
                'use_tls = "no";', f'use_tls = "yes"; tls_verify = "yes"; tls_cafile = "{tls_ca}";'
            )
        if password:  # the server password irssi sends as PASS: the nick's account's
            config = config.replace("autoconnect", f'password = "{password}"; autoconnect')
        (home / "config").write_text(config)
        self.socket = f"chatd-test-{uuid.uuid4().hex[:12]}"
        self.env = client_env(home)
        self.pid = 0  # irssi's, once started
        self.socket_path = ""  # tmux's, once started

    def begin(self) -> None:
        irssi = f"exec irssi --home={shlex.quote(str(self.home))}"
        self.tmux("new-session", "-d", "-s", self.SESSION, "-x", "200", "-y", "50", irssi)
        shown = self.tmux("display-message", "-p", "-t", self.SESSION, "#{pane_pid} #{socket_path}")
        pid, self.socket_path = shown.strip().split(" ", 1)
        self.pid = int(pid)

    def tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def type(self, line: str) -> None:
        # the text literally (-l: no key names), then Enter, in one tmux call
        keys = ["send-keys", "-t", self.SESSION]
        self.tmux(*keys, "-l", line, ";", *keys, "Enter")

    def running(self) -> bool:
        """irssi is neither gone nor a zombie (tmux, its parent, may be gone
        first, and not every container's init reaps orphans)."""
        if not self.pid:
            return False
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def wait_gone(self) -> None:
        wait_until(lambda: not self.running(), what="irssi to exit")

    def stop(self) -> None:
        self.tmux("kill-server", check=False)  # ends irssi (SIGHUP) and the session
        try:
            wait_until(lambda: not self.running(), what="irssi to exit")
        except AssertionError:
            os.kill(self.pid, signal.SIGKILL)
        if self.socket_path:
            Path(self.socket_path).unlink(missing_ok=True)  # tmux leaves it behind

    def printed(self) -> str:
        path = self.home / "all.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def irssi(server: Server, tmp_path: Path) -> Iterator[Callable[..., Irssi]]:
    need("irssi", "irssi")
    need("tmux", "tmux")
    assert server.irc_address is not None
    address = server.irc_address
    yield from started_clients(
        lambda nick, password="": Irssi(tmp_path / "irssi", address, nick, password)
    )


def test_irssi_in_the_same_chat_as_an_nc_user(
    connect: Callable[[str], LineClient], irssi: Callable[[str], Irssi]
) -> None:
    nc = connect(NC_NICK)
    converse(irssi("irs"), IRSSI_LOOKS, nc, "irs", "irs2")


def test_irssi_logs_in_with_its_server_password_and_gets_what_was_kept(
    connect: Callable[[str], LineClient], irssi: Callable[..., Irssi]
) -> None:
    owner = connect("irsacct")
    owner.send("/register irs-secret-1")
    owner.expect(re.compile(r"^\*\*\* Registered: the nickname irsacct is yours"))
    owner.send("/quit")
    owner.wait_closed()
    nc = connect(NC_NICK)
    nc.send("/msg irsacct kept for you")
    nc.expect("*** irsacct is offline; your message is kept until they identify.")
    nc.send("said before you came")
    client = irssi("irsacct", "irs-secret-1")
    try:
        nc.expect("*** irsacct joined")
        logs = client.logs
        # irssi asks for server-time: what was kept comes as the lines they
        # were, stamped with when they were said (irssi shows that time).
        logs.wait_for(rf"^\d\d:\d\d <{NC_NICK}> kept for you$", NC_NICK)
        logs.wait_for(rf"^\d\d:\d\d < {NC_NICK}> said before you came$", "#lobby")
        shown = logs.everything() + client.printed()
        assert "You are identified: irsacct is your account." in shown
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n-- irssi printed:\n{client.printed()}") from None


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Certificate]]:
    cert = Certificate(tmp_path)
    with running_server(make_config(tls=cert.settings())) as server:
        yield server, cert


def test_irssi_over_tls_in_the_same_chat_as_an_nc_user(
    tls_server: tuple[Server, Certificate], tmp_path: Path
) -> None:
    need("irssi", "irssi")
    need("tmux", "tmux")
    server, cert = tls_server
    assert server.address is not None
    nc = LineClient(server.address)
    nc.register(NC_NICK)
    # By name: irssi checks only the certificate's DNS names, not its IP ones.
    address = ("localhost", server.tls_addresses["irc"][1])
    for start in started_clients(
        lambda nick: Irssi(tmp_path / "irssi", address, nick, tls_ca=cert.ca_file)
    ):
        converse(start("irs"), IRSSI_LOOKS, nc, "irs", "irs2")


def test_weechat_over_tls_in_the_same_chat_as_an_nc_user(
    tls_server: tuple[Server, Certificate], tmp_path: Path
) -> None:
    need("weechat-headless", "weechat-headless weechat-plugins")
    server, cert = tls_server
    assert server.address is not None
    nc = LineClient(server.address)
    nc.register(NC_NICK)
    address = server.tls_addresses["irc"]
    for start in started_clients(
        lambda nick: Weechat(tmp_path / "weechat", address, nick, tls_ca=cert.ca_file)
    ):
        converse(start("wee"), WEECHAT_LOOKS, nc, "wee", "wee2")
