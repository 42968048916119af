"""The admin service: the reactor's Handler for the admin socket.

Rule: each request line gets exactly one response line, whatever the line was;
bad JSON, an unknown command or a failing command is an error response on a
connection that stays usable, never a dropped connection or a server error.
Commands act on the hub and the plugin host through their public methods,
and on the server only through the two callables it hands in (reload, stop):
the service is given what it needs and imports nothing that builds it, so
the arrows run one way (chatd.server -> here). Nothing here touches sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from chatd.admin import wire
from chatd.core.bans import BanError, parse_duration
from chatd.core.guard import ON, PluginRecord
from chatd.core.hub import HISTORY_LINES, MAX_HISTORY_LINES, Hub
from chatd.core.link import Link
from chatd.core.nicks import nick_problem
from chatd.core.plugins import PluginHost, Report
from chatd.core.rooms import Room, room_key, room_problem
from chatd.core.stats import Stats
from chatd.core.timers import Clock
from chatd.store import lines as kept
from chatd.wire.text import decode_line, one_line

if TYPE_CHECKING:
    from chatd.metrics import Counted

log = logging.getLogger(__name__)

#: Commands that change nothing: not logged at INFO.
READ_ONLY = frozenset({"users", "rooms", "stats", "bans", "plugins", "history", "accounts"})

#: How a kept line's kind (chatd.store.lines) is named in a reply.
KINDS = {kept.SAID: "said", kept.ACTED: "acted", kept.NOTICE: "notice", kept.TOPIC: "topic"}

#: What ``stats`` says of each listener: its chatd.core.listeners.ListenerCounts.
LISTENER_COUNTS: Final = (
    "open",
    "total",
    "refused",
    "bytes_in",
    "bytes_out",
    "sendq_disconnects",
    "flood_slowdowns",
)


class AdminError(Exception):
    """A command that could not be done; the message goes back to the operator."""


class AdminSession:
    __slots__ = ("link",)

    def __init__(self, link: Link) -> None:
        self.link = link


class AdminService:
    def __init__(
        self,
        hub: Hub,
        plugins: PluginHost,
        stats: Stats,
        *,
        clock: Clock,
        reload: Callable[[str], Report],
        stop: Callable[[str | None], None],
        listeners: Callable[[], Iterable[Counted]] | None = None,
    ) -> None:
        """``reload(what)`` reloads without a restart and reports what changed;
        ``stop(message)`` asks the server to shut down gracefully;
        ``listeners()``, when given, returns the listeners (and outbound
        owners) whose counts ``stats`` reports."""
        self._hub = hub
        self._host = plugins
        self._stats = stats
        self._clock = clock
        self._reload = reload
        self._stop = stop
        self._listeners = listeners
        self.sessions: set[AdminSession] = set()
        self._commands: dict[str, Callable[[dict[str, Any]], Any]] = {
            "users": self.users,
            "rooms": self.rooms,
            "kick": self.kick,
            "roomkick": self.roomkick,
            "topic": self.topic,
            "ban": self.ban,
            "unban": self.unban,
            "bans": self.bans,
            "reload": self.reload,
            "plugins": self.plugins,
            "plugin": self.plugin,
            "history": self.history,
            "accounts": self.accounts,
            "account": self.account,
            "stats": self.stats,
            "say": self.say,
            "shutdown": self.shutdown_server,
        }
        assert set(self._commands) == set(wire.COMMANDS)

    # -- Handler ---------------------------------------------------------------

    def connect(self, link: Link) -> AdminSession:
        session = AdminSession(link)
        self.sessions.add(session)
        log.debug("admin: %s connected", link.peer)
        return session

    def receive_line(self, session: AdminSession, line: bytes) -> None:
        self.receive(session, decode_line(line))

    def receive(self, session: AdminSession, text: str) -> None:
        if not text:
            return
        session.link.send(wire.encode(self.handle(text)))

    def line_too_long(self, session: AdminSession, limit: int) -> None:
        session.link.send(wire.encode(wire.error(f"request too long (over {limit} bytes)")))

    def slowed(self, session: AdminSession, rate: float) -> None:
        pass  # the admin socket has no flood control: operators are trusted

    def refused(self, reason: str) -> bytes:
        return wire.encode(wire.error(reason))

    def disconnect(self, session: AdminSession, reason: str) -> None:
        self.sessions.discard(session)

    def shutdown(self, message: str) -> None:
        for session in self.sessions:
            session.link.close()
        self.sessions.clear()

    # -- requests --------------------------------------------------------------

    def handle(self, line: str) -> dict[str, Any]:
        """One request line -> one response object."""
        try:
            request = wire.parse_request(line)
            result = self._commands[request.cmd](request.args)
        except (wire.WireError, AdminError) as exc:
            return wire.error(str(exc))
        except Exception:
            log.exception("admin: %r failed", line[:200])
            return wire.error("internal error; the server log has the details")
        if request.cmd not in READ_ONLY:  # scripts may poll users and stats often
            log.info("admin: %s %s", request.cmd, " ".join(request.args.values()))
        return wire.ok(result)

    def users(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {
                "nick": user.nick,
                "address": user.link.peer,
                # In a cluster, the node it is on (this one's name for its own).
                "node": user.node or self._hub.node,
                # The wire's format, less its options ("irc+time" is IRC).
                "protocol": user.protocol,
                # The account it proved the password of ("" for a guest).
                "account": self._hub.desk.account_name(user),
                "connected_seconds": round(now - user.connected_at, 1),
                "idle_seconds": round(now - user.last_active, 1),
                "lines": user.lines,
                "rooms": sorted((room.name for room in user.rooms.values()), key=str.lower),
                "game": "; ".join(self._host.user_status(user)) or None,
            }
            for user in sorted(self._hub.users(), key=lambda u: u.nick.lower())
        ]

    def rooms(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Every room, sorted by name: how many are in it, its topic, its
        operators, and the lines said in it since it was made (on this node)."""
        return [
            {
                "name": room.name,
                "members": len(room.members),
                "lines": room.lines,
                "topic": room.topic,
                "operators": sorted(self._hub.room_ops(room), key=str.lower),
            }
            for room in self._hub.rooms()
        ]

    @staticmethod
    def _room_name(name: str) -> str:
        """``name`` with its ``#``, which may be left out: a shell reads an
        unquoted ``#games`` as a comment, so ``chatd admin topic games ...``
        means ``#games``."""
        return "#" + name if name and not name.startswith("#") else name

    def _room(self, name: str) -> Room:
        """The room called ``name`` (its ``#`` may be left out); AdminError
        saying why when there is none."""
        name = self._room_name(name)
        room = self._hub.find_room(name)
        if room is None:
            problem = room_problem(name)
            raise AdminError(problem or f"no room called {name!r}; the rooms command lists them")
        return room

    def roomkick(self, args: dict[str, Any]) -> str:
        room = self._room(args["room"])
        problem = self._hub.kick_from_room(None, room.name, args["nick"], args.get("reason", ""))
        if problem:
            raise AdminError(problem)
        kicked = self._hub.find(args["nick"])  # still online: named as it spells itself
        return f"kicked {kicked.nick if kicked else args['nick']} from {room.name}"

    def topic(self, args: dict[str, Any]) -> str:
        room = self._room(args["room"])
        text = args.get("text", "")
        problem = self._hub.set_topic(None, room.name, "" if text.strip() == "-" else text)
        if problem:
            raise AdminError(problem)
        return (
            f"set the topic of {room.name}" if room.topic else f"cleared the topic of {room.name}"
        )

    def kick(self, args: dict[str, Any]) -> str:
        user = self._hub.find(args["nick"])
        if user is None:
            raise AdminError(f"no user called {args['nick']!r} is online")
        self._hub.kick(user, args.get("reason", ""))
        return f"kicked {user.nick}"

    def ban(self, args: dict[str, Any]) -> str:
        try:
            seconds = parse_duration(args["duration"])
        except BanError as exc:
            raise AdminError(str(exc)) from None
        if problem := nick_problem(args["nick"]):
            raise AdminError(problem)
        return self._hub.ban(args["nick"], seconds, args.get("reason", ""))

    def unban(self, args: dict[str, Any]) -> str:
        lifted = self._hub.bans.remove(args["target"])
        if not lifted:
            raise AdminError(f"no ban on {args['target']!r}")
        return "lifted the ban on " + " and ".join(f"{b.kind} {b.key}" for b in lifted)

    def bans(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {
                "kind": ban.kind,
                "target": ban.key,
                "seconds_left": round(ban.until - now, 1),
                "reason": ban.reason,
            }
            for ban in self._hub.bans.active(now)
        ]

    def reload(self, args: dict[str, Any]) -> list[str]:
        what = args.get("what") or "all"
        if what not in wire.RELOAD_WHAT:
            raise AdminError(f"reload what? one of: {', '.join(wire.RELOAD_WHAT)}")
        report = self._reload(what)
        if report.failed:  # what did change is in the message too
            raise AdminError("reload failed: " + "; ".join(report))
        return list(report)

    def plugins(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Every loaded plugin in load order, with its counters and state."""
        host = self._host
        commands: dict[str, list[str]] = {name: [] for name in host.set.origins}
        for command in host.commands:  # sorted by name
            commands[host.commands.plugin_of(command.name)].append(command.name)
        records = host.guard.records
        return [
            {
                "name": name,
                "source": origin,
                "commands": commands[name],
                # A plugin never called yet has no record: it is on, with zeros.
                **(records.get(name) or PluginRecord(name)).snapshot(),
            }
            for name, origin in host.set.origins.items()
        ]

    def plugin(self, args: dict[str, Any]) -> str:
        action, name = args["action"].lower(), args["name"]
        if action not in wire.PLUGIN_ACTIONS:
            spec = wire.COMMANDS["plugin"]
            raise AdminError(f"plugin: {action!r} is neither on nor off; usage: {spec.usage}")
        host = self._host
        if name not in host.set.origins:
            raise AdminError(
                f"no plugin called {name!r} is loaded; loaded plugins: {', '.join(host.names)}"
            )
        record = host.guard.records.get(name)
        state = record.state if record is not None else ON
        on = action == "on"
        if (state == ON) == on:  # already as asked: say so, change nothing
            why = f" ({record.why})" if record is not None and record.why else ""
            return f"plugin {name} is already {state}{why}"
        host.guard.switch(name, on)
        return f"plugin {name} is {action}"

    def history(self, args: dict[str, Any]) -> dict[str, Any]:
        """The last N lines kept of a room, oldest first. A room nobody is in
        now still has its lines; a name that is neither a room nor kept is an
        error (a typo), a room with nothing kept yet an empty list."""
        name = self._room_name(args["room"])
        if problem := room_problem(name):
            raise AdminError(problem)
        text = (args.get("count") or str(HISTORY_LINES)).strip()
        # (Short: int() refuses a string of thousands of digits.)
        count = int(text) if text.isascii() and text.isdigit() and len(text) < 10 else 0
        if not 1 <= count <= MAX_HISTORY_LINES:
            raise AdminError(
                f"history: N is a number of lines from 1 to {MAX_HISTORY_LINES};"
                f" usage: {wire.COMMANDS['history'].usage}"
            )
        room = self._hub.find_room(name)
        shown = self._hub.store.lines.last(room_key(name), count)
        if room is None and not shown:
            raise AdminError(
                f"no room called {name!r} and no lines kept of one; the rooms command lists them"
            )
        return {
            "room": room.name if room is not None else name,
            "lines": [
                {
                    "id": line.id,
                    "at": line.at,
                    "kind": KINDS.get(line.kind, "said"),
                    # Cleaned here too: --json prints this to a terminal as it is.
                    "nick": one_line(line.nick),
                    "text": one_line(line.text),
                }
                for line in shown
            ],
        }

    def accounts(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Every account by name: when made, last seen, messages held, and
        whether someone is identified as it now. Never its hash."""
        accounts = self._hub.store.accounts
        identified = {user.account for user in self._hub.users() if user.account}
        return [
            {
                "name": account.name,
                "created": account.created,
                "last_seen": account.last_seen,
                "held_messages": accounts.held(account.name),
                "identified": self._hub.fold(account.name) in identified,
            }
            for account in accounts.all()
        ]

    def account(self, args: dict[str, Any]) -> str:
        action, name = args["action"].lower(), args["name"]
        if action not in wire.ACCOUNT_ACTIONS:
            usage = wire.COMMANDS["account"].usage
            raise AdminError(f"account: {action!r} is not delete; usage: {usage}")
        account = self._hub.store.accounts.get(name)
        # Deleted by the name it was registered as: what its user is told.
        if account is None or not self._hub.desk.delete(account.name):
            raise AdminError(f"no account called {name!r}; the accounts command lists them")
        return f"deleted the account {account.name}"

    def stats(self, args: dict[str, Any]) -> dict[str, Any]:
        snapshot = self._stats.snapshot(self._clock())
        # A count, not the users reply: `chatd admin top` asks every second.
        snapshot["users"] = {"online": len(self._hub.users()), "peak": self._stats.users_peak}
        if self._listeners is not None:
            snapshot["listeners"] = self._listener_counts(self._listeners())
        store = self._hub.store
        snapshot["store"] = {
            "path": str(store.path) if store.path is not None else None,
            "bytes": store.size(),
            "rows": store.rows(),
            # Only the file's writer drops lines (its queue full, a commit failed).
            "dropped_lines": store.lines.dropped,
        }
        if self._hub.peers is not None:
            snapshot["cluster"] = self._hub.peers.describe()
        return snapshot

    @staticmethod
    def _listener_counts(listeners: Iterable[Counted]) -> dict[str, dict[str, int]]:
        """Each listener's counts by its name, in the order opened; listeners
        of one name (a host listened on twice, IPv4 and IPv6) are summed, as
        their metrics are."""
        counts: dict[str, dict[str, int]] = {}
        for listener in listeners:
            summed = counts.setdefault(listener.name, dict.fromkeys(LISTENER_COUNTS, 0))
            for name in LISTENER_COUNTS:
                summed[name] += getattr(listener.counts, name)
        return counts

    def say(self, args: dict[str, Any]) -> str:
        text = f"Announcement: {args['text']}"
        if "room" not in args:
            count = self._hub.announce(text)
            return f"announced to {count} user{'s' if count != 1 else ''}"
        room = self._room(args["room"])
        count = self._hub.announce_room(room.name, text)
        return f"announced to {count} user{'s' if count != 1 else ''} in {room.name}"

    def shutdown_server(self, args: dict[str, Any]) -> str:
        self._stop(args.get("message") or None)
        return "shutting down"
