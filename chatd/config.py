"""chatd.toml -> frozen dataclasses.

Rule: every setting is a field below with its default and a one-line ``doc``;
nothing else reads settings. Loading checks every key and type against these
fields, and an error names the file, the table and the key, in one line. The
repo's chatd.toml and the README's settings table list exactly these fields
(tests/test_config.py keeps them in step).
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, get_type_hints

from chatd.core.buffers import DEFAULT_MAX_LINE_BYTES, DEFAULT_SENDQ_BYTES
from chatd.core.flood import DEFAULT_FLOOD_BURST, DEFAULT_FLOOD_RATE
from chatd.core.nicks import nick_problem
from chatd.core.rooms import (
    DEFAULT_MAX_ROOMS,
    DEFAULT_MAX_ROOMS_PER_USER,
    DEFAULT_MAX_TOPIC_CHARS,
    room_problem,
)


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why, in one line."""


# -- the range of every number ---------------------------------------------------
# Every int and float setting has a least and a most value, named here with the
# reason for it, and a float must also be finite: nan passes every comparison
# (and would close every connection at once as a timeout), inf overflows the
# timers. A setting whose 0 means "off" takes 0 or a value in its range.

#: TCP ports are 16 bits; 0 asks the kernel for a free one.
MAX_PORT: Final = 65535
#: One loop in one process: past a million sockets Linux's default per-process
#: ceiling (fs.nr_open = 1048576) refuses the descriptors anyway.
MAX_CLIENTS: Final = 1_000_000
#: Room for a nickname, a prompt and a few words: a shorter line limit would
#: refuse ordinary chat.
MIN_LINE_BYTES: Final = 64
#: A line is something a person types; a MiB is already a paste no terminal
#: shows well, and the reader holds up to a burst of lines this long per client.
MAX_LINE_BYTES: Final = 1024 * 1024
#: A few screens of output: a smaller queue cuts off clients that are merely
#: slow (a full-size line to a reader on a busy link).
MIN_SENDQ_BYTES: Final = 4096
#: A busy room (100 lines a second of 100 bytes) fills a GiB in about a day: a
#: client that far behind is gone, not slow, and max_clients of them must fit
#: in memory.
MAX_SENDQ_BYTES: Final = 1024 * 1024 * 1024
#: A burst of a million lines is flood control off in all but name (to turn it
#: off, say ``flood_rate = 0``); the reader still reads at most 64 KiB at once.
MAX_FLOOD_BURST: Final = 1_000_000
#: The slowest flood control that is still chat: one line every 100 seconds.
#: Slower would leave a client's lines waiting for hours (and its wake-up timer
#: years away); 0 turns flood control off.
MIN_FLOOD_RATE: Final = 0.01
#: A million lines a second is more than the loop can take from everyone
#: together, so a higher rate would mean nothing.
MAX_FLOOD_RATE: Final = 1_000_000
#: More connections from one address than connections at all means nothing.
MAX_PER_IP: Final = MAX_CLIENTS
#: An hour is far past anyone typing a nickname: a connection still nameless
#: then is a slowloris or forgotten. At least a second, so a client can answer.
MIN_REGISTER_SECONDS: Final = 1
MAX_REGISTER_SECONDS: Final = 3600
#: Idle timeouts are for clearing away dead connections: under a second would
#: cut people off between keystrokes, and a week outlasts any weekend away
#: (longer is the same as never, 0). It also stays well inside the 24.8 days a
#: poll timeout in milliseconds can hold (2**31 ms).
MIN_IDLE_SECONDS: Final = 1
MAX_IDLE_SECONDS: Final = 7 * 24 * 3600
#: A jumble round needs a few seconds to read the puzzle; an hour is longer
#: than anyone stares at six letters.
MIN_ROUND_SECONDS: Final = 5
MAX_ROUND_SECONDS: Final = 3600
#: A plugin call slower than a minute is stuck, not slow; under a millisecond
#: every call would count as slow.
MIN_SLOW_CALL_MS: Final = 1
MAX_SLOW_CALL_MS: Final = 60_000
#: The breaker's memory: from a second to a day.
MIN_BREAKER_WINDOW: Final = 1
MAX_BREAKER_WINDOW: Final = 86_400
#: How many slow calls or errors trip the breaker; past a thousand it never would.
MAX_BREAKER_COUNT: Final = 1000
#: A plugin call's deadline: 10 ms lets no command do real work, an hour is a
#: server that stopped; 0 turns the deadline off.
MIN_CALL_TIMEOUT: Final = 0.01
MAX_CALL_TIMEOUT: Final = 3600
#: Lines kept per room: a hundred at least (less is no history), ten million at
#: most (about 2 GB of SQLite per room: past that a room wants an archive, not
#: a chat server's history).
MIN_HISTORY_LINES: Final = 100
MAX_HISTORY_LINES: Final = 10_000_000
#: How long lines are kept: a day at least, ten years at most; 0 = by count only.
MIN_KEEP_DAYS: Final = 1
MAX_KEEP_DAYS: Final = 3650
#: Lines a returning user or a newcomer is shown: at most what /history shows
#: (chatd.core.hub.MAX_HISTORY_LINES), so that "/history N" can always show
#: the lines a catch-up left out; more is a scroll no one reads anyway.
MAX_CATCHUP_LINES: Final = 500
#: How long the loop may stand still before the watchdog says where: a second
#: at least (a busy loop iteration is milliseconds), an hour at most; 0 = off.
MIN_STALL_SECONDS: Final = 1
MAX_STALL_SECONDS: Final = 3600
#: Rooms on one server: each costs a few hundred bytes while quiet; a million is
#: past any community one loop serves.
MAX_ROOMS: Final = 1_000_000
#: Rooms one user may be in: the default room needs one; a thousand is past any
#: client's window list.
MAX_ROOMS_PER_USER: Final = 1000
#: A topic shorter than 20 characters says nothing; longer than the longest line
#: a client may send could never be typed.
MIN_TOPIC_CHARS: Final = 20
MAX_TOPIC_CHARS: Final = MAX_LINE_BYTES
#: How long an IRC connection may stay silent before the server PINGs it, and
#: then how long it has to answer: 5 seconds at least (a client on a slow link
#: must have time to), a day at most (past that it is never); 0 = off.
MIN_PING_SECONDS: Final = 5
MAX_PING_SECONDS: Final = 86_400
#: A node that has not renewed its heartbeat in ``node_timeout`` seconds is
#: lost. Under 2 s a busy Redis or a GC pause would declare live nodes dead (and
#: rename their users); past 10 minutes a dead node's users would hold their
#: nicknames and show in /who long after everyone has noticed they are gone.
MIN_NODE_TIMEOUT: Final = 2
MAX_NODE_TIMEOUT: Final = 600
#: A node's name goes into Redis keys, logs and the admin's users table.
_NODE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
#: The key prefix: anything printable that keeps keys readable in redis-cli.
_KEY_PREFIX: Final = re.compile(r"[A-Za-z0-9._:{}-]{1,32}")
#: A server name is a host name (RFC 2812 2.3.1): letters, digits, "-" and
#: ".", with at least one dot (so no client takes it for a nickname), at most
#: 63 characters (the longest a server name may be on IRC).
_SERVER_NAME = re.compile(r"(?=.{1,63}$)[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
#: A network name goes into 005 NETWORK= and 001: one word.
_NETWORK = re.compile(r"[A-Za-z0-9._-]{1,32}")


def _setting(
    default: Any,
    doc: str,
    *,
    min: float | None = None,
    max: float | None = None,
    off: float | None = None,
) -> Any:
    """A setting's field. Numbers take ``min`` to ``max``, or ``off`` (its "turned
    off" value, outside that range) when it has one."""
    meta = {"doc": doc, "min": min, "max": max, "off": off}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def default_of(setting: dataclasses.Field[Any]) -> Any:
    """A setting's default value (lists come from a factory)."""
    if setting.default_factory is not dataclasses.MISSING:
        return setting.default_factory()
    return setting.default


def allowed(setting: dataclasses.Field[Any]) -> str | None:
    """A number setting's range in words, e.g. "1 to 3600" or "0, or 1 to 604800";
    None for a setting that is not a number."""
    meta = setting.metadata
    if meta.get("min") is None:
        return None
    span = f"{meta['min']} to {meta['max']}"
    return span if meta.get("off") is None else f"{meta['off']}, or {span}"


@dataclass(frozen=True)
class ServerSettings:
    host: str = _setting("127.0.0.1", "Address to listen on; 0.0.0.0 or :: for every interface.")
    port: int = _setting(7777, "TCP port for chat; 0 picks a free one.", min=0, max=MAX_PORT)
    tls_port: int = _setting(
        7778,
        "TCP port for chat over TLS, once [tls] cert_file is set; 0 picks a free one; -1 = none.",
        min=0,
        max=MAX_PORT,
        off=-1,
    )
    plain: bool = _setting(True, "Serve chat on port in plain TCP too; false = over TLS only.")
    max_clients: int = _setting(
        10000,
        'Most chat connections at once; one more is told "Server full." and closed.',
        min=1,
        max=MAX_CLIENTS,
    )


@dataclass(frozen=True)
class LimitSettings:
    max_line_bytes: int = _setting(
        DEFAULT_MAX_LINE_BYTES,
        "Longest line a client may send; a longer one is refused with a message.",
        min=MIN_LINE_BYTES,
        max=MAX_LINE_BYTES,
    )
    sendq_bytes: int = _setting(
        DEFAULT_SENDQ_BYTES,
        "Unsent output a client may have queued before it is disconnected (sendq exceeded).",
        min=MIN_SENDQ_BYTES,
        max=MAX_SENDQ_BYTES,
    )
    flood_burst: int = _setting(
        DEFAULT_FLOOD_BURST,
        "Lines a client may send at once before flood control slows it.",
        min=1,
        max=MAX_FLOOD_BURST,
    )
    flood_rate: float = _setting(
        DEFAULT_FLOOD_RATE,
        "Lines a second a client may send after its burst; 0 turns flood control off.",
        min=MIN_FLOOD_RATE,
        max=MAX_FLOOD_RATE,
        off=0,
    )
    max_per_ip: int = _setting(
        20,
        "Most chat connections from one IP address at once; 0 = no limit.",
        min=0,
        max=MAX_PER_IP,
    )
    register_timeout: float = _setting(
        60,
        "Seconds a connection may take to choose a nickname before it is closed.",
        min=MIN_REGISTER_SECONDS,
        max=MAX_REGISTER_SECONDS,
    )
    idle_timeout: float = _setting(
        0,
        "Seconds a named user may send nothing before being disconnected; 0 = never.",
        min=MIN_IDLE_SECONDS,
        max=MAX_IDLE_SECONDS,
        off=0,
    )


@dataclass(frozen=True)
class RoomSettings:
    default: str = _setting(
        "#lobby",
        "The room every nc and chatd connect user is put in once named;"
        " it is never removed, and has no operator.",
    )
    max_rooms: int = _setting(
        DEFAULT_MAX_ROOMS,
        "Most rooms at once; a /join that would make one more is refused.",
        min=1,
        max=MAX_ROOMS,
    )
    max_rooms_per_user: int = _setting(
        DEFAULT_MAX_ROOMS_PER_USER,
        "Most rooms one user may be in at once.",
        min=1,
        max=MAX_ROOMS_PER_USER,
    )
    max_topic_chars: int = _setting(
        DEFAULT_MAX_TOPIC_CHARS,
        "Longest room topic, in characters.",
        min=MIN_TOPIC_CHARS,
        max=MAX_TOPIC_CHARS,
    )

    def __post_init__(self) -> None:
        problem = room_problem(self.default)
        if problem:
            raise ValueError(f"default: {problem}")


@dataclass(frozen=True)
class IrcSettings:
    enabled: bool = _setting(True, "Serve IRC clients (irssi, weechat, HexChat) in the same chat.")
    host: str = _setting("127.0.0.1", "Address the IRC listener listens on.")
    port: int = _setting(6667, "TCP port for IRC; 0 picks a free one.", min=0, max=MAX_PORT)
    tls_port: int = _setting(
        6697,
        "TCP port for IRC over TLS, once [tls] cert_file is set; 0 picks a free one; -1 = none.",
        min=0,
        max=MAX_PORT,
        off=-1,
    )
    plain: bool = _setting(True, "Serve IRC on port in plain TCP too; false = over TLS only.")
    server_name: str = _setting(
        "chatd.local", "The server's name in IRC replies: a host name with a dot in it."
    )
    network: str = _setting("chatd", "The network's name IRC clients show (005 NETWORK).")
    motd_file: str = _setting(
        "", "Message of the day for IRC clients, a text file; empty = the bundled one."
    )
    ping_interval: float = _setting(
        120,
        "Seconds of silence before an IRC client is PINGed, and then to answer; 0 = never.",
        min=MIN_PING_SECONDS,
        max=MAX_PING_SECONDS,
        off=0,
    )
    autojoin: list[str] = _setting(
        ["#lobby"],
        "Rooms an IRC user is put in once registered (IRC users can JOIN others);"
        " left out, the [rooms] default room.",
    )
    service_nick: str = _setting(
        "chatd", "Who IRC users send plugin commands to (/msg chatd fact); no user may take it."
    )

    def __post_init__(self) -> None:
        if not _SERVER_NAME.fullmatch(self.server_name):
            raise ValueError(
                f"server_name: {self.server_name!r} is not a server name: use a host name"
                " with a dot in it, like chat.example.org"
            )
        if not _NETWORK.fullmatch(self.network):
            raise ValueError(
                f"network: {self.network!r} is not a network name:"
                " use 1-32 letters, digits, ., _ or -"
            )
        problem = nick_problem(self.service_nick)
        if problem:
            raise ValueError(f"service_nick: {problem}")
        for name in self.autojoin:
            problem = room_problem(name)
            if problem:
                raise ValueError(f"autojoin: {problem}")


#: An allowed Origin: a scheme, a host and maybe a port, as a browser sends it.
_ORIGIN: Final = re.compile(r"https?://[^/?#\s]+")


@dataclass(frozen=True)
class WebSettings:
    enabled: bool = _setting(
        True, "Serve the browser page, its WebSocket, /healthz and /metrics over HTTP."
    )
    host: str = _setting("127.0.0.1", "Address the web listener listens on.")
    port: int = _setting(8080, "TCP port for HTTP; 0 picks a free one.", min=0, max=MAX_PORT)
    tls_port: int = _setting(
        8443,
        "TCP port for HTTPS and wss://, once [tls] cert_file is set; 0 picks a free one;"
        " -1 = none.",
        min=0,
        max=MAX_PORT,
        off=-1,
    )
    plain: bool = _setting(True, "Serve HTTP on port too; false = over TLS only.")
    allowed_origins: list[str] = _setting(
        [],
        "Pages allowed to open the WebSocket (https://chat.example.org); empty = the page's"
        " own origin (its Host). Set it when the listener is reachable from elsewhere.",
    )
    ping_interval: float = _setting(
        45,
        "Seconds of silence before a WebSocket is pinged, and then to answer; 0 = never.",
        min=MIN_PING_SECONDS,
        max=MAX_PING_SECONDS,
        off=0,
    )

    def __post_init__(self) -> None:
        for origin in self.allowed_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"allowed_origins: {origin!r} is not an origin: use scheme://host[:port],"
                    " like https://chat.example.org, with no path"
                )


