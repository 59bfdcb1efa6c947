"""Database engine and sessions; migrations run on start-up."""

from __future__ import annotations

import ast
import functools
import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import NamedTuple

from sqlalchemy import Select, create_engine, event, text
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without their zone; they are stored in UTC."""
    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=UTC)


SQLITE_CONNECT = {"check_same_thread": False, "timeout": 30}  # pooled across threads


class Engines(NamedTuple):
    """An engine with its session factory and, on PostgreSQL, its autocommit twin (single
    statements need no BEGIN and COMMIT round trips); None elsewhere."""

    engine: Engine
    sessions: sessionmaker
    autocommit: Engine | None

    @classmethod
    def of(cls, engine: Engine) -> Engines:
        autocommit = (engine.execution_options(isolation_level="AUTOCOMMIT")
                      if engine.dialect.name == "postgresql" else None)
        return cls(engine, sessionmaker(engine, expire_on_commit=False), autocommit)


class Database:
    def __init__(self, url: str):
        self.url = url
        # No pre-ping (a round trip per checkout): after a PostgreSQL restart the first use of a
        # stale connection fails once and the pool drops all connections of that generation.
        kwargs = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = SQLITE_CONNECT
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._durable = Engines.of(self.engine)
        self._statements = (
            sessionmaker(self._durable.autocommit, expire_on_commit=False)
            if self._durable.autocommit is not None else self._durable.sessions
        )
        self._undurable: Engines | None = None  # see `undurable`
        self._undurable_lock = threading.Lock()

    def session(self, durable: bool = True) -> AbstractContextManager[Session]:
        """A session that commits on success and rolls back on error. `durable=False`: its
        commit does not wait for the disk (see `undurable`)."""
        return _committing((self._durable if durable else self.undurable()).sessions)

    def undurable(self) -> Engines:
        """An engine (and its sessions) whose commits return before they are on disk, for
        writes that a power cut may take back without harm because they are redone anyway: a
        job's claim (a job found running after a crash is queued again; a claim taken back
        leaves it queued, with the same effect) and its progress. They are on disk with the
        next durable commit (the log is written in order), and other connections see them at
        once. It keeps a job's start from queueing behind the fsync of its inputs (megabytes,
        on the same disk). SQLite: synchronous=NORMAL on WAL; PostgreSQL: synchronous_commit
        off. Made on first use (API processes never claim)."""
        if self._undurable is not None:  # every claim and progress write asks
            return self._undurable
        with self._undurable_lock:
            if self._undurable is None:
                name = self.engine.dialect.name
                if name == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
                    engine = create_engine(self.url, connect_args=SQLITE_CONNECT)
                    event.listen(engine, "connect", _sqlite_pragmas)
                    event.listen(engine, "connect", _sqlite_undurable)
                elif name == "postgresql":
                    engine = create_engine(
                        self.url, connect_args={"options": "-c synchronous_commit=off"})
                else:  # an in-memory database has one copy: this engine's
                    engine = self.engine
                self._undurable = Engines.of(engine)
            return self._undurable

    def statements(self) -> AbstractContextManager[Session]:
        """A session whose statements each commit on their own (PostgreSQL autocommit: no BEGIN
        and COMMIT round trips), for hot paths that read with one statement or change a row
        with one conditional update, which are atomic by themselves. Work that must see or
        change several rows as one step uses `session()`. On SQLite (a local file: no round
        trips) it is `session()`."""
        return _committing(self._statements)

    def connection(self, durable: bool = True) -> AbstractContextManager[Connection]:
        """A Core connection for one statement on a hot path (a job's claim, a key lookup),
        without an ORM session: that costs more than the statement itself. PostgreSQL: in
        autocommit; SQLite: in a transaction committed at the end. `durable=False`: its commit
        does not wait for the disk (see `undurable`)."""
        engines = self._durable if durable else self.undurable()
        if engines.autocommit is not None:
            return engines.autocommit.connect()
        return engines.engine.begin()

    def serialize(self, session: Session, *names: str, then: Select | None = None,
                  params: dict | None = None) -> Row | None:
        """Make `session`'s transaction wait for, and then hold off, every other transaction
        that serializes on one of `names` until it commits or rolls back: a count and the insert
        it allows happen as one step. Call it before the session's first statement.

        `then`: a read to run once the locks are held (it sees what every transaction that held
        them before committed), with `params` (plain strings and numbers); its first row is
        returned. On PostgreSQL it goes in the same round trip as the locks.

        PostgreSQL: a transaction-scoped advisory lock per name (taken in one order, so two
        transactions never wait for each other). SQLite: the write lock of the whole database,
        taken at once (`BEGIN IMMEDIATE`; the sqlite driver would otherwise begin only at the
        first write, after the count)."""
        connection = session.connection()
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return connection.execute(then, params or {}).first() if then is not None else None
        if dialect != "postgresql":
            raise RuntimeError(f"no way to serialize transactions on {dialect}")
        # One simple-protocol string for all of them: the keys are our own integers, so the
        # server takes them in this order, and each statement of the string reads with a
        # snapshot of its own, taken when it starts (the read's, after the locks are held).
        keys = sorted({_lock_key(name) for name in names})
        locks = "; ".join(f"SELECT pg_advisory_xact_lock({int(key)})" for key in keys)
        if then is None:
            connection.exec_driver_sql(locks)
            return None
        from psycopg import ClientCursor  # binds `params` itself, quoted by the driver

        sql, defaults = _compiled(then, connection.dialect)
        with ClientCursor(connection.connection.driver_connection) as cursor:
            cursor.execute(f"{locks}; {sql}", {**defaults, **(params or {})})
            while cursor.nextset():
                pass
            return cursor.fetchone()

    def migrate(self) -> None:
        """Bring the schema up to date (Alembic `upgrade head`). A database already at the head
        revision is left alone without importing Alembic: that is every start but the first
        after an upgrade, and Alembic's import and script scan cost a noticeable part of it."""
        if self.is_current():
            return
        from alembic import command

        with self.engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "head")

    def revisions(self) -> tuple[str | None, str]:
        """(the database's schema revision, the newest one this aiedit knows)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            head = ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()
        return current, head

    def check_current(self) -> None:
        """Refuse to run on a schema that `aiedit db upgrade` has not brought up to date
        (studio mode: many processes share the database, so none migrates it on its own)."""
        if self.is_current():
            return
        current, head = self.revisions()
        if current != head:
            raise RuntimeError(
                f"the database schema is at revision {current or 'none (empty database)'} but "
                f"this aiedit needs {head}: run `aiedit db upgrade` first"
            )

    def revision(self) -> set[str] | None:
        """The revisions stored in `alembic_version` (None when there is no such table)."""
        try:
            with self.engine.connect() as connection:
                return {row[0] for row in connection.execute(text(_VERSION_QUERY))}
        except DBAPIError:
            return None

    def is_current(self) -> bool:
        head = head_revision()
        return head is not None and self.revision() == {head}

    def scrub(self) -> None:
        """After deleting user data: SQLite copies the write-ahead log into the database file
        and truncates it, so old page versions (holding what was deleted) leave the disk too.
        Best effort: a reader holding an old snapshot makes SQLite leave the log; the next
        scrub tries again. PostgreSQL keeps dead row versions until (auto)vacuum reuses them."""
        if self.engine.dialect.name != "sqlite":
            return
        with self.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._undurable is not None:
            self._undurable.engine.dispose()


@functools.cache
def _compiled(statement: Select, dialect) -> tuple[str, dict]:
    """`statement` as the driver's SQL text and its own bound values, compiled once."""
    compiled = statement.compile(dialect=dialect)
    return str(compiled), dict(compiled.params)


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name` (the same in every process)."""
    digest = hashlib.sha256(f"aiedit:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option(
        "script_location", str(resources.files("aiedit.store").joinpath("migrations"))
    )
    cfg.attributes["connection"] = connection
    return cfg


_VERSION_QUERY = "SELECT version_num FROM alembic_version"
_REVISION = re.compile(r"^revision\s*=\s*(.+)$", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(.+)$", re.MULTILINE)


@functools.cache
def head_revision() -> str | None:
    """The single head of the migration scripts, read from their `revision` and
    `down_revision` lines without importing Alembic; None when that cannot be told for sure
    (several heads, an unusual file), and then Alembic decides."""
    folder = resources.files("aiedit.store").joinpath("migrations", "versions")
    revisions, parents = set(), set()
    for script in folder.iterdir():
        if not script.name.endswith(".py") or script.name.startswith("__"):
            continue
        source = script.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return None
        try:
            revisions.add(ast.literal_eval(revision.group(1).strip()))
            down_value = ast.literal_eval(down.group(1).strip())
        except (ValueError, SyntaxError):
            return None
        if isinstance(down_value, str):
            parents.add(down_value)
        elif isinstance(down_value, (tuple, list)):
            parents.update(down_value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk when it returns (in WAL mode, one small fsync of the log). The
    # 202 that acknowledges a job comes after its row's commit and its inputs' fsync, and a
    # result is fsynced before its job's "succeeded" commit: with NORMAL a power cut could take
    # back a commit whose files survive, losing an acknowledged job.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted rows are overwritten with zeros, not left in free pages: an expired prompt or an
    # erased account is gone from the file, not only from the table.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _sqlite_undurable(dbapi_connection, _record) -> None:
    """After `_sqlite_pragmas`, for `Database.undurable`: commits append to the write-ahead
    log without waiting for its fsync."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def _committing(sessions) -> Iterator[Session]:
    """A session from the factory `sessions` that commits on success and rolls back on error."""
    with sessions() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
