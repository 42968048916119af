"""chatd's built-in plugins. Each uses only the API in ``chatd`` (``chatd.__all__``).

Every module listed here is registered at startup exactly like a drop-in plugin,
under the last part of its name; ``[plugins] disabled`` can turn any of them off.
"""

BUILTIN_PLUGINS = (
    "chatd.plugins.help",
    "chatd.plugins.basics",
    "chatd.plugins.jumble",
    "chatd.plugins.fact",
)