@dataclass(frozen=True)
class TlsSettings:
    cert_file: str = _setting(
        "",
        "PEM certificate, then its chain, for the TLS ports; empty = no TLS."
        " SIGHUP or `chatd admin reload tls` reads it again.",
    )
    key_file: str = _setting(
        "", "PEM private key of cert_file, unencrypted; empty = it is in cert_file."
    )
    handshake_timeout: float = _setting(
        10, "Seconds a TLS client has to finish its handshake; then it is closed.", min=1, max=300
    )


@dataclass(frozen=True)
class ClusterSettings:
    redis: str = _setting(
        "",
        "The Redis that joins several nodes into one chat (redis://[:PASSWORD@]HOST[:PORT][/DB]);"
        " empty = a single node.",
    )
    node: str = _setting(
        "", "This node's name in the cluster, unique among the nodes; empty = HOSTNAME:PORT."
    )
    prefix: str = _setting("chatd:", "Prefix of every Redis key and channel the nodes use.")
    node_timeout: float = _setting(
        10,
        "Seconds a node may miss its heartbeat before the others count it as lost.",
        min=MIN_NODE_TIMEOUT,
        max=MAX_NODE_TIMEOUT,
    )

    def __post_init__(self) -> None:
        if self.redis:
            from chatd.wire.resp import parse_url  # hiredis is only needed for a cluster

            try:
                parse_url(self.redis)
            except ValueError as exc:
                raise ValueError(f"redis: {exc}") from None
        if self.node and not _NODE_NAME.fullmatch(self.node):
            raise ValueError(
                f"node: {self.node!r} is not a node name: 1 to 64 letters, digits and . _ : -,"
                " starting with a letter or digit"
            )
        if not _KEY_PREFIX.fullmatch(self.prefix):
            raise ValueError(
                f"prefix: {self.prefix!r} is not a key prefix: 1 to 32 letters, digits"
                " and . _ : { } -"
            )


