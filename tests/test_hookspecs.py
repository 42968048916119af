"""Every hook is tested and documented (after datasette's tests of its hooks)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from chatd import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(n for n, f in vars(hookspecs).items() if n.startswith("chatd_") and callable(f))


def test_there_are_hooks() -> None:
    assert "chatd_commands" in HOOKS and len(HOOKS) >= 7


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test_named_after_it(hook: str) -> None:
    tests = (ROOT / "tests" / "test_plugins.py").read_text()
    assert re.search(rf"^def test_\w*{hook}\w*\(", tests, re.MULTILINE), f"no test for {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_in_the_readme(hook: str) -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"`{hook}(" in readme, f"the README does not document {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_says_what_its_arguments_mean(hook: str) -> None:
    spec = getattr(hookspecs, hook)
    doc = inspect.getdoc(spec) or ""
    assert doc, f"{hook} has no docstring"
    for arg in inspect.signature(spec).parameters:
        assert f":param {arg}:" in doc, f"{hook} does not document {arg}"
