"""Where the admin socket lives, and making its path safe to serve on (as tmux does).

Rule: chatd serves its socket only where nobody else can replace it, and never
alters what it did not make. The folder is created 0700 when it is missing; an
existing folder is used as it is, never chmodded, and only when it is safe: it
belongs to this user or root, and other users cannot write to it, unless it is
sticky (as /tmp is), where only a file's owner may remove or rename it. At the
socket's path itself, only a socket of this user is ever replaced (and only
when no server answers on it, which the reactor checks); anything else there
is refused. Every error names the path at fault and says what to do.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from chatd.config import Config


class SocketPathError(Exception):
    """The admin socket can't be served at its path; the message names it and says why."""


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

#: Whose folders and files we trust besides our own: root can replace anything anyway.
ROOT_UID = 0

_ELSEWHERE = "set [admin] socket to a path in a folder of your own"


def prepare_folder(path: Path) -> None:
    """Make sure the socket at ``path`` can be served safely from its folder.

    A missing folder is created 0700 (its missing parents as mkdir -p would).
    An existing one is used unchanged if it is safe (see the module docstring);
    otherwise, and for a path too long to be a Unix socket, SocketPathError.
    """
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise SocketPathError(
            f"admin socket path {path} is longer than a Unix socket allows"
            f" ({MAX_SOCKET_PATH_BYTES} bytes); set [admin] socket to a shorter path"
        )
    folder = path.parent
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        # 0700, narrowed by the umask: never wider, so never open for a moment.
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass  # not ours to change: checked below, used as it is or refused
    except OSError as exc:
        raise SocketPathError(
            f"admin socket folder {folder}: cannot create it ({exc.strerror}); {_ELSEWHERE}"
        ) from None
    try:
        link = folder.lstat()
        info = folder.stat()  # what a symbolic link points to; else the folder itself
    except OSError as exc:
        raise SocketPathError(
            f"admin socket folder {folder}: {exc.strerror}; {_ELSEWHERE}"
        ) from None
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in _trusted():
        # Whoever owns the link can point it elsewhere after we have checked the target.
        raise SocketPathError(
            f"admin socket folder {folder} is a symbolic link of uid {link.st_uid}, not of"
            f" this user (uid {os.getuid()}); {_ELSEWHERE}"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise SocketPathError(f"admin socket folder {folder} is not a folder; {_ELSEWHERE}")
    if info.st_uid not in _trusted():
        raise SocketPathError(
            f"admin socket folder {folder} belongs to uid {info.st_uid}, not to this user"
            f" (uid {os.getuid()}); {_ELSEWHERE}"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        raise SocketPathError(
            f"admin socket folder {folder} can be written by other users (mode {mode:04o}),"
            f" who could replace the socket; make it private (chmod 700 {folder}) or"
            f" {_ELSEWHERE}"
        )


def check_leftover(path: Path) -> None:
    """Refuse anything at ``path`` that chatd may not replace: all but a socket of ours.

    Whether a socket of ours is stale (nobody answers on it) is the reactor's to
    find out when it listens.
    """
    try:
        info = path.lstat()  # a symbolic link is itself what is there, whatever it points to
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SocketPathError(f"admin socket {path}: {exc.strerror}; {_ELSEWHERE}") from None
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketPathError(
            f"admin socket path {path} is {_kind(path, info.st_mode)}, not a socket, and chatd"
            " replaces only a socket a stopped server left: move it away or set"
            " [admin] socket to another path"
        )
    if info.st_uid != os.getuid():
        raise SocketPathError(
            f"admin socket {path} is a socket of uid {info.st_uid}, not of this user"
            f" (uid {os.getuid()}); remove it if no server uses it, or set [admin] socket"
            " to another path"
        )


def serve_error(path: Path, exc: OSError) -> SocketPathError:
    """The one line for an OSError from listening on the admin socket at ``path``."""
    if isinstance(exc, FileExistsError) and exc.errno == errno.EADDRINUSE:
        return SocketPathError(
            f"another chatd is serving the admin socket {path}; stop it,"
            " or give this one its own [admin] socket"
        )
    if exc.errno in (errno.EEXIST, errno.EADDRINUSE):  # something appeared there meanwhile
        return SocketPathError(
            f"cannot serve the admin socket {path}: something else is there now;"
            " move it away or set [admin] socket to another path"
        )
    reason = exc.strerror or str(exc)
    return SocketPathError(f"cannot serve the admin socket {path}: {reason}; {_ELSEWHERE}")


def _trusted() -> frozenset[int]:
    return frozenset({os.getuid(), ROOT_UID})


def _kind(path: Path, mode: int) -> str:
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path)
        except OSError:
            return "a symbolic link"
        dangling = "" if path.exists() else ", which does not exist"
        return f"a symbolic link to {target}{dangling}"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "something other than a file"