@dataclass(frozen=True)
class AdminSettings:
    enabled: bool = _setting(True, "Serve the operator API on a local Unix socket.")
    socket: str = _setting(
        "",
        "Path of the admin socket; empty = $XDG_RUNTIME_DIR/chatd/admin.sock,"
        " else /tmp/chatd-UID/admin.sock.",
    )


@dataclass(frozen=True)
class PluginSettings:
    dirs: list[str] = _setting(
        ["plugins.d"],
        "Folders whose *.py files are loaded as plugins, relative to this file.",
    )
    disabled: list[str] = _setting([], "Plugin names not to load (built-in ones too).")
    slow_call_ms: float = _setting(
        100,
        "A plugin call taking longer than this many milliseconds is logged as slow.",
        min=MIN_SLOW_CALL_MS,
        max=MAX_SLOW_CALL_MS,
    )
    breaker_window: float = _setting(
        60,
        "Seconds over which a plugin's slow calls and errors are counted.",
        min=MIN_BREAKER_WINDOW,
        max=MAX_BREAKER_WINDOW,
    )
    breaker_slow: int = _setting(
        3,
        "Slow calls within the window that switch a plugin off.",
        min=1,
        max=MAX_BREAKER_COUNT,
    )
    breaker_errors: int = _setting(
        5,
        "Errors within the window that switch a plugin off.",
        min=1,
        max=MAX_BREAKER_COUNT,
    )
    call_timeout: float = _setting(
        2.0,
        "Seconds a plugin call may run before it is interrupted; 0 = never.",
        min=MIN_CALL_TIMEOUT,
        max=MAX_CALL_TIMEOUT,
        off=0,
    )
    stall_seconds: float = _setting(
        10,
        "Seconds the loop may stand still before the watchdog logs where it is stuck; 0 = off.",
        min=MIN_STALL_SECONDS,
        max=MAX_STALL_SECONDS,
        off=0,
    )


