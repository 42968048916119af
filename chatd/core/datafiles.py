"""Reading the list files plugins use (words, facts): one entry a line; and
the other text files the server reads while it runs (the IRC MOTD).

Rule: one format for every list file: UTF-8, one entry a line, surrounding
space trimmed, blank lines and lines starting with ``#`` ignored. Errors are
one line naming the file. Lists are read in the server's loop (at startup and
on every reload), so reading one must never wait on anybody: only a regular
file of a bounded size is read; a FIFO, a device, a socket or a folder is
refused without being opened for long enough to block.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

#: Largest list file read, in bytes. The bundled word list is 2 KB and a whole
#: dictionary (~100,000 words) is about 1 MB; 16 MiB is far past any real list,
#: and small enough that reading and splitting it takes the loop a fraction of
#: a second, not the machine's memory.
MAX_LIST_BYTES: Final = 16 * 1024 * 1024

#: What a file that is not regular is, for the message (stat.S_IS* tests).
_KINDS: Final = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class DataFileError(Exception):
    """A list file cannot be used; the message names the file."""


def _not_regular(path: Path, mode: int) -> DataFileError:
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return DataFileError(f"{path}: is {kind}, not a regular file; name a plain text file")


def read_list(path: Path) -> list[str]:
    """The entries of a list file, in order."""
    entries = [line.strip() for line in read_text(path).splitlines()]
    return [entry for entry in entries if entry and not entry.startswith("#")]


def read_text(path: Path, limit: int | None = None) -> str:
    """The whole of a UTF-8 text file of at most ``limit`` bytes (a list's
    MAX_LIST_BYTES by default), read without ever waiting on anybody."""
    what = "keep it short"
    if limit is None:
        limit, what = MAX_LIST_BYTES, "a list is one entry a line"
    try:
        # stat first: opening a FIFO waits for a writer, and opening some
        # devices does things; neither is ever opened.
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        # O_NONBLOCK: should a FIFO replace the file between the stat and the
        # open, the open returns at once instead of waiting for a writer, and
        # the fstat below refuses it. Reads of a regular file ignore the flag.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with open(fd, "rb", closefd=True) as fh:
            mode = os.fstat(fh.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise _not_regular(path, mode)
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise DataFileError(f"{path}: larger than {_size(limit)}; {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 (byte {exc.start})") from None


def _size(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
