"""Where the audit trail is kept: an append-only, hash-chained table in SQLite or PostgreSQL.

Both stores keep one table with the same columns, a UNIQUE (stream, stream_seq) so a
redelivered message is stored once, an index on the order key, and triggers that refuse
UPDATE and DELETE (the chain catches whoever gets around them). Each `append` is one
transaction that reads the chain's head, links the new records to it and inserts them;
appends are serialized (one connection per store, and in PostgreSQL a table lock that
also keeps a second audit instance from forking the chain).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import msgspec

from .chain import GENESIS, AuditRecord, ChainVerifier, StoredRecord, VerifyResult, link, new_records
from .config import AuditConfig

T = TypeVar("T")

COLUMNS = ("id", "stream", "stream_seq", "subject", "msg_id", "ts", "msg_type", "order_key", "payload",
           "prev_hash", "hash")
_COLUMN_LIST = ", ".join(COLUMNS)
SQLITE_TABLE = "audit_log"
SQLITE_BUSY_TIMEOUT = 5.0  # seconds to wait for another process's write lock before failing


class StoreNotFound(Exception):
    """A reader (the CLI) asked for a store that was never created."""


class AuditStore(Protocol):
    async def append(self, records: Sequence[AuditRecord]) -> int:
        """Store the records not stored yet, in ONE transaction; return how many were new."""
        ...

    async def verify(self) -> VerifyResult: ...

    async def history(self, client_order_id: str) -> list[StoredRecord]:
        """Every record of an order (or cancel-all request), in bus time order."""
        ...

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
    UNIQUE (stream, stream_seq)
);
CREATE INDEX IF NOT EXISTS {SQLITE_TABLE}_order_key ON {SQLITE_TABLE} (order_key);
CREATE TRIGGER IF NOT EXISTS {SQLITE_TABLE}_no_update BEFORE UPDATE ON {SQLITE_TABLE}
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {SQLITE_TABLE}_no_delete BEFORE DELETE ON {SQLITE_TABLE}
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class SqliteAuditStore:
    """SQLite in WAL mode with synchronous=FULL: a commit survives a power cut.

    Every call runs on one dedicated thread that owns the connection. (asyncio.to_thread
    would use a pool: successive calls could land on different threads, and a cancelled
    await would leave a call running while the next one starts on the same connection.)
    """

    def __init__(self, path: str, executor: ThreadPoolExecutor, connection: sqlite3.Connection) -> None:
        self.path = path
        self._executor = executor
        self._db = connection

    @classmethod
    async def open(cls, path: str, *, create: bool = True) -> SqliteAuditStore:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sqlite")
        loop = asyncio.get_running_loop()
        try:
            connection = await loop.run_in_executor(executor, cls._connect, path, create)
        except BaseException:
            executor.shutdown()
            raise
        return cls(path, executor, connection)

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
                db.executescript(_SQLITE_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    async def append(self, records: Sequence[AuditRecord]) -> int:
        return await self._run(self._append, records)

    def _append(self, records: Sequence[AuditRecord]) -> int:
        db = self._db
        # IMMEDIATE takes the write lock now, so the head read below stays the head.
        db.execute("BEGIN IMMEDIATE")
        try:
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
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # a failed COMMIT may already have rolled back
                db.execute("ROLLBACK")
            raise
        return len(rows)

    async def verify(self) -> VerifyResult:
        return await self._run(self._verify)

    def _verify(self) -> VerifyResult:
        verifier = ChainVerifier()
        # One SELECT reads one snapshot in WAL mode, while appends go on.
        for values in self._db.execute(f"SELECT {_COLUMN_LIST} FROM {SQLITE_TABLE} ORDER BY id"):
            if not verifier.add(_row(values)):
                break
        return verifier.result()

    async def history(self, client_order_id: str) -> list[StoredRecord]:
        return await self._run(self._history, client_order_id)

    def _history(self, client_order_id: str) -> list[StoredRecord]:
        query = f"SELECT {_COLUMN_LIST} FROM {SQLITE_TABLE} WHERE order_key = ? ORDER BY ts, id"
        return [_row(values) for values in self._db.execute(query, (client_order_id,))]

    async def close(self) -> None:
        await self._run(self._db.close)
        self._executor.shutdown()


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
    UNIQUE (stream, stream_seq)
);
CREATE INDEX IF NOT EXISTS {table}_order_key ON {table} (order_key);
CREATE OR REPLACE FUNCTION tradebus_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP; END $$;
CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION tradebus_audit_append_only();
"""


class PostgresAuditStore:
    """PostgreSQL through asyncpg (the `postgres` extra), on one connection."""

    def __init__(self, connection: Any, table: str) -> None:
        self.table = table
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
        except BaseException:
            await connection.close()
            raise
        return cls(connection, table)

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
            async for values in self._db.cursor(f"SELECT {_COLUMN_LIST} FROM {self.table} ORDER BY id", prefetch=2000):
                if not verifier.add(_row(values)):
                    break
        return verifier.result()

    async def history(self, client_order_id: str) -> list[StoredRecord]:
        async with self._lock:
            rows = await self._db.fetch(
                f"SELECT {_COLUMN_LIST} FROM {self.table} WHERE order_key = $1 ORDER BY ts, id", client_order_id
            )
        return [_row(values) for values in rows]

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()
