"""The IRC gateway: the Handler an IRC listener serves its connections with, on the hub.

Rule: this is the one place that knows IRC verbs. It holds each connection's
IRC state (registration, CAP, USER's names, user modes, AWAY), turns each
parsed message into a call of the hub's API (say, join, private, rename, ...)
and answers the queries (NAMES, WHO, WHOIS, LIST, MODE, LUSERS) from the
hub's data and its own; the hub's own
replies and every event come back through the connection's
:class:`chatd.wire.irc.IrcWire`. Like the hub, it knows nothing of sockets:
the reactor hands it raw lines and it writes to :class:`~chatd.core.link.Link`\\ s.

It lives beside the hub and the admin service, not in chatd/wire: wire
modules know bytes and one connection and never the hub (DESIGN.md, rule 2),
and this module drives the hub.

Text from IRC users is stripped of IRC formatting (bold, colours) and cleaned
with chatd.wire.text before the hub sees it, so nc users get the words alone.
What the hub refuses with a sentence is answered with the IRC numeric for it
where clients expect one (401, 403, 404, 441, 442, 482, ...), found from the
hub's state rather than from the sentence's words, and as a NOTICE otherwise.

The ``[irc]`` settings it reads: server_name, network and service_nick as
the gateway is made (they name the server and the service in every line, so
they stay for the server's life); autojoin and ping_interval when used (a
reload changes them); motd_file when made and on :meth:`IrcGateway.reload_motd`.

PINGs from the server: a connection silent for ``ping_interval`` seconds is
sent ``PING``; silent as long again, it is dropped with the QUIT reason
``Ping timeout: N seconds``. Any line counts as an answer. One timer per
connection, moved only when it fires: a line costs two stores, not a timer.

Capabilities: ``server-time`` (CAP LS 302 and plain CAP LS alike). Asked for
before registration, it gives the connection the ``irc+time`` format (see
:class:`chatd.wire.irc.IrcWire`); after registration the format is fixed, so
a CAP REQ that would change it is NAKed.
"""

from __future__ import annotations

import base64
import functools
import logging
import re
from collections.abc import Callable, Container
from typing import Final

import chatd
from chatd.config import Config, ConfigError
from chatd.core.datafiles import DataFileError, read_text
from chatd.core.hub import SERVICE_NICKS, Hub, State, User
from chatd.core.invocation import Invocation
from chatd.core.link import Link
from chatd.core.nicks import PENDING, nick_problem, taken
from chatd.core.rooms import Room, room_problem
from chatd.core.timers import Timer
from chatd.wire import irc
from chatd.wire import irc_message as im
from chatd.wire.irc_message import (
    EmptyLine,
    InputTooLong,
    IrcParseError,
    Message,
    ctcp,
    ctcp_of,
    irc_fold,
    mask_match,
    strip_formatting,
)
from chatd.wire.text import one_line

log = logging.getLogger(__name__)

#: The MOTD when ``[irc] motd_file`` is empty.
BUNDLED_MOTD: Final = """Welcome to chatd: one chat for nc, chatd connect and IRC users.
Rooms are channels: /join #name, /list to see them.
Plugin commands: /msg {service} help (or /quote HELP), e.g. /msg {service} game.
Messages and names from nc users reach you as they would from IRC users."""
#: Largest MOTD file read: a MOTD is a screenful, not a document.
MAX_MOTD_BYTES: Final = 64 * 1024

# Numerics irc_message does not name (modern.ircdocs.horse).
ERR_INVALIDCAPCMD: Final = "410"
ERR_TOOMANYTARGETS: Final = "407"
ERR_BADCHANNAME: Final = "479"
# SASL (IRCv3 sasl-3.1)
RPL_LOGGEDIN: Final = "900"
RPL_SASLSUCCESS: Final = "903"
ERR_SASLFAIL: Final = "904"
ERR_SASLTOOLONG: Final = "905"
ERR_SASLABORTED: Final = "906"
ERR_SASLALREADY: Final = "907"
RPL_SASLMECHS: Final = "908"
RPL_ENDOFBANLIST: Final = "368"

# What a username keeps: RFC 2812's "user" is any octet but NUL, CR, LF, space
# and "@"; chatd keeps printable ASCII without the characters a mask gives
# meaning to, so a WHO reply's username reads the same in every client.
_USERNAME_DROP: Final = re.compile(r"[^!-~]|[@!*?]")

#: Most users one WHO mask lists (``WHO *`` names everyone): one short line
#: must not queue a reply the size of the server. A channel's members are
#: asked for with ``WHO #room``, which lists them all.
MAX_WHO_MATCHES: Final = 100

#: Verbs a connection may send before it is registered; anything else is 451.
#: PING too: clients and bouncers check the link while they negotiate CAP.
_BEFORE_REGISTRATION: Final = frozenset(
    {"CAP", "NICK", "USER", "PASS", "AUTHENTICATE", "QUIT", "PING", "PONG"}
)
#: SASL (IRCv3): the one mechanism, and the most a client may send of it: an
#: AUTHENTICATE line carries at most 400 bytes of base64, and PLAIN's
#: authzid, authcid and password fit in a few lines; past that it is refused.
SASL_MECHANISMS: Final = ("PLAIN",)
SASL_CHUNK: Final = 400
MAX_SASL_BYTES: Final = 4 * SASL_CHUNK


