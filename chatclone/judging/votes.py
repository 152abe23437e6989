"""The votes of a judging run, in SQLite (the standard library's sqlite3): safe with several judges voting at once
and nothing lost on a crash. The database is in WAL mode (readers never block the one writer), every vote is its
own short transaction (BEGIN IMMEDIATE ... COMMIT, synchronous=FULL: a vote the page was told is recorded is on
disk), and a writer waits up to BUSY_TIMEOUT_S for another's transaction to finish instead of failing.

A vote: the judge's name, the item's id, the choice ("a", "b" or "cant_tell"), whether the chosen side was the
clone's reply (null for "cant_tell") and the time (UTC, ISO 8601). A judge votes once on an item: a second vote
on it is refused (`DuplicateVote`) and the first one stands, so that a judge who goes back in the browser cannot
change an answer after seeing more items.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from chatclone.errors import ChatcloneError

CHOICES = ("a", "b", "cant_tell")
CANT_TELL = "cant_tell"
BUSY_TIMEOUT_S = 30.0
SCHEMA = """
CREATE TABLE votes (
    judge TEXT NOT NULL,
    item INTEGER NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'cant_tell')),
    picked_clone INTEGER CHECK (picked_clone IN (0, 1)),   -- NULL = can't tell
    voted_at TEXT NOT NULL,
    PRIMARY KEY (judge, item)
)"""


class DuplicateVote(ChatcloneError):
    """This judge has voted on this item already; the first vote stands."""


@dataclass(frozen=True)
class Vote:
    judge: str
    item: int
    choice: str
    picked_clone: bool | None  # None = can't tell
    voted_at: str


@contextmanager
def connect(path: Path, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to an existing votes database, closed at the end of the block (one per request or thread:
    a sqlite3 connection is not shared between threads). `readonly` opens it so that nothing can be written."""
    path = Path(path)
    if not path.is_file():
        raise ChatcloneError("no votes database: not a prepared judging run dir", path)
    uri = f"{path.resolve().as_uri()}?mode={'ro' if readonly else 'rw'}"
    with closing(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as conn:
        conn.execute("PRAGMA synchronous = FULL")
        yield conn


def create_store(path: Path) -> Path:
    """A new, empty votes database at `path` (which must not exist), in WAL mode."""
    with closing(sqlite3.connect(Path(path), isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")  # persistent: every later connection is in WAL mode too
        conn.execute(SCHEMA)
    return Path(path)


def record_vote(path: Path, judge: str, item: int, choice: str, clone_side: str) -> Vote:
    """Store one vote (`clone_side`: the side, "a" or "b", the clone's reply is on), in its own transaction; the
    vote. DuplicateVote when this judge has voted on this item already; ChatcloneError for a bad choice."""
    if choice not in CHOICES:
        raise ChatcloneError(f"choice must be one of {', '.join(CHOICES)}, not {choice!r}")
    picked = None if choice == CANT_TELL else choice == clone_side
    vote = Vote(judge, item, choice, picked, datetime.now(timezone.utc).isoformat())
    with connect(path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            added = conn.execute(
                "INSERT INTO votes VALUES (?, ?, ?, ?, ?) ON CONFLICT (judge, item) DO NOTHING",
                (judge, item, choice, None if picked is None else int(picked), vote.voted_at),
            ).rowcount
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if not added:
        raise DuplicateVote(f"{judge} has voted on item {item} already; the first vote stands")
    return vote


def read_votes(path: Path, judge: str | None = None) -> list[Vote]:
    """Every vote (or one judge's), oldest first, read without writing anything."""
    query, args = "SELECT judge, item, choice, picked_clone, voted_at FROM votes", ()
    if judge is not None:
        query, args = query + " WHERE judge = ?", (judge,)
    with connect(path, readonly=True) as conn:
        rows = conn.execute(query + " ORDER BY voted_at, rowid", args).fetchall()
    return [Vote(j, i, c, None if p is None else bool(p), t) for j, i, c, p, t in rows]
