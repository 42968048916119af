"""The word-jumble plugin through the real dispatcher, with an injected clock."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatd.config import JumbleSettings
from chatd.plugins.jumble import shuffle
from tests.helpers import HubFixture, make_config


def _fx(tmp_path: Path, *words: str, seconds: int = 60) -> HubFixture:
    path = tmp_path / "words.txt"
    path.write_text("# test words\n\n" + "\n".join(words) + "\n")
    return HubFixture(config=make_config(jumble=JumbleSettings(str(path), seconds)))


def _puzzle(line: str) -> str:
    match = re.search(r"(?:Unscramble|Your puzzle): ((?:[A-Z] )*[A-Z]) \(", line)
    assert match, line
    return match.group(1).replace(" ", "")


def test_a_round_solved_at_once(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "planet")
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    fx.hub.receive(alice_user, "/game")
    line, answer = alice.take()
    assert answer == "*** Answer with /guess WORD. Stuck? /hint or /giveup."
    puzzle = _puzzle(line)
    assert sorted(puzzle) == sorted("PLANET") and puzzle != "PLANET"
    assert "(6 letters, 60s)" in line
    assert bob.take() == []
    fx.clock.advance(12.34)
    fx.hub.receive(alice_user, "/guess Planet")
    assert alice.take() == ["*** Correct! PLANET in 12.3s: 6 points (total 6)."]
    assert bob.take() == ["*** alice solved a jumble in 12.3s. /game to play."]
    fx.hub.receive(alice_user, "/guess planet")
    assert alice.take() == ["*** No puzzle running: /game starts one."]


def test_wrong_then_right(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "planet")
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/game")
    alice.take()
    fx.hub.receive(alice_user, "/guess plant")
    assert alice.take() == ["*** PLANT is not it. Keep trying, or /hint, or /giveup."]
    fx.hub.receive(alice_user, "/guess")
    assert alice.take() == ["*** Usage: /guess WORD (your answer, one word)."]
    fx.hub.receive(alice_user, "/guess planet")
    assert alice.take()[0].startswith("*** Correct! PLANET")


def test_an_anagram_from_the_list_counts(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "listen", "silent")
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/game")
    alice.take()
    fx.hub.receive(alice_user, "/guess tinsel")  # same letters, not in the list
    assert "is not it" in alice.take()[0]
    for word in ("listen", "silent"):
        fx.hub.receive(alice_user, f"/guess {word}")
        reply = alice.take()[0]
        if reply.startswith("*** Correct!"):
            break
    else:
        raise AssertionError("neither anagram was accepted")


def test_hints_reveal_letters_and_lower_the_points(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "planet")
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/game")
    puzzle = _puzzle(alice.take()[0])
    fx.hub.receive(alice_user, "/hint")
    assert alice.take() == [
        f"*** Hint: P _ _ _ _ _ (puzzle {' '.join(puzzle)}; now worth 4 points)."
    ]
    for _ in range(10):  # more hints than letters: stops at all but one
        fx.hub.receive(alice_user, "/hint")
    replies = alice.take()
    assert replies[3].startswith("*** Hint: P L A N E _ (")
    assert replies[4:] == [NO_MORE_HINTS] * 6
    fx.hub.receive(alice_user, "/guess planet")
    assert alice.take()[0].startswith("*** Correct! PLANET in 0.0s: 1 point (total 1).")


NO_MORE_HINTS = "*** No more hints: only the last letter is left. /guess WORD or /giveup."


def test_a_fifth_hint_on_a_five_letter_word_says_there_are_no_more(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "plant")
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/game")
    puzzle = " ".join(_puzzle(alice.take()[0]))
    for _ in range(4):
        fx.hub.receive(alice_user, "/hint")
    assert alice.take()[-1] == f"*** Hint: P L A N _ (puzzle {puzzle}; now worth 1 point)."
    fx.hub.receive(alice_user, "/hint")
    assert alice.take() == [NO_MORE_HINTS]
    fx.hub.receive(alice_user, "/hint")
    assert alice.take() == [NO_MORE_HINTS]
    fx.hub.receive(alice_user, "/guess plant")
    assert alice.take()[0] == "*** Correct! PLANT in 0.0s: 1 point (total 1)."


def test_a_two_letter_word_has_one_hint(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "ox")
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/game")
    alice.take()
    fx.hub.receive(alice_user, "/hint")
    assert alice.take() == ["*** Hint: O _ (puzzle X O; now worth 1 point)."]
    fx.hub.receive(alice_user, "/hint")
    assert alice.take() == [NO_MORE_HINTS]


def test_giving_up_reveals_the_word(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "planet")
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/giveup")
    assert alice.take() == ["*** No puzzle running: /game starts one."]
    fx.hub.receive(alice_user, "/game")
    alice.take()
    fx.hub.receive(alice_user, "/giveup")
    assert alice.take() == ["*** The word was PLANET. /game for another."]
    fx.clock.advance(120)
    fx.timers.run_due()
    assert alice.take() == []  # the round's timer went with it


def test_a_round_times_out_with_the_word_revealed(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "planet", seconds=30)
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/game")
    first = alice.take()[0]
    fx.clock.advance(20)
    fx.timers.run_due()
    fx.hub.receive(alice_user, "/game")  # during a round: the same puzzle again
    again = alice.take()[0]
    assert _puzzle(again) == _puzzle(first) and "(10s left)" in again
    fx.clock.advance(10)
    fx.timers.run_due()
    assert alice.take() == ["*** Time's up! The word was PLANET."]
    fx.hub.receive(alice_user, "/guess planet")
    assert alice.take() == ["*** No puzzle running: /game starts one."]


def test_rounds_of_two_players_are_independent(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "planet", "garden")
    alice_user, alice = fx.join("alice")
    bob_user, bob = fx.join("bob")
    fx.hub.receive(alice_user, "/game")
    fx.clock.advance(10)
    fx.hub.receive(bob_user, "/game")
    words = {
        "alice": "".join(sorted(_puzzle(alice.take()[0]))),
        "bob": "".join(sorted(_puzzle(bob.take()[0]))),
    }
    by_letters = {"".join(sorted(w.upper())): w for w in ("garden", "planet")}
    alice_word, bob_word = by_letters[words["alice"]], by_letters[words["bob"]]
    fx.hub.receive(bob_user, "/hint")
    bob.take()
    fx.clock.advance(55)  # alice's round (60s) ends; bob's has 5s left
    fx.timers.run_due()
    assert alice.take() == [f"*** Time's up! The word was {alice_word.upper()}."]
    assert bob.take() == []
    fx.hub.receive(bob_user, f"/guess {bob_word}")
    assert bob.take()[0].startswith(f"*** Correct! {bob_word.upper()} in 55.0s: 4 points")


def test_a_nick_change_keeps_the_round_and_leaving_ends_it(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "planet")
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/game")
    fx.hub.receive(alice_user, "/nick alicia")
    alice.take()
    fx.hub.receive(alice_user, "/game")
    assert alice.take()[0].startswith("*** Your puzzle:")
    fx.hub.disconnect(alice_user, "connection closed")
    assert fx.plugins.states["jumble"]["rounds"] == {}
    fx.clock.advance(100)
    fx.timers.run_due()
    assert alice.take() == []


def test_scores_rank_the_players_all_time_and_this_week(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "planet")
    alice_user, alice = fx.join("alice")
    bob_user, _ = fx.join("bob")
    fx.hub.receive(alice_user, "/scores")
    assert alice.take() == ["*** No one has solved a jumble yet. /game to be the first."]
    fx.hub.receive(alice_user, "/register alices-secret")  # alice's points are her account's
    for user in (alice_user, bob_user, bob_user):
        fx.hub.receive(user, "/game")
        fx.hub.receive(user, "/guess planet")
    fx.hub.receive(alice_user, "/scores")
    assert alice.take()[-2:] == [
        "*** Top players: 1. bob (guest) 12, 2. alice 6.",
        "*** This week: 1. bob (guest) 12, 2. alice 6.",
    ]
    fx.clock.advance(8 * 86_400)  # a week and a day later, bob plays once more
    fx.hub.receive(bob_user, "/game")
    fx.hub.receive(bob_user, "/guess planet")
    fx.hub.receive(alice_user, "/scores")
    assert alice.take()[-2:] == [
        "*** Top players: 1. bob (guest) 18, 2. alice 6.",
        "*** This week: 1. bob (guest) 6.",
    ]


def test_every_jumble_line_is_a_sentence(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "planet", seconds=30)
    alice_user, alice = fx.join("alice")
    _, bob = fx.join("bob")
    for line in (
        "/guess x", "/hint", "/giveup", "/scores",
        "/game", "/game", "/guess", "/guess two words", "/guess plant",
        *["/hint"] * 6, "/guess planet", "/scores",
        "/game", "/giveup", "/game",
    ):  # fmt: skip
        fx.hub.receive(alice_user, line)
    fx.clock.advance(30)
    fx.timers.run_due()
    told = alice.take()
    assert told[-1] == "*** Time's up! The word was PLANET."
    assert len(told) >= 20
    for line in told:
        text = line.removeprefix("*** ")
        assert text != line and text[0].isupper() and text.endswith("."), line
    # What the others see starts with the player's name, as a join notice does.
    assert bob.take() == ["*** alice solved a jumble in 0.0s. /game to play."]


def test_words_reload_and_a_round_in_progress_keeps_its_word(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "planet")
    alice_user, alice = fx.join("alice")
    bob_user, bob = fx.join("bob")
    fx.hub.receive(alice_user, "/game")
    (tmp_path / "words.txt").write_text("garden\nfolder\n")
    report = fx.plugins.reload("words")
    assert report == [f"jumble: words: 1 -> 2 (from {tmp_path / 'words.txt'})"]
    fx.hub.receive(alice_user, "/guess planet")
    assert alice.take()[-1].startswith("*** Correct! PLANET")
    fx.hub.receive(bob_user, "/game")
    dealt = next(line for line in bob.take() if "Unscramble" in line)
    assert sorted(_puzzle(dealt).lower()) in (sorted("garden"), sorted("folder"))


def test_a_failed_words_reload_keeps_the_old_words(tmp_path: Path) -> None:
    fx = _fx(tmp_path, "planet")
    (tmp_path / "words.txt").write_text("# nothing usable\nzzz\n12345\n")
    path = tmp_path / "words.txt"
    assert fx.plugins.reload("words") == [
        f"jumble: reload failed, kept the old data: [jumble] words_file: {path}:"
        " no usable words (letters only, two different at least)"
    ]
    path.unlink()
    report = fx.plugins.reload("all")
    assert (
        f"jumble: reload failed, kept the old data: [jumble] words_file: {path}: no such file"
        in report
    )
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/game")
    assert "(6 letters" in alice.take()[0]


def test_the_bundled_list_is_big_and_every_word_can_be_jumbled() -> None:
    fx = HubFixture()
    words = fx.plugins.states["jumble"]["words"]
    assert len(words) >= 200
    assert all(w.isalpha() and w == w.lower() and len(set(w)) > 1 for w in words)


@pytest.mark.parametrize("word", ["ab", "planet", "aab", "mississippi"])
def test_shuffle_never_returns_the_word(word: str) -> None:
    import random

    rng = random.Random(0)
    for _ in range(200):
        puzzle = shuffle(word, rng)
        assert puzzle != word and sorted(puzzle) == sorted(word)
