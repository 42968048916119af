"""Plugins: which exist, how they are loaded and reloaded, and how hooks reach them.

Rule: a plugin manager is built by :meth:`PluginHost.load`, never kept as a
module-level global, so every server (and every test) gets a fresh one; a
reload builds a whole new manager and command table and swaps them in only when
both are complete, so a failed reload leaves the working set untouched.

Where plugins come from, in this order (a later one may not reuse a name):

1. the built-in modules in ``chatd.plugins.BUILTIN_PLUGINS``;
2. installed packages, through the ``chatd`` entry-point group;
3. every ``*.py`` file (not starting with ``_``) in the ``[plugins] dirs``
   folders, named after the file.

``[plugins] disabled`` names plugins not to load. A built-in that fails is our
bug and stops the server; an entry point or a file that fails to import is
logged with its name and skipped. Two plugins declaring one command is an
error at startup and a refused reload.

Hooks are called plugin by plugin (not through one pluggy call) so that each
gets its own ``chat``/``ctx`` and an exception in one is logged with its name
and skipped, never passed on to the caller or the other plugins.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import pluggy

from chatd import hookspecs
from chatd.config import Config, ConfigError, check_extra
from chatd.core.commands import Command, CommandError, CommandTable, Invocation, check_declared
from chatd.core.context import Chat, Context, Drop
from chatd.core.guard import (
    OFF,
    PLUGIN_FAILURES,
    Guard,
    GuardSettings,
    PluginTimeout,
    where_stopped,
)
from chatd.plugins import BUILTIN_PLUGINS
from chatd.wire.text import one_line, sentence

if TYPE_CHECKING:
    from chatd.core.hub import Hub, User

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "chatd"
#: Prefix of the module names drop-in files are imported under.
DROPIN_MODULE_PREFIX = "chatd_plugin_"
RELOAD_TOPICS = ("words", "facts", "plugins", "config", "all")


class PluginError(Exception):
    """A plugin could not be loaded or does not fit; the message names the plugin."""


@dataclass(frozen=True)
class PluginSet:
    """Everything one load produced; swapped in whole or not at all."""

    pm: pluggy.PluginManager
    commands: CommandTable
    origins: dict[str, str]  # plugin name -> where it came from, for messages
    problems: list[str]  # files and entry points skipped, one line each
    #: drop-in name -> a digest of its file as loaded: a reload re-imports every
    #: file, and only one whose bytes changed is a new version (for the guard)
    versions: dict[str, str] = dataclasses.field(default_factory=dict)


class Report(list[str]):
    """What a reload did, one line each, for the operator; ``failed`` when any
    part of it was refused or failed (``chatd admin reload`` then exits 1)."""

    def __init__(self, lines: Iterable[str] = (), *, failed: bool = False) -> None:
        super().__init__(lines)
        self.failed = failed

    def fail(self, line: str) -> None:
        self.append(line)
        self.failed = True

    def extend(self, lines: Iterable[str]) -> None:
        super().extend(lines)
        if isinstance(lines, Report) and lines.failed:
            self.failed = True


def _log_failure(name: str, what: str, error: BaseException) -> None:
    """A plugin call that failed, for the operator: a timeout as one line naming
    the file and line it was stopped at; anything else with its traceback."""
    if isinstance(error, PluginTimeout):
        where = where_stopped(error)
        log.error("plugin %s: %s %s, stopped at %s", name, what, error, where)
    else:
        log.error("plugin %s: %s failed", name, what, exc_info=error)


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def guard_settings(config: Config) -> GuardSettings:
    """What the guard reads from ``[plugins]``: its fields are settings of that table."""
    fields = dataclasses.fields(GuardSettings)
    return GuardSettings(**{f.name: getattr(config.plugins, f.name) for f in fields})


def _manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    callers = pm.get_hookcallers(plugin) or []
    return sorted(c.name for c in callers if not c.has_spec())


def _hook_names() -> str:
    return ", ".join(sorted(n for n in vars(hookspecs) if n.startswith("chatd_")))


def import_file(path: Path) -> ModuleType:
    """Import one plugin file as a fresh module (a reload gets new code)."""
    module_name = DROPIN_MODULE_PREFIX + path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module  # dataclasses and typing look modules up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is None:
            del sys.modules[module_name]
        else:
            sys.modules[module_name] = previous
        raise
    return module


#: What a hook may return besides None; anything else is a plugin error.
RESULT_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "chatd_message": (str, Drop),
    "chatd_reload": (str,),
    "chatd_user_status": (str,),
}


def _describe(exc: BaseException) -> str:
    """An exception as one line for an operator. A ValueError is a plugin saying
    its data is bad, in words meant for people: it is shown as it is."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    if type(exc) is ValueError or isinstance(exc, PluginError):
        return str(exc)
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}): a plugin may not stop the server"
    return f"{type(exc).__name__}: {exc}"