@dataclass(frozen=True)
class HistorySettings:
    max_lines_per_room: int = _setting(
        10_000,
        "Lines kept per room; the oldest go first.",
        min=MIN_HISTORY_LINES,
        max=MAX_HISTORY_LINES,
    )
    keep_days: float = _setting(
        30,
        "Days a line is kept; 0 = as long as max_lines_per_room allows.",
        min=MIN_KEEP_DAYS,
        max=MAX_KEEP_DAYS,
        off=0,
    )
    catchup_lines: int = _setting(
        100,
        "Most missed lines a returning user is shown, per room; 0 = none.",
        min=0,
        max=MAX_CATCHUP_LINES,
    )
    join_lines: int = _setting(
        10,
        "Latest lines someone new to a room is shown; 0 = none.",
        min=0,
        max=MAX_CATCHUP_LINES,
    )


@dataclass(frozen=True)
class StoreSettings:
    path: str = _setting(
        "",
        "The history and accounts database; empty = $XDG_STATE_HOME/chatd/chatd.db;"
        ' ":memory:" keeps nothing.',
    )


@dataclass(frozen=True)
class JumbleSettings:
    words_file: str = _setting("", "Word list, one word a line; empty = the bundled list.")
    round_seconds: int = _setting(
        60, "Seconds a jumble round lasts.", min=MIN_ROUND_SECONDS, max=MAX_ROUND_SECONDS
    )


