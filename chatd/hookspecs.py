"""Every hook chatd calls, in one place.

Rule: a hook is declared here or it does not exist. Each spec's docstring says
when chatd calls it, with what, and what its result means; the README's plugin
section and ``tests/test_hookspecs.py`` are kept in step with this file.

chatd calls each plugin's implementation on its own, with keyword arguments, so
a plugin may accept only the arguments it needs, and gets a ``chat`` or ``ctx``
of its own (its own config section and state). An exception in one plugin's
hook is logged with the plugin's name and does not stop the others.

Hooks run on the server's only thread: they must not block. No sleeping, no
waiting on the network or the disk for long; use ``chat.call_later`` instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from chatd.core.commands import Command
    from chatd.core.context import Chat, Context, Drop

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

    Called when plugins are loaded (at startup and on every plugin reload). The
    results of all plugins make one command table; two plugins that declare the
    same command name are an error that names both plugins (at startup the
    server does not start; a reload is refused and the old table stays).

    :return: a list of :class:`chatd.Command`, or an empty list.
    """


# ---------------------------------------------------------------------------
# Life of the server
# ---------------------------------------------------------------------------


@hookspec
def chatd_startup(chat: Chat) -> None:
    """The plugin is starting: load data files, set up ``chat.state``.

    Called once all plugins are loaded, before the first client is served, and
    for a plugin that a reload loads for the first time.

    :param chat: this plugin's view of the chat (config section, state, timers).
    """


@hookspec
def chatd_reload(chat: Chat, what: str) -> str | None:
    """An operator asked to reload ``what`` without a restart.

    Load the new data completely before you replace the old, so that a failure
    leaves the old data working. Rounds, games or anything else in progress
    should carry on.

    :param chat: this plugin's view of the chat.
    :param what: ``"words"``, ``"facts"``, ``"plugins"``, ``"config"`` (the
        settings file was read again: ``chat.config`` has the new table) or
        ``"all"``; ignore a topic that is not yours.
    :return: one line for the operator saying what changed (for example
        ``"words: 200 -> 180"``), or None when ``what`` is not yours. Raise an
        exception to report failure; its message is shown, the old data stays.
    """


@hookspec
def chatd_shutdown(chat: Chat) -> None:
    """The server is stopping, or a reload is removing this plugin.

    :param chat: this plugin's view of the chat.
    """


# ---------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------


@hookspec
def chatd_user_joined(ctx: Context) -> None:
    """A user has chosen a nickname and joined; it is in the default room
    (``ctx.room``), whose members were told.

    :param ctx: the new user as the caller (``ctx.nick``, ``ctx.reply``, ``ctx.room``).
    """


@hookspec
def chatd_user_left(chat: Chat, user_id: int, nick: str, reason: str) -> None:
    """A named user has left (quit, lost connection, was disconnected).

    :param chat: this plugin's view of the chat.
    :param user_id: the :attr:`Context.user_id` the user had.
    :param nick: the nickname the user had last.
    :param reason: why, as the others were told (``"Quit: bye"``).
    """


@hookspec
def chatd_user_status(chat: Chat, user_id: int) -> str | None:
    """An operator lists the users (``chatd admin users``): what is this one doing?

    :param chat: this plugin's view of the chat.
    :param user_id: the user's :attr:`Context.user_id`.
    :return: a few words for the operator, such as a game in progress
        (``"jumble, 42s left"``), or None when the plugin has nothing to say.
    """


@hookspec
def chatd_message(ctx: Context, room: str, text: str, action: bool) -> str | Drop | None:
    """A user's chat line (or ``/me`` action) is about to be delivered to a room.

    Plugins are asked in turn; each sees the text as the previous one left it.

    :param ctx: the sender as the caller (``ctx.room`` is ``room`` too).
    :param room: the room it goes to (``"#lobby"``).
    :param text: the clean text of the line.
    :param action: True for ``/me`` actions.
    :return: None to let the text pass unchanged; a str to deliver that text
        instead; ``chatd.Drop("why")`` to deliver nothing: the sender gets
        ``*** Not sent: why`` and no later plugin is asked.
    """
