"""Where the admin socket lives, and making its folder safe (as tmux does).

Rule: the socket's folder belongs to the server's user and nobody else can
enter it; a folder someone else owns is refused, never used.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from chatd.config import Config


class SocketPathError(Exception):
    """The admin socket's folder can't be used safely; the message says why."""


def default_socket_path() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "chatd" / "admin.sock"
    return Path(f"/tmp/chatd-{os.getuid()}") / "admin.sock"


def socket_path(config: Config, override: str | None = None) -> Path:
    """The admin socket: ``override``, else ``[admin] socket``, else the default."""
    if override:
        return Path(override)
    if config.admin.socket:
        return config.path(config.admin.socket)
    return default_socket_path()


#: sun_path holds 108 bytes on Linux, one of them the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107


def prepare_folder(path: Path) -> None:
    """Create the socket's folder 0700 if it is missing; refuse one another user owns,
    and a path too long to be a Unix socket."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise SocketPathError(
            f"admin socket path {path} is longer than a Unix socket allows"
            f" ({MAX_SOCKET_PATH_BYTES} bytes); set [admin] socket to a shorter path"
        )
    folder = path.parent
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as exc:
        raise SocketPathError(f"admin socket folder {folder}: {exc.strerror}") from None
    if info.st_uid != os.getuid():
        raise SocketPathError(
            f"admin socket folder {folder} belongs to uid {info.st_uid}, not to this user"
            f" (uid {os.getuid()}); set [admin] socket to a path of your own"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(folder, 0o700)  # ours, but open to others: close it
