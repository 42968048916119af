"""The chat basics: /who, /nick, /me, /quit."""

from chatd import Command, Context, hookimpl

#: /who cuts its list into lines of about this many characters, so a busy
#: server does not send one line wider than any terminal.
WHO_LINE_CHARS = 400


def who(ctx: Context, args: str) -> None:
    nicks = ctx.nicks()
    lines: list[list[str]] = [[]]
    width = 0
    for nick in nicks:
        if lines[-1] and width + len(nick) > WHO_LINE_CHARS:
            lines.append([])
            width = 0
        lines[-1].append(nick)
        width += len(nick) + 2
    count = f"{len(nicks)} user online" if len(nicks) == 1 else f"{len(nicks)} users online"
    ctx.reply(f"{count}: " + ",\n".join(", ".join(line) for line in lines))


def nick(ctx: Context, args: str) -> None:
    if not args or " " in args:
        ctx.reply("Usage: /nick NEWNAME (1-16 letters, digits, _ or -).")
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


@hookimpl
def chatd_commands() -> list[Command]:
    return [
        Command("who", who, "/who", "List the users online."),
        Command("nick", nick, "/nick NEWNAME", "Change your nickname."),
        Command("me", me, "/me ACTION", "Describe an action: others see * yourname ACTION."),
        Command("quit", quit_command, "/quit [REASON]", "Leave the chat; others see the reason."),
    ]
