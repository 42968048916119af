"""The history store: what chatd keeps on disk (room lines, seen marks,
accounts, offline private messages, scores), beside the hub.

Rule (DESIGN.md): the hub talks to the store through one narrow interface,
and the loop never waits for the disk. This package is being built (issue 16)
in steps; so far it holds :mod:`chatd.store.database`, which opens a SQLite
database safely (lock, checks, migrations), and :mod:`chatd.store.lines`,
which keeps room lines in it off the loop; the hub does not use them yet.
"""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be used; the message names the path and what to do, in one line."""