@dataclass(frozen=True)
class FactSettings:
    facts_file: str = _setting("", "Fact list, one fact a line; empty = the bundled list.")


@dataclass(frozen=True)
class Config:
    server: ServerSettings = field(default_factory=ServerSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    rooms: RoomSettings = field(default_factory=RoomSettings)
    irc: IrcSettings = field(default_factory=IrcSettings)
    web: WebSettings = field(default_factory=WebSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    plugins: PluginSettings = field(default_factory=PluginSettings)
    jumble: JumbleSettings = field(default_factory=JumbleSettings)
    fact: FactSettings = field(default_factory=FactSettings)
    #: Tables this file has for plugins chatd does not know of (drop-in plugins):
    #: table name -> its keys. Checked against the loaded plugins at startup.
    extra: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    #: The file the settings came from, or None for built-in defaults.
    source: Path | None = field(default=None, compare=False)
    #: What the command line set over the file (table -> key -> value): a
    #: reload reads the file again and keeps these (see with_overrides).
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)

    @property
    def base_dir(self) -> Path:
        """Relative paths in the settings are relative to this folder."""
        return self.source.resolve().parent if self.source else Path.cwd()

    def path(self, value: str) -> Path:
        """A path setting, resolved against :attr:`base_dir`."""
        return self.base_dir / Path(value).expanduser()

    def section(self, name: str) -> dict[str, Any]:
        """A table as a dict: a known one with its defaults filled in, else as written."""
        if name in sections():
            return dataclasses.asdict(getattr(self, name))
        return dict(self.extra.get(name, {}))


def sections() -> dict[str, type[Any]]:
    """Table name -> settings class, in file order."""
    hints = get_type_hints(Config)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(Config)
        if f.name not in ("source", "extra", "overrides")
    }