class IrcSession:
    """One IRC connection: the hub's user, its wire, and its registration state."""

    __slots__ = (
        "away",
        "cap_pending",
        "heard",
        "invisible",
        "nick",
        "password",
        "pinged",
        "realname",
        "sasl",
        "sasl_account",
        "sasl_data",
        "timer",
        "user",
        "username",
        "wire",
    )

    def __init__(self, user: User, wire: irc.IrcWire, now: float) -> None:
        self.user = user
        self.wire = wire
        self.nick = ""  # the nickname asked for, until the hub names the user
        self.password = ""  # PASS: the account password, until registration takes it
        self.username = ""
        self.realname = ""
        self.cap_pending = False  # CAP LS/REQ seen, CAP END not yet
        self.sasl = False  # the sasl capability is on
        self.sasl_data: str | None = None  # AUTHENTICATE PLAIN begun: the base64 so far
        self.sasl_account = ""  # the account SASL logged in to, until registration
        self.invisible = False  # user mode +i: WHO masks do not show it
        self.away = ""  # AWAY's message while it is away
        self.heard = now  # when its last line came
        self.pinged: float | None = None  # when the server PINGed it, unanswered since
        self.timer: Timer | None = None  # the ping check, once registered

    @property
    def link(self) -> Link:
        return self.user.link

    def __repr__(self) -> str:
        return f"<IrcSession {self.user!r}>"


def _text(raw: str) -> str:
    """A line of chat from an IRC user as the hub takes it: formatting stripped, cleaned."""
    return one_line(strip_formatting(raw)).rstrip()


def _targets(param: str) -> list[str]:
    return [t for t in param.split(",") if t]


def _username(raw: str) -> str:
    """USER's username as WHO and WHOIS show it: printable ASCII, at most
    irc.USERLEN characters ("" when nothing of it is left)."""
    return _USERNAME_DROP.sub("", raw)[: irc.USERLEN]


def load_motd(config: Config) -> tuple[str, ...]:
    """The MOTD's lines: ``[irc] motd_file``, or the bundled one. Raises
    ConfigError, one line naming the setting and the file."""
    setting = config.irc.motd_file
    if not setting:
        text = BUNDLED_MOTD.format(service=config.irc.service_nick)
    else:
        try:
            text = read_text(config.path(setting), MAX_MOTD_BYTES)
        except DataFileError as exc:
            raise ConfigError(f"[irc] motd_file: {exc}") from None
    return tuple(one_line(line).rstrip() for line in text.splitlines())


def server_of(config: Config) -> irc.IrcServer:
    """What the IRC lines say of this server, from the settings."""
    settings = config.irc
    return irc.IrcServer(
        settings.server_name,
        settings.network,
        topic_len=config.rooms.max_topic_chars,
        motd=load_motd(config),
        service=settings.service_nick,
    )


