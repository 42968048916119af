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
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    return pm
