"""Word jumble: /game deals you a shuffled word; unscramble it with /guess.

Every player has a round of their own, independent of everyone else's. A round
ends when it is solved, given up, or after ``[jumble] round_seconds``. Points
are the word's length less two for each hint (at least one), kept in the
store across restarts (for an account, or for a guest's nickname); /scores
shows the best players of all time and of the last seven days.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatd import Chat, Command, Context, Score, hookimpl

BUNDLED_WORDS = Path(__file__).with_name("data") / "words.txt"
#: How many players /scores lists, all time and this week.
TOP = 10
#: "This week": the last seven days.
WEEK_DAYS = 7


@dataclass
class Round:
    word: str
    puzzle: str
    started: float
    ctx: Context  # the player, reached by the end-of-round timer
    timer: Any = None  # chatd's Timer, cancelled when the round ends early
    hints: int = 0

    @property
    def points(self) -> int:
        return max(1, len(self.word) - 2 * self.hints)


def load_words(chat: Chat) -> tuple[list[str], Path]:
    """The usable words of the configured list: letters only, not all one letter."""
    entries, path = chat.load_list("words_file", BUNDLED_WORDS)
    words = [w.lower() for w in entries if w.isalpha() and len(set(w.lower())) > 1]
    if not words:
        raise ValueError(
            f"[jumble] words_file: {path}: no usable words (letters only, two different at least)"
        )
    return list(dict.fromkeys(words)), path


def shuffle(word: str, rng: random.Random) -> str:
    """The letters of ``word`` in an order that is not ``word`` itself."""
    letters = list(word)
    while True:
        rng.shuffle(letters)
        puzzle = "".join(letters)
        if puzzle != word:
            return puzzle


def _rounds(chat: Chat) -> dict[int, Round]:
    rounds: dict[int, Round] = chat.state["rounds"]
    return rounds


def _show(word: str) -> str:
    return " ".join(word.upper())


def _left(ctx: Context, rnd: Round) -> str:
    seconds = max(0, rnd.started + ctx.config["round_seconds"] - ctx.now())
    return f"{seconds:.0f}s left"


def _end(ctx: Context) -> Round | None:
    rnd = _rounds(ctx).pop(ctx.user_id, None)
    if rnd is not None and rnd.timer is not None:
        rnd.timer.cancel()
    return rnd


def game(ctx: Context, args: str) -> None:
    rounds = _rounds(ctx)
    rnd = rounds.get(ctx.user_id)
    if rnd is not None:
        ctx.reply(f"Your puzzle: {_show(rnd.puzzle)} ({_left(ctx, rnd)}). /guess WORD to answer.")
        return
    rng: random.Random = ctx.state["rng"]
    word = rng.choice(ctx.state["words"])
    rnd = Round(word, shuffle(word, rng), ctx.now(), ctx)
    seconds = ctx.config["round_seconds"]
    user_id = ctx.user_id

    def time_up() -> None:
        if rounds.get(user_id) is rnd:
            del rounds[user_id]
            rnd.ctx.reply(f"Time's up! The word was {rnd.word.upper()}.")

    rnd.timer = ctx.call_later(seconds, time_up)
    rounds[user_id] = rnd
    ctx.reply(
        f"Unscramble: {_show(rnd.puzzle)} ({len(word)} letters, {seconds}s).\n"
        "Answer with /guess WORD. Stuck? /hint or /giveup."
    )


def guess(ctx: Context, args: str) -> None:
    rnd = _rounds(ctx).get(ctx.user_id)
    if rnd is None:
        ctx.reply("No puzzle running: /game starts one.")
        return
    attempt = args.strip().lower()
    if not attempt or " " in attempt:
        ctx.reply("Usage: /guess WORD (your answer, one word).")
        return
    # Another word from the list with the same letters counts too: the puzzle
    # can't tell the player which of them was meant.
    right = attempt == rnd.word or (
        sorted(attempt) == sorted(rnd.word) and attempt in ctx.state["word_set"]
    )
    if not right:
        ctx.reply(f"{attempt.upper()} is not it. Keep trying, or /hint, or /giveup.")
        return
    _end(ctx)
    took = ctx.now() - rnd.started
    total = ctx.add_score(rnd.points)
    plural = "s" if rnd.points != 1 else ""
    ctx.reply(
        f"Correct! {attempt.upper()} in {took:.1f}s: {rnd.points} point{plural} (total {total})."
    )
    ctx.announce(f"{ctx.nick} solved a jumble in {took:.1f}s. /game to play.")


def hint(ctx: Context, args: str) -> None:
    rnd = _rounds(ctx).get(ctx.user_id)
    if rnd is None:
        ctx.reply("No puzzle running: /game starts one.")
        return
    if rnd.hints >= len(rnd.word) - 1:
        ctx.reply("No more hints: only the last letter is left. /guess WORD or /giveup.")
        return
    rnd.hints += 1
    shown = rnd.word[: rnd.hints].upper() + "_" * (len(rnd.word) - rnd.hints)
    ctx.reply(
        f"Hint: {' '.join(shown)} (puzzle {_show(rnd.puzzle)}; now worth {rnd.points}"
        f" point{'s' if rnd.points != 1 else ''})."
    )


def giveup(ctx: Context, args: str) -> None:
    rnd = _end(ctx)
    if rnd is None:
        ctx.reply("No puzzle running: /game starts one.")
        return
    ctx.reply(f"The word was {rnd.word.upper()}. /game for another.")


def _ranks(best: list[Score]) -> str:
    return ", ".join(
        f"{i}. {s.name}{' (guest)' if s.guest else ''} {s.points}" for i, s in enumerate(best, 1)
    )


def scores(ctx: Context, args: str) -> None:
    best = ctx.top_scores(TOP)
    if not best:
        ctx.reply("No one has solved a jumble yet. /game to be the first.")
        return
    week = ctx.top_scores(TOP, days=WEEK_DAYS)
    this_week = _ranks(week) if week else "no one yet"
    ctx.reply(f"Top players: {_ranks(best)}.\nThis week: {this_week}.")


@hookimpl
def chatd_commands() -> list[Command]:
    return [
        Command("game", game, "/game", "Start a word-jumble round of your own, or see yours."),
        Command("guess", guess, "/guess WORD", "Answer your jumble."),
        Command("hint", hint, "/hint", "Reveal one more letter of your jumble (fewer points)."),
        Command("giveup", giveup, "/giveup", "End your jumble and see the word."),
        Command(
            "scores",
            scores,
            "/scores",
            "The best jumble players, of all time and this week.",
        ),
    ]


def _set_words(chat: Chat, words: list[str]) -> None:
    chat.state["words"] = words
    chat.state["word_set"] = set(words)


@hookimpl
def chatd_startup(chat: Chat) -> None:
    chat.state.setdefault("rounds", {})
    chat.state.setdefault("rng", random.Random())
    words, path = load_words(chat)
    _set_words(chat, words)
    chat.log.debug("%d words from %s", len(words), path)


@hookimpl
def chatd_reload(chat: Chat, what: str) -> str | None:
    if what not in ("words", "all"):
        return None
    before = len(chat.state["words"])
    words, path = load_words(chat)  # raises, and the old words stay, if the file is bad
    _set_words(chat, words)
    return f"words: {before} -> {len(words)} (from {path})"


@hookimpl
def chatd_user_status(chat: Chat, user_id: int) -> str | None:
    rnd = _rounds(chat).get(user_id)
    if rnd is None:
        return None
    left = rnd.started + chat.config["round_seconds"] - chat.now()
    return f"jumble ({len(rnd.word)} letters), {max(0, left):.0f}s left"


@hookimpl
def chatd_user_left(chat: Chat, user_id: int) -> None:
    rnd = _rounds(chat).pop(user_id, None)
    if rnd is not None and rnd.timer is not None:
        rnd.timer.cancel()
