"""/fact: a piece of trivia. No fact comes twice until every one has been told.

Like every server line, a fact is told as a sentence: one that does not end as
a sentence does (a line of an operator's list, say) gets a full stop.
"""

from __future__ import annotations

import random
from pathlib import Path

from chatd import Chat, Command, Context, hookimpl

BUNDLED_FACTS = Path(__file__).with_name("data") / "facts.txt"
#: How a line may end and still be a finished sentence (a quote or bracket may
#: close it).
SENTENCE_ENDS = (".", "!", "?", '."', '!"', '?"', ".)", "!)", "?)", "…")


def as_sentence(text: str) -> str:
    """``text`` with a full stop, unless it already ends as a sentence does."""
    return text if text.endswith(SENTENCE_ENDS) else text + "."


def load_facts(chat: Chat) -> tuple[list[str], Path]:
    facts, path = chat.load_list("facts_file", BUNDLED_FACTS)
    if not facts:
        raise ValueError(f"[fact] facts_file: {path}: no facts in it")
    return facts, path


def fact(ctx: Context, args: str) -> None:
    deck: list[str] = ctx.state["deck"]
    if not deck:
        # A new shuffled pass over every fact; the last one told never opens it.
        deck[:] = ctx.state["facts"]
        ctx.state["rng"].shuffle(deck)
        if len(deck) > 1 and deck[-1] == ctx.state.get("last"):
            deck[0], deck[-1] = deck[-1], deck[0]
    told = deck.pop()
    ctx.state["last"] = told
    ctx.reply(f"Fact: {as_sentence(told)}")


@hookimpl
def chatd_commands() -> list[Command]:
    return [Command("fact", fact, "/fact", "Tell me a piece of trivia.")]


def _set_facts(chat: Chat, facts: list[str]) -> None:
    chat.state["facts"] = facts
    chat.state["deck"] = []  # the next /fact starts a pass over the new list


@hookimpl
def chatd_startup(chat: Chat) -> None:
    chat.state.setdefault("rng", random.Random())
    _set_facts(chat, load_facts(chat)[0])


@hookimpl
def chatd_reload(chat: Chat, what: str) -> str | None:
    if what not in ("facts", "all"):
        return None
    before = len(chat.state["facts"])
    facts, path = load_facts(chat)
    _set_facts(chat, facts)
    return f"facts: {before} -> {len(facts)} (from {path})"
