"""Opening the SQLite database: pragmas, migrations, and clear errors for locked or corrupt files."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scheduler.schema import MIGRATIONS, SCHEMA_VERSION


class StorageError(RuntimeError):
    """The database cannot be used: locked, corrupt, or written by a newer program."""


class Database:
    """One SQLite connection shared by the process, used by one thread at a time.

    Writers take `write()`, which holds the lock and an IMMEDIATE transaction, so concurrent imports are
    serialised and a failed one leaves nothing behind.
    """

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        self._lock = threading.RLock()
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StorageError(_explain(exc, self.path)) from exc

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    @property
    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.version
        if current > SCHEMA_VERSION:
            raise StorageError(
                f"the database {self.path} has schema version {current}, newer than this program's "
                f"{SCHEMA_VERSION}: upgrade live-classroom, or use a backup made by this version"
            )
        for number in range(current, SCHEMA_VERSION):
            with self.write():
                for statement in _statements(MIGRATIONS[number]):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number + 1}")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A serialised write transaction: committed on success, rolled back entirely on any error."""
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StorageError(_explain(exc, self.path)) from exc
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self.conn


def _statements(script: str) -> list[str]:
    """Split a migration script into statements, keeping trigger bodies whole."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def _explain(exc: sqlite3.DatabaseError, path: object) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"the database {path} is locked by another program or process ({text}); stop it and retry"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"the database {path} is corrupt or not an SQLite database ({text}); "
            "restore it from a backup or move it away to start afresh"
        )
    return f"the database {path} cannot be used: {text}"
