"""chatd's pytest plugin: the ``chat_harness`` fixture, for testing chatd plugins.

Installed with chatd and registered through the ``pytest11`` entry point, so a
plugin package's tests just name the fixture::

    def test_roll(chat_harness):
        chat = chat_harness(plugins=["plugins.d/roll.py"])
        alice = chat.join("alice")
        ...

Rule: loading this plugin costs a project that never asks for the fixture
nothing but this module: no hooks, no options, no autouse fixture, and
chatd.testing (the hub, the plugin host) is imported only when a test asks.
``pytest -p no:chatd`` turns it off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from chatd.testing import ChatHarness, ChatHarnessFactory


@pytest.fixture
def chat_harness() -> Iterator[ChatHarnessFactory]:
    """Makes a :class:`chatd.testing.ChatHarness`: call it with what ChatHarness
    takes (``plugins=``, ``builtins=``, ``config=``, ``strict=``). Every harness
    made is closed after the test, so each plugin's ``chatd_shutdown`` runs (and,
    strict, fails the test's teardown if it raises)."""
    from chatd.testing import ChatHarness

    with ExitStack() as made:

        def make(*args: Any, **kwargs: Any) -> ChatHarness:
            chat = ChatHarness(*args, **kwargs)
            made.callback(chat.close)
            return chat

        yield make
