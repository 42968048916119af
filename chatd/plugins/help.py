"""/help: the list of commands, or the usage of one."""

from chatd import Command, Context, hookimpl


def help_command(ctx: Context, args: str) -> None:
    name = args.split()[0].lstrip("/").lower() if args else ""
    commands = ctx.commands()
    if name:
        match = next((c for c in commands if c.name == name), None)
        if match is None:
            ctx.reply(f"No command /{name}. Type /help for the list of commands.")
        else:
            ctx.reply(
                f"Usage: {match.usage}  -  {match.help}" if match.help else f"Usage: {match.usage}."
            )
        return
    width = max(len(c.name) for c in commands) + 1
    lines = ["Commands (/help NAME shows how to use one):"]
    lines += [f"  /{c.name:<{width}} {c.help}".rstrip() for c in commands]
    lines.append("Anything else you type goes to your current room; start it with // to send a /.")
    ctx.reply("\n".join(lines))


@hookimpl
def chatd_commands() -> list[Command]:
    return [
        Command(
            "help", help_command, "/help [COMMAND]", "List the commands, or show how to use one."
        ),
    ]