def load(path: Path | None) -> Config:
    """Read settings from ``path``, or the built-in defaults when it is None.

    Whatever is wrong with the file is a ConfigError naming it, in one line:
    chatd serve, admin and connect all load through here and print just that.
    """
    if path is None:
        return Config()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables by recursion: a few
        # hundred levels exhaust the stack. No setting nests more than a list.
        raise ConfigError(
            f"{path}: not valid TOML for chatd: arrays or tables nested too deeply"
        ) from None
    return from_dict(data, source=path)


def from_dict(data: dict[str, Any], *, source: Path | None = None) -> Config:
    where = str(source) if source else "config"
    known = sections()
    built: dict[str, Any] = {}
    extra: dict[str, dict[str, Any]] = {}
    for table, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: {table} must be a table ([{table}])")
        if table in known:
            built[table] = _build_section(known[table], values, f"{where}: [{table}]")
        else:
            extra[table] = values  # a drop-in plugin's, or a typo: see check_extra()
    irc_table = data.get("irc")
    if "rooms" in built and not (isinstance(irc_table, dict) and "autojoin" in irc_table):
        # Left out, autojoin follows the default room: IRC users land where the
        # nc users are, whatever that room is called.
        irc = built.get("irc", IrcSettings())
        built["irc"] = dataclasses.replace(irc, autojoin=[built["rooms"].default])
    config = Config(**built, extra=extra, source=source)
    _check_plain(config, where)
    return config


