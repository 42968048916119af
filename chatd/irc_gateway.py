"""The IRC gateway: the Handler an IRC listener serves its connections with, on the hub.

Rule: this is the one place that knows IRC verbs. It holds each connection's
IRC state (registration, CAP, user modes), turns each parsed message into a
call of the hub's API (say, join, private, rename, ...) and answers the queries
(NAMES, WHO, WHOIS, LIST, MODE, LUSERS) from the hub's data; the hub's own
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

Not yet here (the listener's step): the ``[irc]`` settings (server name,
network, MOTD, autojoin, service nick, ping interval), PINGs from the server,
capabilities (CAP LS advertises none), AWAY, and a reserved service nick in
the hub's nickname rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container
from typing import Final

from chatd.core.hub import Hub, State, User
from chatd.core.invocation import Invocation
from chatd.core.link import Link
from chatd.core.nicks import nick_problem
from chatd.core.rooms import Room, room_problem
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
    strip_formatting,
)
from chatd.wire.text import one_line

log = logging.getLogger(__name__)

#: Who plugin commands are sent to (``/msg chatd fact``); ``[irc] service_nick`` later.
SERVICE_NICK: Final = "chatd"

# Numerics irc_message does not name (modern.ircdocs.horse).
ERR_INVALIDCAPCMD: Final = "410"
ERR_BADCHANNAME: Final = "479"
RPL_ENDOFBANLIST: Final = "368"

#: Verbs a connection may send before it is registered; anything else is 451.
_BEFORE_REGISTRATION: Final = frozenset({"CAP", "NICK", "USER", "PASS", "QUIT", "PONG"})


class IrcSession:
    """One IRC connection: the hub's user, its wire, and its registration state."""

    __slots__ = ("cap_pending", "invisible", "nick", "realname", "user", "username", "wire")

    def __init__(self, user: User, wire: irc.IrcWire) -> None:
        self.user = user
        self.wire = wire
        self.nick = ""  # the nickname asked for, until the hub names the user
        self.username = ""
        self.realname = ""
        self.cap_pending = False  # CAP LS/REQ seen, CAP END not yet
        self.invisible = False  # user mode +i: shown by MODE, changes nothing

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