def _declared_commands(pm: pluggy.PluginManager, plugin: object) -> list[Command]:
    """The commands ``plugin`` declares through ``chatd_commands``; PluginError if
    that hook fails or returns something that is not a list of Command."""
    for impl in pm.hook.chatd_commands.get_hookimpls():
        if impl.plugin is plugin:
            try:
                return check_declared(impl.function())
            except PLUGIN_FAILURES as exc:
                raise PluginError(f"chatd_commands failed: {_describe(exc)}") from exc
    return []


def load_plugins(
    config: Config,
    builtins: Iterable[str] = BUILTIN_PLUGINS,
    *,
    entry_points: bool = True,
    previous: PluginSet | None = None,
) -> PluginSet:
    """Build a complete plugin set; raises PluginError or CommandError if it can't.

    A built-in that fails is fatal; an entry point or a file that fails is
    skipped with a line in ``problems``, unless ``previous`` (the set in force,
    on a reload) has a working version of it: that one is kept instead.
    """
    pm = _manager()
    disabled = set(config.plugins.disabled)
    origins: dict[str, str] = {}
    declared: dict[str, list[Command]] = {}
    problems: list[str] = []

    def add(name: str, plugin: object, origin: str) -> None:
        if name in origins:
            raise PluginError(f"a plugin named {name} is already loaded ({origins[name]})")
        pm.register(plugin, name=name)
        try:
            unknown = _unknown_hooks(pm, plugin)
            if unknown:
                raise PluginError(
                    f"unknown hook {', '.join(unknown)}; chatd's hooks are: {_hook_names()}"
                )
            declared[name] = _declared_commands(pm, plugin)
        except BaseException:
            pm.unregister(plugin)
            raise
        origins[name] = origin

    def add_or_keep(name: str, load: Callable[[], object], origin: str, what: str) -> None:
        try:
            add(name, load(), origin)
            return
        except PLUGIN_FAILURES as exc:
            why = _describe(exc)
        old = previous.pm.get_plugin(name) if previous is not None else None
        if old is not None and previous is not None and previous.origins.get(name) == origin:
            add(name, old, origin)  # it worked before: it still does
            problems.append(f"{what} failed to load, kept the previous version: {why}")
        else:
            problems.append(f"{what} skipped: {why}")

    for module_name in builtins:
        name = module_name.rpartition(".")[2]
        if name in disabled:
            continue
        try:
            add(name, importlib.import_module(module_name), "built-in")
        except PluginError as exc:
            raise PluginError(f"plugin {name}: {exc}") from None

    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled:
                continue
            origin = f"entry point {ep.name} = {ep.value}"
            add_or_keep(ep.name, ep.load, origin, f"plugin {ep.name} ({origin})")

    for folder in config.plugins.dirs:
        directory = config.path(folder)
        if not directory.is_dir():
            if folder != "plugins.d":  # the default may simply not be there
                problems.append(f"plugin folder {directory} does not exist")
            continue
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_") or path.stem in disabled:
                continue
            if not path.is_file():  # a FIFO would block the loop until written to
                problems.append(f"plugin file {path} skipped: not a regular file")
                continue
            add_or_keep(
                path.stem, functools.partial(import_file, path), str(path), f"plugin file {path}"
            )

    def who(name: str) -> str:
        origin = origins.get(name, "built-in")
        return f"plugin {name}" if origin == "built-in" else f"plugin {name} ({origin})"

    commands = CommandTable.build(declared.items(), who)
    versions = {
        name: _digest(Path(origin)) for name, origin in origins.items() if origin.endswith(".py")
    }
    return PluginSet(pm, commands, origins, problems, versions)


