"""chatd: a chat server for people in a terminal.

This module is the whole API for plugin authors: everything a plugin needs is
imported from ``chatd`` and listed in ``__all__``; anything else may change.

    from chatd import Command, Context, hookimpl

    def roll(ctx: Context, args: str) -> None:
        ctx.reply("You rolled 4.")

    @hookimpl
    def chatd_commands() -> list[Command]:
        return [Command("roll", roll, "/roll", "Roll a die.")]
"""

from chatd.core.commands import Command
from chatd.core.context import Chat, Context, Drop, RoomInfo, Score
from chatd.core.datafiles import read_list
from chatd.hookspecs import hookimpl

__all__ = ["Chat", "Command", "Context", "Drop", "RoomInfo", "Score", "hookimpl", "read_list"]
__version__ = "0.1.0"