def _check_plain(config: Config, where: str) -> None:
    """A listener turned plain = false must have TLS to serve instead."""
    for table in ("server", "irc", "web"):
        settings = getattr(config, table)
        if not settings.plain and (not config.tls.cert_file or settings.tls_port < 0):
            raise ConfigError(
                f"{where}: [{table}] plain = false needs TLS to serve instead:"
                f" set [tls] cert_file (and keep [{table}] tls_port)"
            )


def changed_settings(old: Config, new: Config) -> list[str]:
    """What differs between two configs: "[table] key" for each setting,
    "[table]" for a drop-in plugin's table, in file order."""
    changed = [
        f"[{table}] {f.name}"
        for table in sections()
        for f in dataclasses.fields(getattr(new, table))
        if getattr(getattr(new, table), f.name) != getattr(getattr(old, table), f.name)
    ]
    tables = sorted(set(new.extra) | set(old.extra))
    changed += [f"[{t}]" for t in tables if new.extra.get(t) != old.extra.get(t)]
    return changed


def check_extra(config: Config, plugin_names: set[str]) -> None:
    """Every table chatd does not know must belong to a loaded plugin."""
    for table in config.extra:
        if table not in plugin_names:
            where = str(config.source) if config.source else "config"
            raise ConfigError(
                f"{where}: unknown table [{table}]: no setting or loaded plugin has that name;"
                f" chatd's tables are: {', '.join(sections())}"
            )


def with_overrides(config: Config, table: str, **values: Any) -> Config:
    """``config`` with some keys of one table replaced (None values are ignored),
    from the command line: they are checked as a file's values are."""
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return config
    current = getattr(config, table)
    merged = {**dataclasses.asdict(current), **values}
    section = _build_section(type(current), merged, f"[{table}]")
    overrides = {**config.overrides, table: {**config.overrides.get(table, {}), **values}}
    return dataclasses.replace(config, **{table: section}, overrides=overrides)


def reapply_overrides(old: Config, new: Config) -> Config:
    """``new`` (a file read again) with the command-line settings ``old`` had."""
    for table, values in old.overrides.items():
        new = with_overrides(new, table, **values)
    return new


def _build_section(cls: type[Any], values: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where} unknown key {key!r}; known keys: {', '.join(fields)}")
        _check(value, hints[key], fields[key].metadata, f"{where} {key}")
    try:
        return cls(**values)
    except ValueError as exc:  # a check across the table's keys (__post_init__)
        raise ConfigError(f"{where} {exc}") from None


_TYPE_NAMES = {
    int: "an integer",
    str: "a string",
    bool: "true or false",
    float: "a number",
    list[str]: "a list of strings",
}


def _check(value: Any, expected: Any, meta: Any, where: str) -> None:
    if expected == list[str]:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f"{where} must be {_TYPE_NAMES.get(expected, expected)}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    low, high, off = meta.get("min"), meta.get("max"), meta.get("off")
    if off is not None and value == off:
        return
    if low is not None and value < low:
        least = f"{off} or at least {low}" if off is not None else f"at least {low}"
        raise ConfigError(f"{where} must be {least}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{where} must be at most {high}, got {value!r}")