class PluginHost:
    """The loaded plugins, as the hub uses them: commands, hooks, reload."""

    def __init__(
        self,
        config: Config,
        builtins: Iterable[str] = BUILTIN_PLUGINS,
        *,
        entry_points: bool = True,
    ) -> None:
        self.config = config
        self._builtins = tuple(builtins)
        self._entry_points = entry_points
        self._hub: Hub | None = None
        self.states: dict[str, dict[str, Any]] = {}
        self._chats: dict[str, Chat] = {}
        #: Times, counts and cuts off every plugin call; switches off a plugin
        #: that keeps failing (chatd.core.guard).
        self.guard = Guard(guard_settings(config))
        self.set = load_plugins(config, self._builtins, entry_points=entry_points)
        for problem in self.set.problems:
            log.error("%s", problem)
        check_extra(config, set(self.set.origins))

    @property
    def commands(self) -> CommandTable:
        return self.set.commands

    @property
    def names(self) -> list[str]:
        return list(self.set.origins)

    def attach(self, hub: Hub) -> None:
        self._hub = hub
        self.guard.clock = hub.clock  # the breaker's window runs on the server's clock

    @property
    def hub(self) -> Hub:
        assert self._hub is not None, "PluginHost used before a Hub was attached"
        return self._hub

    def chat(self, name: str) -> Chat:
        """Plugin ``name``'s own view of the chat."""
        chat = self._chats.get(name)
        if chat is None:
            state = self.states.setdefault(name, {})
            chat = self._chats[name] = Chat(self.hub, name, self.config.section(name), state, self)
        return chat

    # -- calling hooks -------------------------------------------------------------

    def _each(
        self,
        hook: str,
        *,
        user: User | None = None,
        only: set[str] | None = None,
        plugins: PluginSet | None = None,
        log_errors: bool = True,
        **kwargs: Any,
    ) -> Iterator[tuple[str, Any, BaseException | None]]:
        """Call ``hook`` on each plugin in load order: (name, result, error).

        An error is logged with its traceback unless ``log_errors`` is False
        (the caller reports it in its own words).
        """
        pset = plugins or self.set
        guard = self.guard
        allowed = RESULT_TYPES.get(hook)
        for impl in getattr(pset.pm.hook, hook).get_hookimpls():
            name = impl.plugin_name
            if (only is not None and name not in only) or not guard.enabled(name):
                continue
            args: dict[str, Any] = {}
            for arg in impl.argnames:
                if arg == "chat":
                    args[arg] = self.chat(name)
                elif arg == "ctx":
                    assert user is not None
                    args[arg] = Context(self.chat(name), user, kwargs.get("room"))
                else:
                    args[arg] = kwargs[arg]
            result, error = guard.run(name, hook, impl.function, **args)
            if error is not None:
                if log_errors:
                    _log_failure(name, hook, error)
                yield name, None, error
                continue
            if result is not None and allowed is not None and not isinstance(result, allowed):
                want = " or ".join(t.__name__ for t in allowed)
                guard.bad_result(name, hook, f"{type(result).__name__}, not None or {want}")
                result = None
            yield name, result, None

    def _call_all(self, hook: str, **kwargs: Any) -> None:
        """Call ``hook`` on every plugin for its effect; errors are logged by _each."""
        for _ in self._each(hook, **kwargs):
            pass

    def startup(self, only: set[str] | None = None) -> None:
        """Run ``chatd_startup``. A built-in plugin that fails stops the server (its
        settings are wrong: the error says which); any other is logged and stays."""
        for name, _, error in self._each("chatd_startup", only=only, log_errors=False):
            if error is None:
                continue
            if self.set.origins.get(name) == "built-in":
                raise PluginError(f"plugin {name}: {_describe(error)}") from error
            log.error("plugin %s: startup failed: %s", name, _describe(error), exc_info=error)

    def describe(self) -> str:
        """The loaded plugins and where they came from, for the log."""
        names = [n if o == "built-in" else f"{n} ({o})" for n, o in self.set.origins.items()]
        return f"plugins: {', '.join(names)}; {len(self.commands)} commands"

    def shutdown(self, only: set[str] | None = None, plugins: PluginSet | None = None) -> None:
        self._call_all("chatd_shutdown", only=only, plugins=plugins)

    def user_joined(self, user: User) -> None:
        self._call_all("chatd_user_joined", user=user)

    def user_left(self, user: User, reason: str) -> None:
        self._call_all("chatd_user_left", user_id=user.id, nick=user.nick, reason=reason)

    def user_status(self, user: User) -> list[str]:
        """What the plugins say ``user`` is doing, for operators."""
        return [
            result
            for _, result, _ in self._each("chatd_user_status", user_id=user.id)
            if isinstance(result, str) and result
        ]

    def set_config(self, config: Config) -> None:
        """New settings: each plugin's ``chat.config`` reads them from now on."""
        self.config = config
        self._chats.clear()
        self.guard.settings = guard_settings(config)

    def filter_message(self, user: User, room: str, text: str, action: bool) -> str | None:
        """The text to deliver to ``room``, or None when a plugin dropped it (the
        sender was told)."""
        hook = self._each("chatd_message", user=user, room=room, text=text, action=action)
        for _, result, _ in hook:
            if isinstance(result, Drop):
                reason = sentence(one_line(str(result.reason)))
                self.hub.notify(user, f"Not sent: {reason}", room)
                return None
            if isinstance(result, str):
                text = result
        return text

    def run_command(self, user: User, invocation: Invocation) -> None:
        """Run one command for ``user``; a failing plugin costs only its own reply."""
        table = self.commands
        if not invocation.name:  # "/" alone, or "/ text"
            self.hub.notify(
                user, "Type a command name after the /; /help lists them (// sends a /)."
            )
            return
        command = table.get(invocation.name)
        if command is None:
            self.hub.notify(
                user, f"Unknown command /{invocation.name}. Type /help for the list of commands."
            )
            return
        plugin = table.plugin_of(command.name)
        self.hub.stats.commands[command.name] += 1
        if not self.guard.enabled(plugin):
            record = self.guard.records.get(plugin)
            why = (
                "an operator turned it off"
                if record and record.state == OFF
                else ("it failed repeatedly")
            )
            self.hub.notify(
                user, f"/{command.name} is switched off: {why}. An operator can turn it back on."
            )
            return
        ctx = Context(self.chat(plugin), user)
        _, error = self.guard.run(plugin, f"/{command.name}", command.handler, ctx, invocation.args)
        if error is not None:
            _log_failure(plugin, f"/{command.name} for {user.nick}", error)
            self.hub.notify(user, f"/{command.name} failed (internal error).")

    # -- reloading -----------------------------------------------------------------

    def reload(self, what: str = "all") -> Report:
        """Reload ``what`` (one of RELOAD_TOPICS) while users stay connected.

        Returns one line per change or failure, for the operator; ``failed`` is
        set when anything was refused or failed. Whatever fails keeps what was
        working before.
        """
        if what not in RELOAD_TOPICS:
            return Report(
                [f"nothing to reload called {what!r}; choose one of {', '.join(RELOAD_TOPICS)}"],
                failed=True,
            )
        report = Report()
        if what in ("plugins", "all"):
            report.extend(self._reload_plugins())
        report.extend(self.run_reload_hooks(what, log_lines=False))
        for line in report:
            log.log(logging.WARNING if report.failed else logging.INFO, "reload: %s", line)
        return report or Report([f"reload {what}: nothing to reload"])

    def run_reload_hooks(self, what: str, *, log_lines: bool = True) -> Report:
        """Every plugin's ``chatd_reload(what)``: what each says it changed, or why it failed."""
        report = Report()
        for name, result, error in self._each("chatd_reload", what=what, log_errors=False):
            if error is not None:
                report.fail(f"{name}: reload failed, kept the old data: {_describe(error)}")
                log.debug("plugin %s: chatd_reload failed", name, exc_info=error)
            elif result:
                report.append(f"{name}: {result}")
        if log_lines:
            for line in report:
                log.log(logging.WARNING if report.failed else logging.INFO, "reload: %s", line)
        return report

    def _reload_plugins(self) -> Report:
        old = self.set
        try:
            new = load_plugins(
                self.config, self._builtins, entry_points=self._entry_points, previous=old
            )
            check_extra(self.config, set(new.origins))
        except (PluginError, CommandError, ConfigError) as exc:
            return Report(
                [f"plugins: reload refused, kept the previous {len(old.origins)} plugins: {exc}"],
                failed=True,
            )
        except OSError as exc:  # a plugin folder that can't be listed (out of fds, say)
            where = f" {exc.filename}" if exc.filename else ""
            return Report(
                [
                    f"plugins: reload failed, kept the previous {len(old.origins)} plugins:"
                    f" cannot read{where}: {exc.strerror or exc}"
                ],
                failed=True,
            )
        gone = {n for n in old.origins if old.pm.get_plugin(n) is not new.pm.get_plugin(n)}
        fresh = {n for n in new.origins if old.pm.get_plugin(n) is not new.pm.get_plugin(n)}
        self.shutdown(only=gone & set(old.origins), plugins=old)
        self.set = new
        self._chats.clear()
        for name in fresh:
            # A new version of a file starts on with clean counters, unless an
            # operator turned it off; the same file imported again is no news.
            record = self.guard.records.get(name)
            changed = old.versions.get(name) != new.versions.get(name)
            if changed and (record is None or record.state != OFF):
                self.guard.fresh(name)
        self.guard.forget(set(new.origins))
        self.startup(only=fresh)
        old_cmds = {c.name for c in old.commands}
        new_cmds = {c.name for c in new.commands}
        changes = [f"+/{n}" for n in sorted(new_cmds - old_cmds)]
        changes += [f"-/{n}" for n in sorted(old_cmds - new_cmds)]
        lines = [
            f"plugins: {len(old.origins)} -> {len(new.origins)} loaded,"
            f" commands {len(old_cmds)} -> {len(new_cmds)}"
            + (f" ({' '.join(changes)})" if changes else "")
        ]
        report = Report(lines)
        for problem in new.problems:
            report.fail(f"plugins: {problem}")
        return report
