"""chatd's built-in plugins. Each uses only the API in ``chatd`` (``chatd.__all__``).

Every module listed here is registered at startup exactly like a drop-in plugin.
"""

BUILTIN_PLUGINS = (
    "chatd.plugins.help",
    "chatd.plugins.basics",
)
