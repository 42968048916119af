"""The chat basics: rooms (/join, /part, /rooms, /topic, /who, /history),
private messages (/msg, /r), a room operator's /kick, /op and /deop, accounts
(/register, /identify, /password, /unregister), and /nick, /me, /quit."""

from chatd import Command, Context, hookimpl
from chatd.core.hub import HISTORY_LINES, MAX_HISTORY_LINES
from chatd.core.nicks import NICK_RULE


def nick(ctx: Context, args: str) -> None:
    if not args or " " in args:
        ctx.reply(f"Usage: /nick NEWNAME ({NICK_RULE}).")
        return
    problem = ctx.rename(args)
    if problem:
        ctx.reply(problem)


def me(ctx: Context, args: str) -> None:
    if not args:
        ctx.reply("Usage: /me ACTION (others see: * yourname ACTION).")
        return
    ctx.emote(args)


def quit_command(ctx: Context, args: str) -> None:
    ctx.quit(args)


#: What a room name looks like in a usage line.
ROOM = "#room"
NO_ROOM = "You are in no room. /join #room to enter one."


def _answer(ctx: Context, problem: str | None) -> None:
    if problem:
        ctx.reply(problem)


def join(ctx: Context, args: str) -> None:
    if not args or " " in args:
        ctx.reply(f"Usage: /join {ROOM} (joins it, or makes it; it becomes your current room).")
        return
    _answer(ctx, ctx.join(args))


def part(ctx: Context, args: str) -> None:
    room, _, reason = args.partition(" ")
    if room and not room.startswith("#"):
        # "/part games" alone: the # left out of a room you are in; with more
        # words after it, or naming no room of yours, it is all the reason.
        if not reason and f"#{room}".lower() in (name.lower() for name in ctx.joined):
            room = f"#{room}"
        else:
            room, reason = "", args
    if not room and not ctx.room:
        ctx.reply(f"Usage: /part [{ROOM}] [REASON] (you are in no room).")
        return
    _answer(ctx, ctx.part(room, reason.strip()))


def rooms(ctx: Context, args: str) -> None:
    listed = ctx.rooms()
    lines = [f"{len(listed)} room{'' if len(listed) == 1 else 's'}:"]
    for room in listed:
        count = f"{len(room.members)} user{'' if len(room.members) == 1 else 's'}"
        lines.append(f"  {room.name} ({count})" + (f": {room.topic}" if room.topic else ""))
    ctx.reply("\n".join(lines))


def topic(ctx: Context, args: str) -> None:
    if not ctx.room:
        ctx.reply(NO_ROOM)
        return
    if not args:
        info = ctx.room_info(ctx.room)
        shown = info.topic if info is not None else ""
        ctx.reply(f"Topic of {ctx.room}: {shown}" if shown else f"{ctx.room} has no topic.")
        return
    _answer(ctx, ctx.set_topic("" if args == "-" else args))


def names(ctx: Context, args: str) -> None:
    words = args.split()
    if len(words) > 1:
        ctx.reply(f"Usage: /who [{ROOM}] (your current room by default).")
        return
    if not words and not ctx.room:
        ctx.reply(NO_ROOM)
        return
    _answer(ctx, ctx.show_members(words[0] if words else ""))


def history(ctx: Context, args: str) -> None:
    count, room = HISTORY_LINES, ""
    usage = f"Usage: /history [N] [{ROOM}] (the last N lines, 1 to {MAX_HISTORY_LINES})."
    for word in args.split():
        if word.startswith("#") and not room:
            room = word
        elif word.isdigit() and count == HISTORY_LINES and len(word) <= 6:
            count = int(word)
        else:
            ctx.reply(usage)
            return
    if not room and not ctx.room:
        ctx.reply(NO_ROOM)
        return
    _answer(ctx, ctx.show_history(count, room))


def register(ctx: Context, args: str) -> None:
    if not args or " " in args:
        ctx.reply("Usage: /register PASSWORD (keeps your nickname for you; one word).")
        return
    ctx.register_account(args)