class IrcGateway:
    """chatd.core.link.Handler for IRC connections, on ``hub``.

    ``commands`` gives the plugin command names in force (a reload changes
    them), for IRC verbs that are plugin commands (``GAME``); by default the
    plugin host's command table.
    """

    def __init__(self, hub: Hub, commands: Callable[[], Container[str]] | None = None) -> None:
        self.hub = hub
        self._commands = commands or self._plugin_commands
        self.sessions: set[IrcSession] = set()

    def _plugin_commands(self) -> Container[str]:
        table: Container[str] = getattr(self.hub.plugins, "commands", ())
        return table

    # -- Handler --------------------------------------------------------------------

    def connect(self, link: Link) -> IrcSession:
        wire = irc.IrcWire(topic_len=self.hub.config.rooms.max_topic_chars)
        user = self.hub.connect(link, wire)
        wire.owner = user
        session = IrcSession(user, wire)
        if user.state is not State.GONE:  # not turned away (a banned address)
            self.sessions.add(session)
        return session

    def receive_line(self, session: IrcSession, line: bytes) -> None:
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
        named = self.hub.is_online(user)
        if named:
            if msg.command not in ("PING", "PONG"):  # a client's lag check is not activity
                user.lines += 1
                user.last_active = self.hub.clock()
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
        self.sessions.discard(session)
        self.hub.disconnect(session.user, reason)

    def shutdown(self, message: str) -> None:
        """Tell every IRC connection ``message`` with ERROR and close it. The
        users themselves are the hub's: its own shutdown forgets them."""
        for session in self.sessions:
            session.link.send(irc.message("", "ERROR", one_line(message)))
            session.link.close()
        self.sessions.clear()

    # -- replies ----------------------------------------------------------------------

    def _nick(self, session: IrcSession) -> str:
        return session.user.nick or "*"

    def _numeric(self, session: IrcSession, code: str, *params: str) -> None:
        session.link.send(irc.numeric(self._nick(session), code, *params))

    def _notice(self, session: IrcSession, text: str) -> None:
        session.link.send(irc.notices(self._nick(session), text))

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
        if sub == "LS":
            session.cap_pending = not registered
            session.link.send(irc.message(irc.SERVER_NAME, "CAP", nick, "LS", ""))
        elif sub == "LIST":
            session.link.send(irc.message(irc.SERVER_NAME, "CAP", nick, "LIST", ""))
        elif sub == "REQ":
            session.cap_pending = not registered
            wanted = msg.params[1] if len(msg.params) > 1 else ""
            session.link.send(irc.message(irc.SERVER_NAME, "CAP", nick, "NAK", wanted))
        elif sub == "END":
            session.cap_pending = False
            self._try_register(session)
        else:
            self._numeric(session, ERR_INVALIDCAPCMD, msg.params[0], "Invalid CAP command")

    def _nick_refusal(self, nick: str, user: User) -> tuple[str, str] | None:
        """(numeric, text) when ``nick`` cannot be ``user``'s nickname."""
        if irc_fold(nick) == SERVICE_NICK:
            return im.ERR_NICKNAMEINUSE, f"The nickname {nick} is taken; choose another."
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
        if refusal is not None:
            self._numeric(session, refusal[0], nick, refusal[1])
            return
        if not self.hub.is_online(user):
            session.nick = nick
            self._try_register(session)
            return
        problem = self.hub.rename(user, nick)
        if problem:  # a ban
            self._numeric(session, im.ERR_ERRONEUSNICKNAME, nick, problem)
        # Done: the hub tells the others, and this client its own NICK line
        # (YouRenamed), however the rename came (a plugin's /nick too).

    def _user_cmd(self, session: IrcSession, msg: Message) -> None:
        if self.hub.is_online(session.user):
            self._numeric(session, im.ERR_ALREADYREGISTERED, "You may not reregister")
            return
        if len(msg.params) < 4 or not msg.params[0]:
            self._numeric(session, im.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
            return
        session.username, session.realname = msg.params[0], msg.params[3]
        self._try_register(session)

    def _pass_cmd(self, session: IrcSession, msg: Message) -> None:
        if self.hub.is_online(session.user):
            self._numeric(session, im.ERR_ALREADYREGISTERED, "You may not reregister")
        # Accepted and ignored until accounts exist.

    def _try_register(self, session: IrcSession) -> None:
        if session.cap_pending or not session.nick or not session.username:
            return
        user, nick = session.user, session.nick
        if self.hub.is_online(user):
            return
        refusal = self._nick_refusal(nick, user)
        problem = refusal[1] if refusal else self.hub.register(user, nick)
        if problem:
            session.nick = ""  # the client sends another NICK
            code = refusal[0] if refusal else im.ERR_ERRONEUSNICKNAME
            self._numeric(session, code, nick, problem)
            return
        # Registration put the user in the default room without the member list
        # (nc's welcome names the room); an IRC client needs its JOIN and names.
        for room in list(user.rooms.values()):
            self.hub.room_state(user, room.name)

    # -- after registration ------------------------------------------------------------------

    def _ping(self, session: IrcSession, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self._numeric(session, im.ERR_NOORIGIN, "No origin specified")
            return
        session.link.send(irc.message(irc.SERVER_NAME, "PONG", irc.SERVER_NAME, msg.params[0]))

    def _pong(self, session: IrcSession, msg: Message) -> None:
        pass  # the listener's PING timer will look at these

    def _quit(self, session: IrcSession, msg: Message) -> None:
        reason = _text(msg.params[0]) if msg.params else ""
        nick = self._nick(session)
        shown = f"Quit: {reason}" if reason else "Quit"
        session.link.send(irc.message("", "ERROR", f"Closing Link: {nick} ({shown})"))
        self.sessions.discard(session)
        self.hub.quit(session.user, reason)

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
        for target in _targets(msg.params[0]):
            if target.startswith("#"):
                self._to_channel(session, target, text, request, notice)
            elif irc_fold(target) == SERVICE_NICK:
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
            self.hub.say(user, text, room.name)
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
            if request[0] != "ACTION" or not text:
                return  # a CTCP an nc user cannot answer
            text = f"* {user.nick} {text}"
        problem = self.hub.private(user, nick, text)
        if problem and not notice:
            if self.hub.find(nick) is None:
                self._numeric(session, im.ERR_NOSUCHNICK, nick, "No such nick/channel")
            else:
                self._notice(session, problem)

    def _to_service(self, session: IrcSession, text: str, request: tuple[str, str] | None) -> None:
        """``/msg chatd fact``: the text is a command line, with or without its "/"."""
        if request is not None:
            verb = request[0]
            if verb in ("VERSION", "PING"):
                answer = f"chatd {irc.NETWORK}" if verb == "VERSION" else request[1]
                src = irc.source(SERVICE_NICK)
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
            else:
                self._numeric(session, im.ERR_UNKNOWNMODE, char, "is an unknown mode char to me")

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

    def _who_line(self, session: IrcSession, channel: str, member: User, op: bool) -> None:
        flags = "H@" if op else "H"
        self._numeric(
            session,
            im.RPL_WHOREPLY,
            channel,
            member.nick,
            irc.CLOAK,
            irc.SERVER_NAME,
            member.nick,
            flags,
            f"0 {member.nick}",
        )

    def _who(self, session: IrcSession, msg: Message) -> None:
        mask = msg.params[0] if msg.params and msg.params[0] else "*"
        if mask.startswith("#"):
            room = self.hub.find_room(mask)
            if room is not None:
                for member in sorted(room.members, key=lambda u: u.nick.lower()):
                    self._who_line(session, room.name, member, member in room.ops)
        else:
            found = self.hub.find(mask)
            if found is not None:
                self._who_line(session, "*", found, False)
        self._numeric(session, im.RPL_ENDOFWHO, mask, "End of WHO list")

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
            self._numeric(session, im.RPL_WHOISUSER, nick, nick, irc.CLOAK, "*", nick)
            channels = " ".join(
                ("@" if found in room.ops else "") + room.name for room in found.rooms.values()
            )
            if channels:
                self._numeric(session, im.RPL_WHOISCHANNELS, nick, channels)
            self._numeric(session, im.RPL_WHOISSERVER, nick, irc.SERVER_NAME, "chatd")
        self._numeric(session, im.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")

    def _list(self, session: IrcSession, msg: Message) -> None:
        wanted = {irc_fold(n) for n in _targets(msg.params[0])} if msg.params else None
        for room in self.hub.rooms():
            if wanted is None or irc_fold(room.name) in wanted:
                count = str(len(room.members))
                self._numeric(session, im.RPL_LIST, room.name, count, one_line(room.topic))
        self._numeric(session, im.RPL_LISTEND, "End of /LIST")

    def _lusers(self, session: IrcSession, msg: Message) -> None:
        session.link.send(irc.lusers(self._nick(session), len(self.hub.users())))

    def _motd(self, session: IrcSession, msg: Message) -> None:
        session.link.send(irc.no_motd(self._nick(session)))


_COMMANDS: Final[dict[str, Callable[[IrcGateway, IrcSession, Message], None]]] = {
    "CAP": IrcGateway._cap,
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
    "MOTD": IrcGateway._motd,
}
