"""Reading the list files plugins use (words, facts): one entry a line.

Rule: one format for every list file: UTF-8, one entry a line, surrounding
space trimmed, blank lines and lines starting with ``#`` ignored. Errors are
one line naming the file.
"""

from __future__ import annotations

from pathlib import Path


class DataFileError(Exception):
    """A list file cannot be used; the message names the file."""


def read_list(path: Path) -> list[str]:
    """The entries of a list file, in order."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc.strerror}") from None
    entries = [line.strip() for line in text.splitlines()]
    return [entry for entry in entries if entry and not entry.startswith("#")]
