"""The pluggy plugin manager: which plugins exist and how they are loaded.

Rule: a manager is built by :func:`make_plugin_manager`, never kept as a
module-level global, so every server (and every test) gets a fresh one.
Built-in plugins are registered exactly the way any other plugin is.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import pluggy

from chatd import hookspecs
from chatd.plugins import BUILTIN_PLUGINS


class PluginError(Exception):
    """A plugin could not be loaded or does not fit; the message names the plugin."""


def make_plugin_manager(builtins: Iterable[str] = BUILTIN_PLUGINS) -> pluggy.PluginManager:
    """A manager with chatd's hook specs and the given built-in plugin modules."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for module_name in builtins:
        module = importlib.import_module(module_name)
        pm.register(module, name=module_name.rpartition(".")[2])
    _check_hook_names(pm)
    return pm


def _check_hook_names(pm: pluggy.PluginManager) -> None:
    """pluggy's check_pending(), with an error that names the plugin plainly."""
    for name, caller in vars(pm.hook).items():
        if isinstance(caller, pluggy.HookCaller) and not caller.has_spec():
            for impl in caller.get_hookimpls():
                if not impl.optionalhook:
                    known = ", ".join(sorted(n for n in vars(hookspecs) if n.startswith("chatd_")))
                    raise PluginError(
                        f"plugin {impl.plugin_name}: unknown hook {name};"
                        f" chatd's hooks are: {known}"
                    )
