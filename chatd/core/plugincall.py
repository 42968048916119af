"""The one frame between chatd and a plugin's code.

Rule: this module holds only :func:`call`. The deadline (chatd.core.guard)
treats a frame of this file as the plugin's own: a timeout that falls due while
this frame is innermost (the plugin's callable is C code, such as
``time.sleep`` given directly as a timer callback) is raised here, and the walk
out from an inner frame stops here, the boundary of the plugin's call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return fn(*args, **kwargs)
