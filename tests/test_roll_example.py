"""The README's "Testing a plugin" example, run with the rest of the suite.

Everything after this docstring is the README's code block, to the letter:
tests/test_testing.py fails when the two differ.
"""

import random

import pytest

from chatd.testing import ChatHarnessFactory


def test_a_roll_is_shown_to_everyone(
    chat_harness: ChatHarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = chat_harness(plugins=["plugins.d/roll.py"])
    alice = chat.join("alice")
    bob = chat.join("bob")
    assert alice.lines() == ["*** bob joined"]

    monkeypatch.setattr(random, "randint", lambda low, high: high)  # every die shows its top
    alice.send("/roll 2d6")
    assert alice.lines() == bob.lines() == ["*** alice rolls 2d6: 6 + 6 = 12"]


def test_a_bad_roll_is_answered_to_the_roller_alone(chat_harness: ChatHarnessFactory) -> None:
    chat = chat_harness(plugins=["plugins.d/roll.py"])
    alice, bob = chat.join("alice"), chat.join("bob")
    alice.send("/roll 2x")
    assert alice.lines() == [
        "*** bob joined",
        "*** Usage: /roll [NdM], for example /roll 2d6 or /roll d20.",
    ]
    assert bob.lines() == []