def identify(ctx: Context, args: str) -> None:
    words = args.split(" ")
    if not args or len(words) > 2:
        ctx.reply("Usage: /identify [NICK] PASSWORD (proves the account is yours).")
        return
    nick, password = (words[0], words[1]) if len(words) == 2 else ("", words[0])
    ctx.identify(password, nick)


def password(ctx: Context, args: str) -> None:
    words = args.split(" ")
    if len(words) != 2 or not all(words):
        ctx.reply("Usage: /password OLD NEW (changes your account's password).")
        return
    ctx.change_password(words[0], words[1])


def unregister(ctx: Context, args: str) -> None:
    if not args or " " in args:
        ctx.reply("Usage: /unregister PASSWORD (deletes your account).")
        return
    ctx.unregister_account(args)


def msg(ctx: Context, args: str) -> None:
    nick, _, text = args.partition(" ")
    if not nick or not text.strip():
        ctx.reply("Usage: /msg NICK TEXT (only NICK sees it).")
        return
    _answer(ctx, ctx.message(nick, text.strip()))


def reply(ctx: Context, args: str) -> None:
    if not args:
        ctx.reply("Usage: /r TEXT (answers the last one who messaged you).")
        return
    last = ctx.last_messaged_by
    if last is None:
        ctx.reply("No one has messaged you (or they have left): /msg NICK TEXT instead.")
        return
    _answer(ctx, ctx.message(last, args))


def kick(ctx: Context, args: str) -> None:
    nick, _, reason = args.partition(" ")
    if not nick:
        ctx.reply("Usage: /kick NICK [REASON] (a room operator puts NICK out of the room).")
        return
    if not ctx.room:
        ctx.reply(NO_ROOM)
        return
    _answer(ctx, ctx.kick_from_room(nick, reason.strip()))


def _op_command(op: bool) -> Command:
    name = "op" if op else "deop"

    def run(ctx: Context, args: str) -> None:
        if not args or " " in args:
            ctx.reply(f"Usage: /{name} NICK (in your current room, as its operator).")
            return
        if not ctx.room:
            ctx.reply(NO_ROOM)
            return
        _answer(ctx, ctx.set_op(args, op))

    what = "Make NICK an operator of" if op else "Take operator from NICK in"
    return Command(name, run, f"/{name} NICK", f"{what} your current room.")


@hookimpl
def chatd_commands() -> list[Command]:
    return [
        Command("join", join, f"/join {ROOM}", "Join a room (or make one) and talk in it."),
        Command(
            "part", part, f"/part [{ROOM}] [REASON]", "Leave a room (your current one by default)."
        ),
        Command("rooms", rooms, "/rooms", "List the rooms, their size and topic."),
        Command(
            "topic",
            topic,
            "/topic [TEXT | -]",
            "Show or set your current room's topic (- clears it; its operators only, if any).",
        ),
        Command("who", names, f"/who [{ROOM}]", "List who is in a room (your current one)."),
        Command("names", names, f"/names [{ROOM}]", "The same as /who."),
        Command(
            "history",
            history,
            f"/history [N] [{ROOM}]",
            f"Show a room's last N lines (default {HISTORY_LINES}, at most {MAX_HISTORY_LINES}).",
        ),
        Command("msg", msg, "/msg NICK TEXT", "Send a private message."),
        Command("r", reply, "/r TEXT", "Answer the last private message."),
        Command("kick", kick, "/kick NICK [REASON]", "Put someone out of your room (operators)."),
        _op_command(True),
        _op_command(False),
        Command("nick", nick, "/nick NEWNAME", "Change your nickname."),
        Command(
            "register", register, "/register PASSWORD", "Keep your nickname for you: an account."
        ),
        Command(
            "identify",
            identify,
            "/identify [NICK] PASSWORD",
            "Prove an account is yours (and take its nickname).",
        ),
        Command("password", password, "/password OLD NEW", "Change your account's password."),
        Command("unregister", unregister, "/unregister PASSWORD", "Delete your account."),
        Command("me", me, "/me ACTION", "Describe an action: others see * yourname ACTION."),
        Command("quit", quit_command, "/quit [REASON]", "Leave the chat; others see the reason."),
    ]
