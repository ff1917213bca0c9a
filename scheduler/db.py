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
    """SQLite in WAL mode: one write connection, and one read connection per thread.

    Writers take `write()`, which holds the lock and an IMMEDIATE transaction, so concurrent imports are
    serialised and a failed one leaves nothing behind. Readers on other threads use their own
    connection and never wait for a writer (WAL), so a long import in a worker thread does not stall
    the event loop's reads; a read inside a thread's own write transaction sees that transaction.
    """

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._owner: int | None = None  # the thread inside write(), if any
        self._depth = 0
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()  # not the write lock: a new reader must not wait for a writer
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = self._connect()
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StorageError(_explain(exc, self.path)) from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path), timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def close(self) -> None:
        with self._lock, self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self.conn.close()

    @property
    def version(self) -> int:
        with self.read() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if current > SCHEMA_VERSION:
            raise StorageError(
                f"the database {self.path} has schema version {current}, newer than this program's "
                f"{SCHEMA_VERSION}: upgrade live-classroom, or use a backup made by this version"
            )
        if current == SCHEMA_VERSION:
            return
        # SQLite's way to rebuild a table that others reference (its "12-step" ALTER TABLE procedure):
        # foreign keys off while migrating (the pragma is a no-op inside a transaction), every reference
        # checked before each migration commits, back on afterwards
        self.conn.execute("PRAGMA foreign_keys = OFF")
        try:
            for number in range(current, SCHEMA_VERSION):
                with self.write():
                    for statement in _statements(MIGRATIONS[number]):
                        self.conn.execute(statement)
                    broken = self.conn.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise StorageError(
                            f"migration {number + 1} would leave {len(broken)} broken references "
                            f"(first in table {broken[0][0]}); the database is left at version {number}"
                        )
                    self.conn.execute(f"PRAGMA user_version = {number + 1}")
        finally:
            self.conn.execute("PRAGMA foreign_keys = ON")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A serialised write transaction: committed on success, rolled back entirely on any error.

        A write() nested in another on the same thread joins the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StorageError(_explain(exc, self.path)) from exc
            self._owner, self._depth = threading.get_ident(), 1
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
            finally:
                self._owner, self._depth = None, 0

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        if self._owner == threading.get_ident() or not isinstance(self.path, Path):
            with self._lock:  # inside our own transaction, or an in-memory database: one connection
                yield self.conn
            return
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect()
            except sqlite3.DatabaseError as exc:
                raise StorageError(_explain(exc, self.path)) from exc
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        yield conn


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
