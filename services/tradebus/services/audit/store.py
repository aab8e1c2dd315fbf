"""Where the audit trail is kept: an append-only, hash-chained table in SQLite or PostgreSQL.

Both stores keep one table with the same columns, a UNIQUE (stream, stream_seq) so a
redelivered message is stored once, an index on the order key, and triggers that refuse
UPDATE and DELETE (the chain catches whoever gets around them). Each `append` is one
transaction that reads the chain's head, links the new records to it and inserts them;
appends are serialized (one connection per store, and in PostgreSQL a table lock that
also keeps a second audit instance from forking the chain).

Beside it, a table of stream bindings (see identity.py), written once per stream and
guarded by the same triggers.

The store has no version number: each addition is a table or a nullable column that an
older store lacks, added by the first writer that opens it (the audit service), and read as
absent by a reader (the CLI) of a store no writer has opened since. Bindings came first
(a store without them reads as binding nothing); then the `scope` column (the publisher
scope of each record): `ALTER TABLE ... ADD COLUMN scope` leaves the older records NULL,
their hashes unchanged (chain.py), and a reader of an older store reads NULL for each. SQL shared by both stores numbers its parameters `?1, ?2`
(SQLite's syntax; PostgreSQL's `$1` after one replace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import msgspec

from .chain import GENESIS, AuditRecord, ChainVerifier, StoredRecord, VerifyResult, link, new_records
from .completeness import MAX_RANGES, Coverage
from .config import AuditConfig
from .identity import StreamBinding

T = TypeVar("T")
log = logging.getLogger(__name__)

COLUMNS = ("id", "stream", "stream_seq", "subject", "msg_id", "ts", "msg_type", "order_key", "payload",
           "prev_hash", "hash", "scope")
_COLUMN_LIST = ", ".join(COLUMNS)
SCOPE_COLUMN = "scope"  # the latest addition (see the module docstring)
SQLITE_TABLE = "audit_log"
SQLITE_STREAMS = "audit_streams"
BINDING_COLUMNS = ("stream", "created", "first_seq", "bound_at")
_BINDING_LIST = ", ".join(BINDING_COLUMNS)
SQLITE_BUSY_TIMEOUT = 5.0  # seconds to wait for another process's write lock before failing


class StoreNotFound(Exception):
    """A reader (the CLI) asked for a store that was never created."""


class AuditStore(Protocol):
    location: str  # where the store is, for messages (never a password)

    async def append(self, records: Sequence[AuditRecord]) -> int:
        """Store the records not stored yet, in ONE transaction; return how many were new."""
        ...

    async def verify(self) -> VerifyResult: ...

    async def history(self, client_order_id: str) -> list[StoredRecord]:
        """Every record of an order (or cancel-all request), in bus time order."""
        ...

    async def bindings(self) -> dict[str, StreamBinding]:
        """The streams the store follows, by name (none for a store written before bindings)."""
        ...

    async def bind(self, bindings: Sequence[StreamBinding]) -> dict[str, StreamBinding]:
        """Record the bindings of streams not bound yet (a bound stream keeps its first
        binding); return every binding the store now has."""
        ...

    async def coverage(self, stream: str, first: int, last: int) -> Coverage:
        """What the store holds of `stream` between sequences `first` and `last`."""
        ...

    async def record_at(self, stream: str, stream_seq: int) -> StoredRecord | None: ...

    async def close(self) -> None: ...


async def open_store(config: AuditConfig, data_dir: str, *, create: bool = True) -> AuditStore:
    """Open the configured store; `create=False` (readers) refuses to create a missing one."""
    if config.store == "postgres":
        assert config.postgres_dsn is not None  # AuditConfig refuses postgres without a DSN
        return await PostgresAuditStore.open(config.postgres_dsn.reveal(), config.postgres_table, create=create)
    return await SqliteAuditStore.open(config.sqlite_file(data_dir), create=create)


def _row(values: Sequence[Any]) -> StoredRecord:
    return StoredRecord(**dict(zip(COLUMNS, values, strict=True)))


def _values(record: StoredRecord) -> tuple[Any, ...]:
    return tuple(getattr(record, column) for column in COLUMNS)


def _binding(values: Sequence[Any]) -> StreamBinding:
    return StreamBinding(**dict(zip(BINDING_COLUMNS, values, strict=True)))


def _binding_values(binding: StreamBinding) -> tuple[Any, ...]:
    return tuple(getattr(binding, column) for column in BINDING_COLUMNS)


def _coverage_sql(table: str) -> tuple[str, str]:
    """(count, lowest, highest) and the holes between them, of stream ?1 within [?2, ?3]."""
    where = f"FROM {table} WHERE stream = ?1 AND stream_seq BETWEEN ?2 AND ?3"
    return (f"SELECT count(*), coalesce(min(stream_seq), 0), coalesce(max(stream_seq), 0) {where}",
            f"SELECT prev + 1, stream_seq - 1 FROM (SELECT stream_seq, lag(stream_seq) OVER (ORDER BY stream_seq) "
            f"AS prev {where}) AS s WHERE stream_seq - prev > 1 ORDER BY stream_seq LIMIT {MAX_RANGES}")


def _select_list(has_scope: bool) -> str:
    """The columns to SELECT: an older store, opened by a reader, has no scope column."""
    return _COLUMN_LIST if has_scope else ", ".join("NULL AS scope" if c == SCOPE_COLUMN else c for c in COLUMNS)


def _record_at_sql(table: str, select: str) -> str:
    return f"SELECT {select} FROM {table} WHERE stream = ?1 AND stream_seq = ?2"


def _json_keys(records: Sequence[AuditRecord]) -> str:
    """The records' (stream, stream_seq) keys as one JSON parameter (any batch size)."""
    return msgspec.json.encode([(record.stream, record.stream_seq) for record in records]).decode()


