"""Every hook chatd calls, in one place.

Rule: a hook is declared here or it does not exist. Each spec's docstring says
when chatd calls it, with what, and what its result means; the README's plugin
section and ``tests/test_hookspecs.py`` are kept in step with this file. Hooks
are always called with keyword arguments, so a plugin may accept only the
arguments it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from chatd.core.commands import Command

PROJECT_NAME = "chatd"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marks a plugin's function as the implementation of the hook of the same name.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


@hookspec
def chatd_commands() -> list[Command]:  # type: ignore[empty-body]
    """Declare the slash-commands this plugin provides.

    Called once when plugins are loaded (at startup and on every reload). The
    results of all plugins are merged into one command table; two plugins that
    declare the same command name are an error that names both plugins.

    :return: a list of :class:`chatd.Command`, or an empty list.
    """
