"""/roll: roll dice for everyone to see, like /roll 2d6 or /roll d20.

An example chatd plugin, and a template: copy this file into a folder listed in
[plugins] dirs (plugins.d/ by default), rename it, and reload or restart. The
whole API is `from chatd import ...`; see the README's "Writing a plugin".
"""

from __future__ import annotations

import random
import re

from chatd import Command, Context, hookimpl

MAX_DICE = 100
MAX_SIDES = 1000
DICE = re.compile(r"(\d*)d(\d+)", re.IGNORECASE)


def roll(ctx: Context, args: str) -> None:
    match = DICE.fullmatch(args or "1d6")
    if match is None:
        ctx.reply("Usage: /roll [NdM], for example /roll 2d6 or /roll d20.")
        return
    count, sides = int(match[1] or 1), int(match[2])
    if not (1 <= count <= MAX_DICE and 2 <= sides <= MAX_SIDES):
        ctx.reply(f"Roll 1 to {MAX_DICE} dice of 2 to {MAX_SIDES} sides.")
        return
    rolls = [random.randint(1, sides) for _ in range(count)]
    shown = " + ".join(map(str, rolls)) + f" = {sum(rolls)}" if count > 1 else str(rolls[0])
    ctx.announce(f"{ctx.nick} rolls {count}d{sides}: {shown}", include_self=True)


@hookimpl
def chatd_commands() -> list[Command]:
    return [Command("roll", roll, "/roll [NdM]", "Roll dice for the room to see (default 1d6).")]
