"""The history database's schema, as a list of migrations.

Rule: the schema is only ever changed by appending a step to MIGRATIONS; a
database records how many steps it has had in ``PRAGMA user_version``, and
opening it applies the missing ones in one transaction. A step is never
edited once released: databases out there have run it.

Step 1 made the tables (room lines, seen marks, accounts, offline private
messages, scores); step 2 marks a kept private message that was a /me
(``pms.action``) and keeps each score as it was won (``score_events``, a
week of them: chatd.store.accounts), for the week's scores beside all-time.
A step's SQL is split at semicolons: none may appear inside one statement,
nor in a comment.
"""

from __future__ import annotations

from typing import Final

#: ``PRAGMA application_id``: "chad" in ASCII, so that chatd knows its own
#: database file from another program's SQLite file at the same path.
APPLICATION_ID: Final = 0x63686164

#: Step N (counting from 1) takes a database from version N-1 to N.
MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: room lines, seen marks, accounts, offline private messages, scores.
    """
    CREATE TABLE rooms(
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,            -- chatd.core.rooms.room_key(name)
        name TEXT NOT NULL,
        lines INTEGER NOT NULL DEFAULT 0     -- kept by the writer: pruning without count(*)
    );
    CREATE TABLE lines(
        id INTEGER PRIMARY KEY,              -- assigned on the loop, in arrival order
        room INTEGER NOT NULL REFERENCES rooms(id),
        at INTEGER NOT NULL,                 -- milliseconds since the epoch
        kind INTEGER NOT NULL,               -- 1 said, 2 acted, 3 a notice, 4 a topic
        nick TEXT NOT NULL,
        ident TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL
    );
    CREATE INDEX lines_room ON lines(room, id);
    CREATE TABLE seen(
        who TEXT NOT NULL,                   -- '@account' or 'nick:alice'
        room INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY(who, room)
    ) WITHOUT ROWID;
    CREATE TABLE accounts(
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,            -- the nickname, folded as the hub folds it
        name TEXT NOT NULL,
        hash TEXT NOT NULL,                  -- 'scrypt$n$r$p$salt$key'
        created INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
    );
    CREATE TABLE pms(
        id INTEGER PRIMARY KEY,
        to_account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        sender TEXT NOT NULL,
        sender_ident TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL,
        notice INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX pms_to ON pms(to_account, id);
    CREATE TABLE scores(
        game TEXT NOT NULL,
        who TEXT NOT NULL,
        total INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        PRIMARY KEY(game, who)
    ) WITHOUT ROWID;
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    """,
    # 2: a private /me kept for an offline account stays an action; each score
    # as it was won, so that "this week" can be told from all-time.
    """
    ALTER TABLE pms ADD COLUMN action INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE score_events(
        id INTEGER PRIMARY KEY,
        game TEXT NOT NULL,
        who TEXT NOT NULL,                   -- as in scores: '@account' or a guest's nickname
        at INTEGER NOT NULL,                 -- milliseconds since the epoch
        points INTEGER NOT NULL
    );
    CREATE INDEX score_events_at ON score_events(at);
    """,
)

#: The version this chatd writes.
VERSION: Final = len(MIGRATIONS)
