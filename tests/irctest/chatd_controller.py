"""progval/irctest's controller for chatd: how irctest starts a chatd to test.

Not a pytest file of ours and not run in CI: irctest's own pytest imports it
(``--controller chatd_controller``, with this folder on PYTHONPATH). Run it
with tests/irctest/run.py, which says how.

Rule: chatd runs with the repo's own interpreter (``/work/main/.venv/bin/python``
or whatever this checkout's .venv is; ``CHATD_PYTHON`` overrides it), never
installed into irctest's venv: chatd registers a pytest plugin (the
``pytest11`` entry point), which would load into irctest's pytest.

What is declared here is what chatd really does, because irctest reads each
declaration as a promise: a capability listed turns a CAP NAK into a failure,
an optional behaviour listed turns its skip into a failure, and every ISUPPORT
token listed is checked against chatd's 005.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import ClassVar

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController
from irctest.specifications import Capabilities, OptionalBehaviors

#: The checkout this file is in (tests/irctest/ -> the repo).
REPO = Path(__file__).resolve().parents[2]

#: Seconds before chatd PINGs a silent client: irctest's clients answer PINGs
#: only while registering, so a PING inside a test would be an unexpected
#: line. A day is the longest [irc] ping_interval allows; no test is that long.
PING_INTERVAL = 86400

#: irctest's server name: its tests expect it in 004, PONG and WHO replies.
SERVER_NAME = "My.Little.Server"

CONFIG = """\
# Written by tests/irctest/chatd_controller.py for one irctest test.
[server]
host = "127.0.0.1"
port = {nc_port}

[irc]
host = "{host}"
port = {port}
server_name = "{server_name}"
autojoin = []
ping_interval = {ping_interval}

[limits]
flood_rate = 0
max_per_ip = 0

[web]
enabled = false

[admin]
enabled = false

[store]
# Each test's server keeps nothing: they run side by side, and one database
# is locked by one chatd.
path = ":memory:"

[plugins]
dirs = []
"""


def chatd_python() -> str:
    """The interpreter chatd runs under: CHATD_PYTHON, the repo's .venv, or ours."""
    configured = os.environ.get("CHATD_PYTHON")
    if configured:
        return configured
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


class ChatdController(BaseServerController, DirectoryBasedController):
    software_name = "chatd"
    supported_sasl_mechanisms: ClassVar[set[str]] = set()
    supports_sts = False
    # chatd answers every command in order, so irctest's PING/PONG
    # synchronisation is enough; its port probe may poll faster than 0.1 s.
    _port_wait_interval = 0.01

    #: CAP LS offers server-time alone (chatd.wire.irc.CAPABILITIES).
    capabilities = frozenset({Capabilities.SERVER_TIME})
    #: JOIN #a,#b, PRIVMSG a,b and KICK #chan a,b are split on commas by the
    #: gateway (chatd/irc_gateway.py: _targets; PRIVMSG and NOTICE up to
    #: TARGMAX's 4). Not claimed: MULTI_NAMES_COMMAND (NAMES #a,#b does answer
    #: each channel, but irctest looks for NAMES in TARGMAX, which names only
    #: PRIVMSG and NOTICE), and
    #: CAP_REQ_MINUS (CAP REQ -server-time works before registration only:
    #: after it, the connection's format is fixed).
    optional_behaviors = frozenset(
        {
            OptionalBehaviors.MULTI_JOIN,
            OptionalBehaviors.MULTI_PRIVMSG,
            OptionalBehaviors.MULTI_KICK,
        }
    )
    #: What chatd's 005 says (chatd/wire/irc.py: isupport), checked by
    #: isupport.py::testValues. NICKLEN, CHANNELLEN and TOPICLEN are numbers
    #: chatd's settings and rules decide; the test checks they are there.
    isupport: ClassVar[dict[str, str]] = {
        "CASEMAPPING": "ascii",
        "CHANTYPES": "#",
        "NETWORK": "chatd",
        "PREFIX": "(o)@",
        "CHANMODES": ",,,t",
        "USERLEN": "16",
        "NICKLEN": "16",
        "CHANNELLEN": "33",
        "TOPICLEN": "300",
        "TARGMAX": "PRIVMSG:4,NOTICE:4",
    }

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: str | None,
        ssl: bool,
        run_services: bool,
        faketime: str | None,
        websocket_hostname: str | None,
        websocket_port: int | None,
    ) -> None:
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        if password is not None:
            # chatd's PASS is an account's password, not a server password.
            raise NotImplementedByController("PASS command")
        if ssl:
            raise NotImplementedByController("SSL")
        if run_services:
            raise NotImplementedByController("services")
        assert self.proc is None
        self.port = port
        self.hostname = hostname
        self.create_config()
        assert self.directory is not None
        (_, nc_port) = self.get_hostname_and_port()
        with self.open_file("chatd.toml") as fd:
            fd.write(
                CONFIG.format(
                    nc_port=nc_port,
                    host=hostname,
                    port=port,
                    server_name=SERVER_NAME,
                    ping_interval=PING_INTERVAL,
                )
            )
        self.proc = self.execute(
            [chatd_python(), "-m", "chatd", "serve", "--config", self.directory / "chatd.toml"],
            proc_name="chatd",
            cwd=str(self.directory),
        )


def get_irctest_controller_class() -> type[ChatdController]:
    return ChatdController