# --- SQLite ----------------------------------------------------------------------------------

_SQLITE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {SQLITE_TABLE} (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    stream_seq INTEGER NOT NULL,
    subject TEXT NOT NULL,
    msg_id TEXT,
    ts INTEGER NOT NULL,
    msg_type TEXT,
    order_key TEXT,
    payload BLOB NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    scope TEXT,
    UNIQUE (stream, stream_seq)
);
CREATE INDEX IF NOT EXISTS {SQLITE_TABLE}_order_key ON {SQLITE_TABLE} (order_key);
CREATE TRIGGER IF NOT EXISTS {SQLITE_TABLE}_no_update BEFORE UPDATE ON {SQLITE_TABLE}
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {SQLITE_TABLE}_no_delete BEFORE DELETE ON {SQLITE_TABLE}
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS {SQLITE_STREAMS} (
    stream TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    bound_at INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS {SQLITE_STREAMS}_no_update BEFORE UPDATE ON {SQLITE_STREAMS}
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {SQLITE_STREAMS}_no_delete BEFORE DELETE ON {SQLITE_STREAMS}
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""
_SQLITE_COVERAGE = _coverage_sql(SQLITE_TABLE)


class SqliteAuditStore:
    """SQLite in WAL mode with synchronous=FULL: a commit survives a power cut.

    Every call runs on one dedicated thread that owns the connection. (asyncio.to_thread
    would use a pool: successive calls could land on different threads, and a cancelled
    await would leave a call running while the next one starts on the same connection.)
    """

    def __init__(self, path: str, executor: ThreadPoolExecutor, connection: sqlite3.Connection, has_scope: bool) -> None:
        self.path = path
        self.location = path
        self._executor = executor
        self._db = connection
        self._select = _select_list(has_scope)

    @classmethod
    async def open(cls, path: str, *, create: bool = True) -> SqliteAuditStore:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sqlite")
        loop = asyncio.get_running_loop()
        try:
            connection = await loop.run_in_executor(executor, cls._connect, path, create)
            has_scope = await loop.run_in_executor(executor, _sqlite_has_scope, connection)
        except BaseException:
            executor.shutdown()
            raise
        return cls(path, executor, connection, has_scope)

    @staticmethod
    def _connect(path: str, create: bool) -> sqlite3.Connection:
        if not create and not os.path.exists(path):
            raise StoreNotFound(f"no audit store at {path}")
        if create:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # isolation_level=None: no implicit transactions; append issues its own BEGIN/COMMIT.
        db = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            if create:
                db.executescript(_SQLITE_SCHEMA)  # a new store has every column; an older one:
                if not _sqlite_has_scope(db):
                    db.execute(f"ALTER TABLE {SQLITE_TABLE} ADD COLUMN {SCOPE_COLUMN} TEXT")
                    log.warning("audit store migrated: column scope added (older records keep NULL)",
                                extra={"store": path})
        except BaseException:
            db.close()
            raise
        return db

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    async def append(self, records: Sequence[AuditRecord]) -> int:
        return await self._run(self._append, records)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock at once, so what it reads
        first (the chain's head, the bindings) is still true at its commit."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # a failed COMMIT may already have rolled back
                db.execute("ROLLBACK")
            raise

    def _append(self, records: Sequence[AuditRecord]) -> int:
        with self._write() as db:
            stored = {
                (stream, seq) for stream, seq in db.execute(
                    # CROSS JOIN keeps this order: one unique-index probe per key.
                    f"SELECT a.stream, a.stream_seq FROM json_each(?) AS k CROSS JOIN {SQLITE_TABLE} AS a "
                    "ON a.stream = json_extract(k.value, '$[0]') AND a.stream_seq = json_extract(k.value, '$[1]')",
                    (_json_keys(records),),
                )
            }
            head = db.execute(f"SELECT id, hash FROM {SQLITE_TABLE} ORDER BY id DESC LIMIT 1").fetchone()
            head_id, head_hash = head or (0, GENESIS)
            rows = link(new_records(records, stored), head_id=head_id, head_hash=head_hash)
            db.executemany(
                f"INSERT INTO {SQLITE_TABLE} ({_COLUMN_LIST}) VALUES ({', '.join('?' * len(COLUMNS))})",
                map(_values, rows),
            )
        return len(rows)

    async def verify(self) -> VerifyResult:
        return await self._run(self._verify)

    def _verify(self) -> VerifyResult:
        verifier = ChainVerifier()
        # One SELECT reads one snapshot in WAL mode, while appends go on.
        for values in self._db.execute(f"SELECT {self._select} FROM {SQLITE_TABLE} ORDER BY id"):
            if not verifier.add(_row(values)):
                break
        return verifier.result()

    async def history(self, client_order_id: str) -> list[StoredRecord]:
        return await self._run(self._history, client_order_id)

    def _history(self, client_order_id: str) -> list[StoredRecord]:
        query = f"SELECT {self._select} FROM {SQLITE_TABLE} WHERE order_key = ? ORDER BY ts, id"
        return [_row(values) for values in self._db.execute(query, (client_order_id,))]

    async def bindings(self) -> dict[str, StreamBinding]:
        return await self._run(self._bindings)

    def _bindings(self) -> dict[str, StreamBinding]:
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            (SQLITE_STREAMS,)).fetchone() is None:
            return {}  # opened read-only, written before bindings existed
        rows = self._db.execute(f"SELECT {_BINDING_LIST} FROM {SQLITE_STREAMS}")
        return {binding.stream: binding for binding in map(_binding, rows)}

    async def bind(self, bindings: Sequence[StreamBinding]) -> dict[str, StreamBinding]:
        return await self._run(self._bind, bindings)

    def _bind(self, bindings: Sequence[StreamBinding]) -> dict[str, StreamBinding]:
        with self._write() as db:
            db.executemany(f"INSERT OR IGNORE INTO {SQLITE_STREAMS} ({_BINDING_LIST}) VALUES (?, ?, ?, ?)",
                           map(_binding_values, bindings))
        return self._bindings()

    async def coverage(self, stream: str, first: int, last: int) -> Coverage:
        return await self._run(self._coverage, stream, first, last)

    def _coverage(self, stream: str, first: int, last: int) -> Coverage:
        totals, holes = _SQLITE_COVERAGE
        count, lowest, highest = self._db.execute(totals, (stream, first, last)).fetchone()
        gaps = [(start, end) for start, end in self._db.execute(holes, (stream, first, last))]
        return Coverage(count=count, lowest=lowest, highest=highest, gaps=gaps)

    async def record_at(self, stream: str, stream_seq: int) -> StoredRecord | None:
        return await self._run(self._record_at, stream, stream_seq)

    def _record_at(self, stream: str, stream_seq: int) -> StoredRecord | None:
        values = self._db.execute(_record_at_sql(SQLITE_TABLE, self._select), (stream, stream_seq)).fetchone()
        return None if values is None else _row(values)

    async def close(self) -> None:
        await self._run(self._db.close)
        self._executor.shutdown()


def _sqlite_has_scope(db: sqlite3.Connection) -> bool:
    return any(row[1] == SCOPE_COLUMN for row in db.execute(f"PRAGMA table_info({SQLITE_TABLE})"))


# --- PostgreSQL ------------------------------------------------------------------------------


def _postgres_schema(table: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    id BIGINT PRIMARY KEY,
    stream TEXT NOT NULL,
    stream_seq BIGINT NOT NULL,
    subject TEXT NOT NULL,
    msg_id TEXT,
    ts BIGINT NOT NULL,
    msg_type TEXT,
    order_key TEXT,
    payload BYTEA NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    scope TEXT,
    UNIQUE (stream, stream_seq)
);
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS scope TEXT;
CREATE INDEX IF NOT EXISTS {table}_order_key ON {table} (order_key);
CREATE OR REPLACE FUNCTION tradebus_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP; END $$;
CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION tradebus_audit_append_only();
CREATE TABLE IF NOT EXISTS {table}_streams (
    stream TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    bound_at BIGINT NOT NULL
);
CREATE OR REPLACE TRIGGER {table}_streams_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table}_streams
FOR EACH STATEMENT EXECUTE FUNCTION tradebus_audit_append_only();
"""


def _numbered(sql: str) -> str:
    return sql.replace("?", "$")


class PostgresAuditStore:
    """PostgreSQL through asyncpg (the `postgres` extra), on one connection."""

    def __init__(self, connection: Any, table: str, database: str, has_scope: bool) -> None:
        self.table = table
        self._select = _select_list(has_scope)
        self.location = f"PostgreSQL table {table} in database {database}"
        self._streams = f"{table}_streams"
        self._coverage_sql = tuple(map(_numbered, _coverage_sql(table)))
        self._db = connection
        self._lock = asyncio.Lock()  # one connection runs one operation at a time

    @classmethod
    async def open(cls, dsn: str, table: str, *, create: bool = True) -> PostgresAuditStore:
        import asyncpg

        connection = await asyncpg.connect(dsn)
        try:
            if create:
                async with connection.transaction():
                    # Concurrent CREATE OR REPLACE of the shared function can fail: serialize.
                    await connection.execute("SELECT pg_advisory_xact_lock(hashtext('tradebus_audit_schema'))")
                    await connection.execute(_postgres_schema(table))
            elif await connection.fetchval("SELECT to_regclass($1)", table) is None:
                raise StoreNotFound(f"no audit table {table!r} in the PostgreSQL database")
            database = await connection.fetchval("SELECT current_database()")
            has_scope = await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = $2 "
                "AND table_schema = ANY (current_schemas(false)))", table, SCOPE_COLUMN)
        except BaseException:
            await connection.close()
            raise
        return cls(connection, table, database, has_scope)

    async def append(self, records: Sequence[AuditRecord]) -> int:
        async with self._lock, self._db.transaction():
            # Self-conflicting but readers-friendly: appenders (of any process) queue here,
            # so the head read below is still the head at commit.
            await self._db.execute(f"LOCK TABLE {self.table} IN SHARE ROW EXCLUSIVE MODE")
            keys = await self._db.fetch(
                f"SELECT stream, stream_seq FROM {self.table} "
                "WHERE (stream, stream_seq) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))",
                [record.stream for record in records], [record.stream_seq for record in records],
            )
            head = await self._db.fetchrow(f"SELECT id, hash FROM {self.table} ORDER BY id DESC LIMIT 1")
            head_id, head_hash = (head["id"], head["hash"]) if head else (0, GENESIS)
            rows = link(new_records(records, {(k["stream"], k["stream_seq"]) for k in keys}),
                        head_id=head_id, head_hash=head_hash)
            await self._db.copy_records_to_table(self.table, records=map(_values, rows), columns=COLUMNS)
        return len(rows)

    async def verify(self) -> VerifyResult:
        verifier = ChainVerifier()
        async with self._lock, self._db.transaction(isolation="repeatable_read", readonly=True):
            async for values in self._db.cursor(f"SELECT {self._select} FROM {self.table} ORDER BY id", prefetch=2000):
                if not verifier.add(_row(values)):
                    break
        return verifier.result()

    async def history(self, client_order_id: str) -> list[StoredRecord]:
        async with self._lock:
            rows = await self._db.fetch(
                f"SELECT {self._select} FROM {self.table} WHERE order_key = $1 ORDER BY ts, id", client_order_id
            )
        return [_row(values) for values in rows]

    async def bindings(self) -> dict[str, StreamBinding]:
        async with self._lock:
            return await self._bindings()

    async def _bindings(self) -> dict[str, StreamBinding]:
        if await self._db.fetchval("SELECT to_regclass($1)", self._streams) is None:
            return {}  # opened read-only, written before bindings existed
        rows = await self._db.fetch(f"SELECT {_BINDING_LIST} FROM {self._streams}")
        return {binding.stream: binding for binding in map(_binding, rows)}

    async def bind(self, bindings: Sequence[StreamBinding]) -> dict[str, StreamBinding]:
        async with self._lock:
            await self._db.executemany(
                f"INSERT INTO {self._streams} ({_BINDING_LIST}) VALUES ($1, $2, $3, $4) ON CONFLICT (stream) DO NOTHING",
                list(map(_binding_values, bindings)))
            return await self._bindings()

    async def coverage(self, stream: str, first: int, last: int) -> Coverage:
        totals, holes = self._coverage_sql
        async with self._lock, self._db.transaction(isolation="repeatable_read", readonly=True):
            count, lowest, highest = await self._db.fetchrow(totals, stream, first, last)
            gaps = [(start, end) for start, end in await self._db.fetch(holes, stream, first, last)]
        return Coverage(count=count, lowest=lowest, highest=highest, gaps=gaps)

    async def record_at(self, stream: str, stream_seq: int) -> StoredRecord | None:
        async with self._lock:
            values = await self._db.fetchrow(_numbered(_record_at_sql(self.table, self._select)), stream, stream_seq)
        return None if values is None else _row(values)

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()