class IrcGateway:
    """chatd.core.link.Handler for IRC connections, on ``hub``.

    ``info`` is what the lines say of the server (by default from the hub's
    settings: :func:`server_of`, which raises ConfigError for a MOTD file that
    cannot be read). ``commands`` gives the plugin command names in force (a
    reload changes them), for IRC verbs that are plugin commands (``GAME``);
    by default the plugin host's command table.
    """

    def __init__(
        self,
        hub: Hub,
        info: irc.IrcServer | None = None,
        commands: Callable[[], Container[str]] | None = None,
    ) -> None:
        self.hub = hub
        self.info = info if info is not None else server_of(hub.config)
        self._commands = commands or self._plugin_commands
        self.sessions: set[IrcSession] = set()
        self._session_of: dict[User, IrcSession] = {}  # the IRC users' sessions

    @property
    def service(self) -> str:
        return self.info.service

    def reload_motd(self) -> str:
        """Read ``[irc] motd_file`` again (the settings or the file may have
        changed); returns one line saying what changed, "" for nothing. A file
        that cannot be read keeps the MOTD in force, and says so."""
        try:
            motd = load_motd(self.hub.config)
        except ConfigError as exc:
            return f"irc: kept the MOTD in force: {exc}"
        if motd == self.info.motd:
            return ""
        self.info.motd = motd
        return f"irc: MOTD: {len(motd)} lines"

    def settings_changed(self) -> None:
        """The settings were reloaded: TOPICLEN follows ``[rooms] max_topic_chars``,
        and every ping check ``[irc] ping_interval``."""
        self.info.topic_len = self.hub.config.rooms.max_topic_chars
        for session in self.sessions:
            if self.hub.is_online(session.user):
                self._arm_ping(session)

    def _plugin_commands(self) -> Container[str]:
        table: Container[str] = getattr(self.hub.plugins, "commands", ())
        return table

    # -- Handler --------------------------------------------------------------------

    def connect(self, link: Link) -> IrcSession:
        wire = irc.IrcWire(info=self.info)
        user = self.hub.connect(link, wire)
        wire.owner = user
        session = IrcSession(user, wire, self.hub.clock())
        if user.state is not State.GONE:  # not turned away (a banned address)
            self.sessions.add(session)
            self._session_of[user] = session
        return session

    def receive_line(self, session: IrcSession, line: bytes) -> None:
        try:
            self._receive_line(session, line)
        finally:
            self.hub.desk.settle()  # a password this line gave (a hub with no loop)

    def _receive_line(self, session: IrcSession, line: bytes) -> None:
        if session not in self.sessions:
            return
        try:
            msg = im.parse(line)
        except EmptyLine:
            return
        except InputTooLong:
            self._numeric(session, im.ERR_INPUTTOOLONG, "Input line was too long")
            return
        except IrcParseError as error:
            self._notice(session, f"Line ignored: {error.reason}.")
            return
        user = session.user
        now = self.hub.clock()
        session.heard, session.pinged = now, None  # any line answers a PING
        named = self.hub.is_online(user)
        if named:
            if msg.command not in ("PING", "PONG"):  # a client's lag check is not activity
                user.lines += 1
                user.last_active = now
                self.hub.stats.lines_in += 1
        elif msg.command not in _BEFORE_REGISTRATION:
            self._numeric(session, im.ERR_NOTREGISTERED, "You have not registered")
            return
        try:
            self._dispatch(session, msg)
        except ValueError as error:
            # A reply the codec refused (our bug: a client's word put where it
            # cannot go): that one line is lost, never the connection.
            log.warning("irc: %s: reply to %s refused: %s", user.link.peer, msg.command, error)
            self._notice(session, f"{msg.command}: that could not be answered.")

    def _dispatch(self, session: IrcSession, msg: Message) -> None:
        handler = _COMMANDS.get(msg.command)
        if handler is not None:
            handler(self, session, msg)
        elif msg.command.lower() in self._commands():
            args = _text(" ".join(msg.params)).strip()
            self.hub.plugins.run_command(session.user, Invocation(msg.command.lower(), args))
        else:
            self._numeric(session, im.ERR_UNKNOWNCOMMAND, msg.command, "Unknown command")

    def line_too_long(self, session: IrcSession, limit: int) -> None:
        if session in self.sessions:
            self._numeric(session, im.ERR_INPUTTOOLONG, "Input line was too long")

    def slowed(self, session: IrcSession, rate: float) -> None:
        self.hub.slowed(session.user, rate)

    def refused(self, reason: str) -> bytes:
        return irc.message("", "ERROR", one_line(reason))

    def disconnect(self, session: IrcSession, reason: str) -> None:
        self._forget(session)
        self.hub.disconnect(session.user, reason)

    def _forget(self, session: IrcSession) -> None:
        self.sessions.discard(session)
        self._session_of.pop(session.user, None)
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None

    def shutdown(self, message: str) -> None:
        """Tell every IRC connection ``message`` with ERROR and close it. The
        users themselves are the hub's: its own shutdown forgets them."""
        for session in list(self.sessions):
            session.link.send(irc.message("", "ERROR", one_line(message)))
            session.link.close()
            self._forget(session)

    # -- the server's PINGs --------------------------------------------------------------

    def _arm_ping(self, session: IrcSession) -> None:
        """(Re)schedule ``session``'s ping check for when it would next be due."""
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None
        interval = self.hub.config.irc.ping_interval
        if interval > 0:
            since = session.pinged if session.pinged is not None else session.heard
            due = max(0.0, since + interval - self.hub.clock())
            check = functools.partial(self._ping_check, session)
            session.timer = self.hub.timers.call_later(due, check)

    def _ping_check(self, session: IrcSession) -> None:
        session.timer = None
        interval = self.hub.config.irc.ping_interval
        if session not in self.sessions or interval <= 0:
            return
        now = self.hub.clock()
        if session.pinged is not None and now - session.pinged >= interval:
            self._drop(session, f"Ping timeout: {interval:g} seconds")
            return
        if session.pinged is None and now - session.heard >= interval:
            session.link.send(irc.message("", "PING", self.info.name))
            session.pinged = now
        self._arm_ping(session)

    def _drop(self, session: IrcSession, reason: str) -> None:
        """Close ``session`` for ``reason`` (the QUIT reason the others see)."""
        log.info("irc: %s (%s): %s", self._nick(session), session.link.peer, reason)
        self._forget(session)
        self.hub.close_user(session.user, reason)  # its ERROR :Closing Link: nick (reason)

    # -- replies ----------------------------------------------------------------------

    def _nick(self, session: IrcSession) -> str:
        return session.user.nick or "*"

    def _numeric(self, session: IrcSession, code: str, *params: str) -> None:
        session.link.send(irc.numeric(self._nick(session), code, *params, server=self.info.name))

    def _notice(self, session: IrcSession, text: str) -> None:
        session.link.send(irc.notices(self._nick(session), text, self.info.name))

    def _need(self, session: IrcSession, msg: Message, count: int) -> bool:
        """Whether ``msg`` has ``count`` params (non-empty); else 461 is sent."""
        if len(msg.params) >= count and all(msg.params[:count]):
            return True
        self._numeric(session, im.ERR_NEEDMOREPARAMS, msg.command, "Not enough parameters")
        return False

    def _room_numeric(self, session: IrcSession, name: str, nick: str, problem: str) -> None:
        """The numeric for ``problem`` (what the hub said of an operator's act on
        ``nick`` in room ``name``), found from the state the hub refused in."""
        user = session.user
        room = self.hub.find_room(name)
        target = self.hub.find(nick) if nick else None
        if room is None:
            self._numeric(session, im.ERR_NOSUCHCHANNEL, name, problem)
        elif user not in room.members:
            self._numeric(session, im.ERR_NOTONCHANNEL, room.name, "You're not on that channel")
        elif (room.ops and user not in room.ops) or (nick and not room.ops):
            # Refused for want of operator rights (a room without operators has
            # none to give; its topic is anyone's, so a topic refusal is not this).
            self._numeric(session, im.ERR_CHANOPRIVSNEEDED, room.name, problem)
        elif nick and target is None:
            self._numeric(session, im.ERR_NOSUCHNICK, nick, "No such nick/channel")
        elif nick and target is not None and target not in room.members:
            self._numeric(
                session, im.ERR_USERNOTINCHANNEL, nick, room.name, "They aren't on that channel"
            )
        else:
            self._notice(session, problem)

    # -- registration -------------------------------------------------------------------

    def _cap(self, session: IrcSession, msg: Message) -> None:
        if not self._need(session, msg, 1):
            return
        sub = msg.params[0].upper()
        nick = self._nick(session)
        registered = self.hub.is_online(session.user)
        server = self.info.name
        if sub == "LS":
            session.cap_pending = not registered
            version = msg.params[1] if len(msg.params) > 1 else ""
            # CAP LS 302 and later: values (sasl=PLAIN); earlier: names alone.
            values = version.isdigit() and int(version) >= 302
            sasl = f"sasl={','.join(SASL_MECHANISMS)}" if values else "sasl"
            offered = " ".join(sasl if c == "sasl" else c for c in irc.CAPABILITIES)
            session.link.send(irc.message(server, "CAP", nick, "LS", offered))
        elif sub == "LIST":
            enabled = " ".join(c for c in irc.CAPABILITIES if c in self._caps(session))
            session.link.send(irc.message(server, "CAP", nick, "LIST", enabled))
        elif sub == "REQ":
            session.cap_pending = not registered
            asked = msg.params[1] if len(msg.params) > 1 else ""
            wanted = self._cap_request(asked, self._caps(session), registered)
            if wanted is None:
                session.link.send(irc.message(server, "CAP", nick, "NAK", one_line(asked)))
            else:
                session.wire.server_time = "server-time" in wanted
                session.sasl = "sasl" in wanted
                session.link.send(irc.message(server, "CAP", nick, "ACK", asked))
        elif sub == "END":
            session.cap_pending = False
            self._try_register(session)
        else:
            self._numeric(session, ERR_INVALIDCAPCMD, msg.params[0], "Invalid CAP command")

    @staticmethod
    def _caps(session: IrcSession) -> frozenset[str]:
        """The capabilities ``session`` has on."""
        return frozenset(
            name
            for name, on in (("server-time", session.wire.server_time), ("sasl", session.sasl))
            if on
        )

    @staticmethod
    def _cap_request(
        asked: str, enabled: frozenset[str], registered: bool
    ) -> frozenset[str] | None:
        """The capabilities on after ``CAP REQ :asked``, or None to NAK it (all
        or nothing, IRCv3): a capability chatd lacks, nothing asked, or a
        change of format once registered (server-time)."""
        names = asked.split()
        if not names:
            return None
        wanted = set(enabled)
        for name in names:
            cap = name.removeprefix("-")
            if cap not in irc.CAPABILITIES:
                return None
            if name.startswith("-"):
                wanted.discard(cap)
            else:
                wanted.add(cap)
        if registered and ("server-time" in wanted) != ("server-time" in enabled):
            return None
        return frozenset(wanted)

    def _nick_refusal(self, nick: str, user: User) -> tuple[str, str] | None:
        """(numeric, text) when ``nick`` cannot be ``user``'s nickname."""
        problem = self.hub.nick_refusal(user, nick)
        if problem is None:
            return None
        taken = nick_problem(nick) is None and self.hub.nick_taken(nick, user)
        return (im.ERR_NICKNAMEINUSE if taken else im.ERR_ERRONEUSNICKNAME), problem

    def _nick_cmd(self, session: IrcSession, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self._numeric(session, im.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = msg.params[0]
        user = session.user
        if nick == user.nick:
            return
        refusal = self._nick_refusal(nick, user)
        registering = not self.hub.is_online(user)
        # A registered nick someone else has: with its PASS, registration takes it.
        ghost = registering and self.hub.desk.registered(nick) and self.hub.find(nick) is not None
        if refusal is not None and not ghost:
            self._numeric(session, refusal[0], nick, refusal[1])
            return
        if registering:
            session.nick = nick
            self._try_register(session)
            return
        again = functools.partial(self._nick_cmd, session, msg)
        problem = self.hub.rename(user, nick, retry=again)
        if problem == taken(nick):  # the cluster's answer (another node's user has it)
            self._numeric(session, im.ERR_NICKNAMEINUSE, nick, problem)
        elif problem and problem is not PENDING:  # a ban
            self._numeric(session, im.ERR_ERRONEUSNICKNAME, nick, problem)
        # Done: the hub tells the others, and this client its own NICK line
        # (YouRenamed), however the rename came (a plugin's /nick too).

    def _user_cmd(self, session: IrcSession, msg: Message) -> None:
        if self.hub.is_online(session.user):
            self._numeric(session, im.ERR_ALREADYREGISTERED, "You may not reregister")
            return
        # An empty username or real name is a missing one (modern.ircdocs.horse:
        # "If the client sends an empty <realname>, ERR_NEEDMOREPARAMS").
        if len(msg.params) < 4 or not msg.params[0] or not msg.params[3]:
            self._numeric(session, im.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
            return
        # Kept as given for registration (any username will do), shown cleaned.
        session.username, session.realname = msg.params[0], _text(msg.params[3])
        self._try_register(session)

    def _pass_cmd(self, session: IrcSession, msg: Message) -> None:
        if self.hub.is_online(session.user):
            self._numeric(session, im.ERR_ALREADYREGISTERED, "You may not reregister")
            return
        if not msg.params:
            self._numeric(session, im.ERR_NEEDMOREPARAMS, "PASS", "Not enough parameters")
            return
        # The password of the nickname's account (chatd has no server
        # password): checked when registration completes; never logged.
        session.password = msg.params[0]

    def _authenticate(self, session: IrcSession, msg: Message) -> None:
        """SASL PLAIN (IRCv3): base64 of ``authzid NUL account NUL password``,
        checked as PASS is; 900 and 903 when right, 904 when not."""
        if not self._need(session, msg, 1):
            return
        if self.hub.is_online(session.user) or session.sasl_account:
            self._numeric(session, ERR_SASLALREADY, "You have already authenticated")
            return
        if not session.sasl:
            self._numeric(session, ERR_SASLFAIL, "SASL authentication failed: no CAP REQ :sasl")
            return
        data = msg.params[0]
        if data == "*":
            session.sasl_data = None
            self._numeric(session, ERR_SASLABORTED, "SASL authentication aborted")
            return
        if session.sasl_data is None:  # the mechanism
            if data.upper() not in SASL_MECHANISMS:
                self._numeric(session, RPL_SASLMECHS, ",".join(SASL_MECHANISMS), "are available")
                self._numeric(session, ERR_SASLFAIL, "SASL authentication failed")
                return
            session.sasl_data = ""
            session.link.send(b"AUTHENTICATE +\r\n")
            return
        if data != "+":
            session.sasl_data += data
        if len(session.sasl_data) > MAX_SASL_BYTES:
            session.sasl_data = None
            self._numeric(session, ERR_SASLTOOLONG, "SASL message too long")
            return
        if len(data) == SASL_CHUNK:
            return  # more follows
        encoded, session.sasl_data = session.sasl_data, None
        try:
            _, account, password = base64.b64decode(encoded, validate=True).decode().split("\0")
        except (ValueError, UnicodeDecodeError):
            self._numeric(session, ERR_SASLFAIL, "SASL authentication failed")
            return

        def done(name: str) -> None:
            session.sasl_account = name
            mask = f"{self._nick(session)}!{_username(session.username) or '*'}@{irc.CLOAK}"
            self._numeric(session, RPL_LOGGEDIN, mask, name, f"You are now logged in as {name}")
            self._numeric(session, RPL_SASLSUCCESS, "SASL authentication successful")

        def failed(why: str) -> None:
            self._numeric(session, ERR_SASLFAIL, f"SASL authentication failed: {why}")

        self.hub.desk.authenticate(session.user, account, password, done, failed)

    def _try_register(self, session: IrcSession) -> None:
        if session.cap_pending or not session.nick or not session.username:
            return
        user, nick = session.user, session.nick
        if self.hub.is_online(user):
            return
        refusal = self._nick_refusal(nick, user)
        autojoin = self.hub.config.irc.autojoin
        # Its lines come from nick!~username@chatd ("~": nobody vouched for the
        # name), WHO and WHOIS say the same; nothing usable left: the nick.
        username = _username(session.username)
        user.ident = f"~{username}" if username else ""
        account = session.sasl_account
        if account and irc_fold(account) == irc_fold(nick):
            self._take_registered(session, nick, autojoin)  # SASL proved this nick's password
            return
        if self.hub.desk.registered(nick) and (refusal is None or self.hub.find(nick)):
            self._log_in(session, nick, autojoin)
            return
        again = functools.partial(self._try_register, session)
        problem = refusal[1] if refusal else self.hub.register(user, nick, autojoin, retry=again)
        if problem is PENDING:
            return  # the cluster is asked whether the nick is free: this runs again then
        if problem == taken(nick) and refusal is None:  # the cluster's answer
            refusal = (im.ERR_NICKNAMEINUSE, problem)
        if not problem and account:
            self.hub.desk.identify_as(user, account)  # logged in under another nick
        if problem:
            session.nick = ""  # the client sends another NICK
            code = refusal[0] if refusal else im.ERR_ERRONEUSNICKNAME
            self._numeric(session, code, nick, problem)
            return
        self._arm_ping(session)

    def _take_registered(self, session: IrcSession, nick: str, autojoin: list[str]) -> None:
        user = session.user
        again = functools.partial(self._take_registered, session, nick, autojoin)
        problem = self.hub.desk.take_verified(user, nick, autojoin, again)
        if problem is PENDING:
            return
        if problem:
            session.nick = ""
            self._numeric(session, im.ERR_NICKNAMEINUSE, nick, problem)
            return
        self._arm_ping(session)

    def _log_in(self, session: IrcSession, nick: str, autojoin: list[str]) -> None:
        """Registration with a registered nickname: its PASS must be its
        password (checked off the loop; the client waits for its 001)."""
        password, session.password = session.password, ""

        def refused(why: str, wrong: bool) -> None:
            session.nick = ""  # the client sends another NICK (or is closed)
            if wrong:
                self._numeric(session, im.ERR_PASSWDMISMATCH, "Password incorrect")
                self.hub.close_user(session.user, "Password incorrect")
            else:
                self._numeric(session, im.ERR_NICKNAMEINUSE, nick, why)

        def done() -> None:
            self._arm_ping(session)

        self.hub.desk.login(session.user, nick, password, autojoin, refused, done)

    # -- after registration ------------------------------------------------------------------

    def _ping(self, session: IrcSession, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self._numeric(session, im.ERR_NOORIGIN, "No origin specified")
            return
        server = self.info.name
        session.link.send(irc.message(server, "PONG", server, msg.params[0]))

    def _pong(self, session: IrcSession, msg: Message) -> None:
        pass  # like any line, it answered the server's PING (receive_line)

    def _quit(self, session: IrcSession, msg: Message) -> None:
        reason = _text(msg.params[0]) if msg.params else ""
        self._forget(session)
        self.hub.quit(session.user, reason)  # its Goodbye is ERROR :Closing Link: nick (...)

    def _join(self, session: IrcSession, msg: Message) -> None:
        if not self._need(session, msg, 1):
            return
        user = session.user
        if msg.params[0] == "0":
            for joined in list(user.rooms.values()):
                self.hub.part(user, joined.name)
            return
        for name in _targets(msg.params[0]):
            room = self.hub.find_room(name)
            if room is not None and user in room.members:
                continue  # the hub would only make it current, which IRC has not
            problem = room_problem(name)
            if problem:
                self._numeric(session, ERR_BADCHANNAME, name, problem)
                continue
            problem = self.hub.join(user, name)
            if problem:
                full = len(user.rooms) >= self.hub.config.rooms.max_rooms_per_user
                code = im.ERR_TOOMANYCHANNELS if full else im.ERR_NOSUCHCHANNEL
                self._numeric(session, code, name, problem)

    def _part(self, session: IrcSession, msg: Message) -> None:
        if not self._need(session, msg, 1):
            return
        user = session.user
        reason = _text(msg.params[1]) if len(msg.params) > 1 else ""
        for name in _targets(msg.params[0]):
            room = self.hub.find_room(name)
            if room is None:
                self._numeric(session, im.ERR_NOSUCHCHANNEL, name, "No such channel")
            elif user not in room.members:
                self._numeric(session, im.ERR_NOTONCHANNEL, room.name, "You're not on that channel")
            else:
                problem = self.hub.part(user, room.name, reason)
                if problem:
                    self._notice(session, problem)

    def _privmsg(self, session: IrcSession, msg: Message) -> None:
        self._message(session, msg, notice=False)

    def _notice_cmd(self, session: IrcSession, msg: Message) -> None:
        self._message(session, msg, notice=True)

    def _message(self, session: IrcSession, msg: Message, *, notice: bool) -> None:
        """PRIVMSG and NOTICE alike, but a NOTICE is never answered (RFC 2812 3.3.2)."""
        if not msg.params or not msg.params[0]:
            if not notice:
                self._numeric(session, im.ERR_NORECIPIENT, f"No recipient given ({msg.command})")
            return
        raw = msg.params[1] if len(msg.params) > 1 else ""
        request = ctcp_of(raw)
        text = _text(request[1] if request else raw)
        if not text and request is None:
            if not notice:
                self._numeric(session, im.ERR_NOTEXTTOSEND, "No text to send")
            return
        targets = list({irc_fold(t): t for t in _targets(msg.params[0])}.values())  # once each
        if len(targets) > irc.MAX_TARGETS:
            # One line must not become dozens of messages: flood control counts lines.
            for extra in targets[irc.MAX_TARGETS :]:
                if not notice:
                    self._numeric(session, ERR_TOOMANYTARGETS, extra, "Too many targets")
            targets = targets[: irc.MAX_TARGETS]
        for target in targets:
            if target.startswith("#"):
                self._to_channel(session, target, text, request, notice)
            elif irc_fold(target) in (irc_fold(self.service), *SERVICE_NICKS):
                # NickServ and its kind are chatd's service too: an IDENTIFY
                # sent there by a client's script reaches /identify.
                if not notice:
                    self._to_service(session, text, request)
            else:
                self._to_nick(session, target, text, request, notice)

    def _to_channel(
        self,
        session: IrcSession,
        name: str,
        text: str,
        request: tuple[str, str] | None,
        notice: bool,
    ) -> None:
        user = session.user
        room = self.hub.find_room(name)
        if room is None or user not in room.members:
            if not notice:
                code = im.ERR_NOSUCHCHANNEL if room is None else im.ERR_CANNOTSENDTOCHAN
                self._numeric(session, code, name, "Cannot send to channel")
            return
        if request is None:
            self.hub.say(user, text, room.name, notice=notice)
        elif request[0] == "ACTION" and text:
            self.hub.emote(user, text, room.name)
        # Other CTCPs to a channel are dropped: nc users could not answer them.

    def _to_nick(
        self,
        session: IrcSession,
        nick: str,
        text: str,
        request: tuple[str, str] | None,
        notice: bool,
    ) -> None:
        user = session.user
        if request is not None:
            if request[0] in ("VERSION", "PING"):
                if not notice:  # a CTCP reply (a NOTICE) is never answered
                    self._ctcp_for(session, nick, request)
                return
            if request[0] != "ACTION" or not text:
                return  # another CTCP: no one here could answer it
        action = request is not None  # a private /me
        problem = self.hub.private(user, nick, text, notice=notice, action=action)
        to = self.hub.find(nick)
        if notice:
            return  # never answered
        if to is None:
            if problem:  # no such user (else it was kept for its account: the hub said so)
                self._numeric(session, im.ERR_NOSUCHNICK, nick, "No such nick/channel")
        elif problem:
            self._notice(session, problem)
        elif self._away(to):
            self._numeric(session, im.RPL_AWAY, to.nick, self._away(to))

    def _ctcp_for(self, session: IrcSession, nick: str, request: tuple[str, str]) -> None:
        """CTCP VERSION or PING to ``nick``, answered by the server in its name:
        CTCP does not cross to nc users (nor between IRC users: chatd's events
        carry clean text), and clients wait for an answer."""
        to = self.hub.find(nick)
        if to is None:
            self._numeric(session, im.ERR_NOSUCHNICK, nick, "No such nick/channel")
            return
        verb, args = request
        answer = f"chatd {chatd.__version__}" if verb == "VERSION" else one_line(args)
        src = irc.source(to.nick, to.ident)
        session.link.send(irc.message(src, "NOTICE", self._nick(session), ctcp(verb, answer)))

    def _to_service(self, session: IrcSession, text: str, request: tuple[str, str] | None) -> None:
        """``/msg chatd fact``: the text is a command line, with or without its "/"."""
        if request is not None:
            verb = request[0]
            if verb in ("VERSION", "PING"):
                answer = f"chatd {chatd.__version__}" if verb == "VERSION" else request[1]
                src = irc.source(self.service)
                session.link.send(
                    irc.message(src, "NOTICE", self._nick(session), ctcp(verb, answer))
                )
            return
        name, _, args = text.removeprefix("/").partition(" ")
        self.hub.plugins.run_command(session.user, Invocation(name.lower(), args.strip()))

    def _names(self, session: IrcSession, msg: Message) -> None:
        user = session.user
        names = _targets(msg.params[0]) if msg.params else [r.name for r in user.rooms.values()]
        if not names:  # in no channel: clients still wait for the end of the list
            self._numeric(session, im.RPL_ENDOFNAMES, "*", "End of /NAMES list")
        for name in names:
            if self.hub.who(user, name):
                self._numeric(session, im.RPL_ENDOFNAMES, name, "End of /NAMES list")

    def _topic(self, session: IrcSession, msg: Message) -> None:
        if not self._need(session, msg, 1):
            return
        user, name = session.user, msg.params[0]
        room = self.hub.find_room(name)
        if len(msg.params) == 1:
            if room is None:
                self._numeric(session, im.ERR_NOSUCHCHANNEL, name, "No such channel")
            elif user not in room.members:
                self._numeric(session, im.ERR_NOTONCHANNEL, room.name, "You're not on that channel")
            elif room.topic:
                self._numeric(session, im.RPL_TOPIC, room.name, one_line(room.topic))
            else:
                self._numeric(session, im.RPL_NOTOPIC, room.name, "No topic is set")
            return
        problem = self.hub.set_topic(user, name, _text(msg.params[1]))
        if problem:
            self._room_numeric(session, name, "", problem)

    def _kick(self, session: IrcSession, msg: Message) -> None:
        if not self._need(session, msg, 2):
            return
        name = msg.params[0]
        reason = _text(msg.params[2]) if len(msg.params) > 2 else ""
        for nick in _targets(msg.params[1]):
            problem = self.hub.kick_from_room(session.user, name, nick, reason)
            if problem:
                self._room_numeric(session, name, nick, problem)

    def _mode(self, session: IrcSession, msg: Message) -> None:
        if not self._need(session, msg, 1):
            return
        target = msg.params[0]
        if target.startswith("#"):
            self._channel_mode(session, target, msg.params[1:])
        else:
            self._user_mode(session, target, msg.params[1:])

    def _channel_mode(self, session: IrcSession, name: str, args: tuple[str, ...]) -> None:
        room = self.hub.find_room(name)
        if room is None:
            self._numeric(session, im.ERR_NOSUCHCHANNEL, name, "No such channel")
            return
        if not args:
            # The topic is for operators while the room has any: that is +t.
            self._numeric(session, im.RPL_CHANNELMODEIS, room.name, "+t" if room.ops else "+")
            return
        modes, rest = args[0], list(args[1:])
        if modes in ("b", "+b") and not rest:  # a ban-list query: chatd has no channel bans
            self._numeric(session, RPL_ENDOFBANLIST, room.name, "End of channel ban list")
            return
        adding = True
        for char in modes:
            if char in "+-":
                adding = char == "+"
            elif char == "o":
                if not rest:
                    self._numeric(session, im.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
                    return
                nick = rest.pop(0)
                problem = self.hub.set_op(session.user, room.name, nick, adding)
                mine = session.user in room.ops  # only an operator's no-op passes in silence
                if problem and not (mine and self._already(room, nick, adding)):
                    self._room_numeric(session, room.name, nick, problem)
            elif char == "t":
                self._topic_mode(session, room, adding)
            else:
                self._numeric(session, im.ERR_UNKNOWNMODE, char, "is an unknown mode char to me")

    def _topic_mode(self, session: IrcSession, room: Room, on: bool) -> None:
        """``MODE #room +t`` or ``-t``. chatd's rule makes +t: the topic is for
        operators while the room has any (004 and CHANMODES say t). So a MODE
        asking for what is so passes in silence, as a no-op does on any IRC
        server, and one asking otherwise is refused: the operators, not a mode,
        decide it."""
        user = session.user
        if user not in room.members:
            self._numeric(session, im.ERR_NOTONCHANNEL, room.name, "You're not on that channel")
        elif bool(room.ops) == on:
            return
        elif user not in room.ops:
            why = "You're not channel operator" if room.ops else "It has no operators to set it"
            self._numeric(session, im.ERR_CHANOPRIVSNEEDED, room.name, why)
        else:
            why = f"is on while {room.name} has an operator; it cannot be turned off"
            self._numeric(session, im.ERR_UNKNOWNMODE, "t", why)

    def _already(self, room: Room, nick: str, op: bool) -> bool:
        """Whether ``nick`` is (``op``) or is not an operator of ``room`` already:
        IRC servers let such a MODE pass without a word."""
        target = self.hub.find(nick)
        return target is not None and target in room.members and (target in room.ops) == op

    def _user_mode(self, session: IrcSession, nick: str, args: tuple[str, ...]) -> None:
        user = session.user
        if irc_fold(nick) != irc_fold(user.nick):
            if self.hub.find(nick) is None:
                self._numeric(session, im.ERR_NOSUCHNICK, nick, "No such nick/channel")
            else:
                self._numeric(session, im.ERR_USERSDONTMATCH, "Cannot change mode for other users")
            return
        if args:
            adding, unknown = True, False
            for char in args[0]:
                if char in "+-":
                    adding = char == "+"
                elif char == "i":
                    session.invisible = adding
                else:
                    unknown = True
            if unknown:
                self._numeric(session, im.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
        self._numeric(session, im.RPL_UMODEIS, "+i" if session.invisible else "+")

    def _identity(self, member: User) -> tuple[str, str]:
        """(username, real name) as WHO and WHOIS show ``member``: its ident, as
        the source of its lines has it (an IRC user's ``~name`` from USER, an nc
        user's first nick), and the real name USER gave, else the nick."""
        session = self._session_of.get(member)
        realname = session.realname if session is not None else ""
        return member.ident or member.nick, realname or member.nick

    def _away(self, member: User) -> str:
        """``member``'s AWAY message ("" while it is here; nc users always are)."""
        session = self._session_of.get(member)
        return session.away if session is not None else ""

    def _who_line(self, session: IrcSession, channel: str, member: User, op: bool) -> None:
        flags = ("G" if self._away(member) else "H") + ("@" if op else "")
        username, realname = self._identity(member)
        self._numeric(
            session,
            im.RPL_WHOREPLY,
            channel,
            username,
            irc.CLOAK,
            self.info.name,
            member.nick,
            flags,
            f"0 {realname}",
        )

    def _invisible(self, member: User) -> bool:
        session = self._session_of.get(member)
        return session is not None and session.invisible

    def _visible_to(self, asker: User, member: User) -> bool:
        """Whether a WHO mask shows ``member`` to ``asker``: unless it is +i
        and shares no channel with ``asker`` (RFC 2812 3.6.1)."""
        return (
            member is asker
            or not self._invisible(member)
            or not member.rooms.keys().isdisjoint(asker.rooms.keys())
        )

    def _who(self, session: IrcSession, msg: Message) -> None:
        mask = msg.params[0] if msg.params and msg.params[0] else "*"
        user = session.user
        opers_only = len(msg.params) > 1 and "o" in msg.params[1]  # chatd has no IRC operators
        if mask.startswith("#"):
            room = self.hub.find_room(mask)
            if room is not None and not opers_only:
                inside = user in room.members
                for member in sorted(room.members, key=lambda u: u.nick.lower()):
                    if inside or not self._invisible(member):
                        self._who_line(session, room.name, member, member in room.ops)
        elif not opers_only:
            for member in self._who_matches(user, "*" if mask == "0" else mask):
                self._who_line(session, "*", member, False)
        self._numeric(session, im.RPL_ENDOFWHO, mask, "End of WHO list")

    def _who_matches(self, asker: User, mask: str) -> list[User]:
        """Who ``WHO mask`` lists: a nick's user whatever its modes; for a mask
        (``*``, ``?``) the users whose nick matches and whom ``asker`` may see,
        in nick order, at most MAX_WHO_MATCHES."""
        if "*" not in mask and "?" not in mask:
            found = self.hub.find(mask)
            return [found] if found is not None else []
        matches = [
            member
            for member in self.hub.users()
            if mask_match(mask, member.nick) and self._visible_to(asker, member)
        ]
        matches.sort(key=lambda u: u.nick.lower())
        return matches[:MAX_WHO_MATCHES]

    def _whois(self, session: IrcSession, msg: Message) -> None:
        if not msg.params or not msg.params[-1]:
            self._numeric(session, im.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = msg.params[-1].split(",")[0]  # "WHOIS server nick" names the server first
        found = self.hub.find(nick)
        if found is None:
            self._numeric(session, im.ERR_NOSUCHNICK, nick, "No such nick/channel")
        else:
            nick = found.nick
            username, realname = self._identity(found)
            self._numeric(session, im.RPL_WHOISUSER, nick, username, irc.CLOAK, "*", realname)
            channels = " ".join(
                ("@" if found in room.ops else "") + room.name for room in found.rooms.values()
            )
            if channels:
                self._numeric(session, im.RPL_WHOISCHANNELS, nick, channels)
            away = self._away(found)
            if away:
                self._numeric(session, im.RPL_AWAY, nick, away)
            account = self.hub.desk.account_name(found)
            if account:  # what tells the nick's owner from someone using it
                self._numeric(session, im.RPL_WHOISACCOUNT, nick, account, "is logged in as")
            self._numeric(session, im.RPL_WHOISSERVER, nick, self.info.name, self.info.network)
        self._numeric(session, im.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")

    def _list(self, session: IrcSession, msg: Message) -> None:
        wanted = {irc_fold(n) for n in _targets(msg.params[0])} if msg.params else None
        for room in self.hub.rooms():
            if wanted is None or irc_fold(room.name) in wanted:
                count = str(len(room.members))
                self._numeric(session, im.RPL_LIST, room.name, count, one_line(room.topic))
        self._numeric(session, im.RPL_LISTEND, "End of /LIST")

    def _away_cmd(self, session: IrcSession, msg: Message) -> None:
        """``AWAY :message`` marks the user away (WHO's G, WHOIS and private
        messages say so); ``AWAY`` alone, or an empty message, marks it back."""
        session.away = _text(msg.params[0]) if msg.params else ""
        if session.away:
            self._numeric(session, im.RPL_NOWAWAY, "You have been marked as being away")
        else:
            self._numeric(session, im.RPL_UNAWAY, "You are no longer marked as being away")

    def _lusers(self, session: IrcSession, msg: Message) -> None:
        online = len(self.hub.users())
        peak = self.hub.stats.users_peak  # the hub's count: nc users' peaks included
        session.link.send(irc.lusers(self._nick(session), online, self.info.name, peak))

    def _motd(self, session: IrcSession, msg: Message) -> None:
        session.link.send(irc.motd(self._nick(session), self.info))


_COMMANDS: Final[dict[str, Callable[[IrcGateway, IrcSession, Message], None]]] = {
    "CAP": IrcGateway._cap,
    "AUTHENTICATE": IrcGateway._authenticate,
    "NICK": IrcGateway._nick_cmd,
    "USER": IrcGateway._user_cmd,
    "PASS": IrcGateway._pass_cmd,
    "PING": IrcGateway._ping,
    "PONG": IrcGateway._pong,
    "QUIT": IrcGateway._quit,
    "JOIN": IrcGateway._join,
    "PART": IrcGateway._part,
    "PRIVMSG": IrcGateway._privmsg,
    "NOTICE": IrcGateway._notice_cmd,
    "NAMES": IrcGateway._names,
    "TOPIC": IrcGateway._topic,
    "KICK": IrcGateway._kick,
    "MODE": IrcGateway._mode,
    "WHO": IrcGateway._who,
    "WHOIS": IrcGateway._whois,
    "LIST": IrcGateway._list,
    "LUSERS": IrcGateway._lusers,
    "AWAY": IrcGateway._away_cmd,
    "MOTD": IrcGateway._motd,
}
