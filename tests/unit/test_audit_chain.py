"""The audit trail's hash chain and both stores (SQLite in tmp_path, the local PostgreSQL)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from tradebus.services.audit.chain import (
    GENESIS,
    AuditRecord,
    ChainVerifier,
    StoredRecord,
    canonical_bytes,
    link,
    record_hash,
)
from tradebus.services.audit.config import AuditConfig
from tradebus.services.audit.identity import StreamBinding
from tradebus.services.audit.store import SQLITE_STREAMS, SQLITE_TABLE, AuditStore, PostgresAuditStore, SqliteAuditStore
from tradebus.services.settings import load_settings
from tradebus.shared.config import ConfigError

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def record(seq: int, *, stream: str = "CMD", order: str | None = "o-1", payload: bytes | None = None) -> AuditRecord:
    return AuditRecord(
        stream=stream, stream_seq=seq, subject=f"tradebus.{stream.lower()}.paper.demo", msg_id=f"m-{stream}-{seq}",
        ts=1_700_000_000_000_000_000 + seq * 1000, msg_type="place", order_key=order,
        payload=payload if payload is not None else f'{{"type":"place","client_order_id":"{order}"}}'.encode(),
    )


def verify_rows(rows: list[StoredRecord]) -> ChainVerifier:
    verifier = ChainVerifier()
    for row in rows:
        if not verifier.add(row):
            break
    return verifier


# --- the chain, pure ---------------------------------------------------------------------------


def test_records_link_from_genesis_and_each_hash_covers_the_previous() -> None:
    rows = link([record(1), record(2), record(3)], head_id=0, head_hash=GENESIS)
    assert [row.id for row in rows] == [1, 2, 3]
    assert rows[0].prev_hash == GENESIS
    assert [row.prev_hash for row in rows[1:]] == [row.hash for row in rows[:-1]]
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{64}", row.hash)
        assert row.hash == record_hash(row.id, row.prev_hash, row)
    more = link([record(4)], head_id=3, head_hash=rows[-1].hash)
    assert more[0].id == 4 and more[0].prev_hash == rows[-1].hash
    result = verify_rows(rows + more).result()
    assert result.ok and result.count == 4 and result.head == more[0].hash


def test_the_hash_covers_every_field_and_the_position() -> None:
    base = record(1)
    reference = record_hash(1, GENESIS, base)
    variants = {
        "stream": "ROUTE", "stream_seq": 2, "subject": "tradebus.cmd.paper.other", "msg_id": None, "ts": base.ts + 1,
        "msg_type": "cancel", "order_key": None, "payload": base.payload + b" ",
    }
    for field, value in variants.items():
        assert record_hash(1, GENESIS, msgspec.structs.replace(base, **{field: value})) != reference, field
    assert record_hash(2, GENESIS, base) != reference
    assert record_hash(1, "1" * 64, base) != reference
    # Field boundaries are unambiguous: moving text between adjacent fields changes the bytes.
    shifted = msgspec.structs.replace(base, stream="CMDt", subject=base.subject[1:])
    assert canonical_bytes(1, GENESIS, shifted) != canonical_bytes(1, GENESIS, base)


def test_the_verifier_names_the_first_broken_link() -> None:
    rows = link([record(seq) for seq in range(1, 6)], head_id=0, head_hash=GENESIS)
    modified = list(rows)
    modified[2] = msgspec.structs.replace(rows[2], payload=b"{}")
    broken = verify_rows(modified).result()
    assert not broken.ok and broken.count == 2 and broken.head == rows[1].hash
    assert broken.first_broken is not None
    assert (broken.first_broken.id, broken.first_broken.stream_seq) == (3, 3)
    assert "modified" in broken.first_broken.reason
    deleted = verify_rows(rows[:2] + rows[3:]).result().first_broken
    assert deleted is not None and deleted.id == 4 and "deleted" in deleted.reason


# --- the stores --------------------------------------------------------------------------------


class Backend:
    """A store plus raw SQL access around its append-only guard, as a tamperer would have."""

    def __init__(self, store: AuditStore, reopen: Callable[[], Any], execute: Callable[..., Any], table: str) -> None:
        self.store = store
        self._open = reopen
        self._execute = execute  # (sql with ? placeholders, *args)
        self.table = table

    async def reopen(self) -> None:
        await self.store.close()
        self.store = await self._open()

    async def tamper(self, sql: str, *args: Any) -> None:
        await self._execute(sql.replace("{table}", self.table), *args)


@contextlib.asynccontextmanager
async def sqlite_backend(path: str) -> AsyncIterator[Backend]:
    async def execute(sql: str, *args: Any) -> None:
        db = sqlite3.connect(path)
        with db:
            db.execute(f"DROP TRIGGER IF EXISTS {SQLITE_TABLE}_no_update")
            db.execute(f"DROP TRIGGER IF EXISTS {SQLITE_TABLE}_no_delete")
            db.execute(sql, args)
        db.close()

    backend = Backend(await SqliteAuditStore.open(path), lambda: SqliteAuditStore.open(path), execute, SQLITE_TABLE)
    try:
        yield backend
    finally:
        await backend.store.close()


@contextlib.asynccontextmanager
async def postgres_backend() -> AsyncIterator[Backend]:
    table = f"audit_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(POSTGRES_DSN)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_DSN} ({exc!r}); start it: {POSTGRES_START}")

    async def execute(sql: str, *args: Any) -> None:
        numbered = iter(range(1, len(args) + 1))
        async with admin.transaction():
            await admin.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            await admin.execute(re.sub(r"\?", lambda _: f"${next(numbered)}", sql), *args)
            await admin.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")

    def open_store() -> Any:
        return PostgresAuditStore.open(POSTGRES_DSN, table)

    try:
        backend = Backend(await open_store(), open_store, execute, table)
        try:
            yield backend
        finally:
            await backend.store.close()
    finally:
        await admin.execute(f"DROP TABLE IF EXISTS {table}, {table}_streams")
        await admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    manager = sqlite_backend(str(tmp_path / "audit.sqlite")) if request.param == "sqlite" else postgres_backend()
    async with manager as backend:
        yield backend


async def test_append_chains_across_batches_and_reopening(backend: Backend) -> None:
    assert await backend.store.append([record(1), record(2, stream="ROUTE")]) == 2
    await backend.reopen()
    assert await backend.store.append([record(3), record(1, stream="EVENTS", order="o-2")]) == 2
    result = await backend.store.verify()
    assert result.ok and result.count == 4 and result.first_broken is None
    history = await backend.store.history("o-1")
    assert [(r.id, r.stream, r.stream_seq) for r in history] == [(1, "CMD", 1), (2, "ROUTE", 2), (3, "CMD", 3)]
    assert history[0].prev_hash == GENESIS
    assert [r.prev_hash for r in history[1:]] == [r.hash for r in history[:-1]]
    assert history[1] == link([record(2, stream="ROUTE")], head_id=1, head_hash=history[0].hash)[0]
    assert await backend.store.history("o-unknown") == []


async def test_append_is_idempotent_on_stream_and_sequence(backend: Backend) -> None:
    assert await backend.store.append([record(1), record(2)]) == 2
    head = (await backend.store.verify()).head
    # A redelivered batch: already stored, so neither stored again nor added to the chain.
    assert await backend.store.append([record(1), record(2)]) == 0
    assert (await backend.store.verify()).head == head
    # Old and new mixed, and one message twice in the same batch: only the new one, once.
    assert await backend.store.append([record(2), record(3), record(3)]) == 1
    # The same sequence number in another stream is another message.
    assert await backend.store.append([record(3, stream="EVENTS")]) == 1
    result = await backend.store.verify()
    assert result.ok and result.count == 4


async def test_a_failing_append_stores_nothing(backend: Backend) -> None:
    await backend.store.append([record(1)])
    before = await backend.store.verify()
    invalid = msgspec.structs.replace(record(3), subject=None)  # NOT NULL: the insert fails
    with pytest.raises(Exception, match="(?i)null"):
        await backend.store.append([record(2), invalid])
    assert await backend.store.verify() == before
    assert await backend.store.append([record(2)]) == 1


async def test_updates_and_deletes_are_refused(backend: Backend) -> None:
    await backend.store.append([record(1)])
    await backend.store.bind([StreamBinding(stream="CMD", created="2026-01-01T00:00:00Z", first_seq=1, bound_at=1)])
    table = backend.table
    if isinstance(backend.store, SqliteAuditStore):
        db = sqlite3.connect(backend.store.path)
        for statement in (f"UPDATE {table} SET payload = x'00'", f"DELETE FROM {table}",
                          f"UPDATE {SQLITE_STREAMS} SET created = ''", f"DELETE FROM {SQLITE_STREAMS}"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
        db.close()
    else:
        db = await asyncpg.connect(POSTGRES_DSN)
        for statement in (f"UPDATE {table} SET payload = '\\x00'", f"DELETE FROM {table}", f"TRUNCATE {table}",
                          f"UPDATE {table}_streams SET created = ''", f"DELETE FROM {table}_streams"):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await db.execute(statement)
        await db.close()
    assert (await backend.store.verify()).count == 1


async def test_verify_names_a_changed_payload(backend: Backend) -> None:
    await backend.store.append([record(seq) for seq in range(1, 6)])
    await backend.tamper("UPDATE {table} SET payload = ? WHERE id = 3", b'{"type":"place","quantity":"1000"}')
    result = await backend.store.verify()
    assert not result.ok and result.count == 2
    assert result.first_broken is not None
    assert (result.first_broken.id, result.first_broken.stream, result.first_broken.stream_seq) == (3, "CMD", 3)
    assert "modified" in result.first_broken.reason


async def test_verify_names_the_record_after_a_deleted_one(backend: Backend) -> None:
    await backend.store.append([record(seq) for seq in range(1, 6)])
    await backend.tamper("DELETE FROM {table} WHERE id = 3")
    result = await backend.store.verify()
    assert not result.ok and result.count == 2
    assert result.first_broken is not None and result.first_broken.id == 4
    assert "deleted" in result.first_broken.reason


async def test_verify_names_the_first_of_two_swapped_records(backend: Backend) -> None:
    await backend.store.append([record(seq) for seq in range(1, 6)])
    rows = {row.id: row for row in await backend.store.history("o-1")}
    # Swap the contents of rows 2 and 4, keeping each row's id (the chain's order); row 4's
    # sequence number steps aside first so the unique key never collides halfway.
    await backend.tamper("UPDATE {table} SET stream_seq = -1 WHERE id = 4")
    for target, source in ((2, rows[4]), (4, rows[2])):
        await backend.tamper(
            "UPDATE {table} SET stream = ?, stream_seq = ?, subject = ?, msg_id = ?, ts = ?, msg_type = ?, "
            "order_key = ?, payload = ?, prev_hash = ?, hash = ? WHERE id = ?",
            source.stream, source.stream_seq, source.subject, source.msg_id, source.ts, source.msg_type,
            source.order_key, source.payload, source.prev_hash, source.hash, target,
        )
    result = await backend.store.verify()
    assert not result.ok and result.count == 1
    assert result.first_broken is not None
    assert (result.first_broken.id, result.first_broken.stream_seq) == (2, 4)
    assert "moved" in result.first_broken.reason


async def test_coverage_names_the_holes_of_a_stream(backend: Backend) -> None:
    await backend.store.append([record(seq) for seq in (2, 3, 5, 9, 10)] + [record(4, stream="ROUTE")])
    coverage = await backend.store.coverage("CMD", 1, 12)
    assert (coverage.count, coverage.lowest, coverage.highest) == (5, 2, 10)
    assert coverage.gaps == [(4, 4), (6, 8)]  # ROUTE's 4 is another stream's
    assert coverage.missing_ranges(1, 12) == [(1, 1), (4, 4), (6, 8), (11, 12)]
    assert (await backend.store.coverage("CMD", 4, 8)).count == 1
    empty = await backend.store.coverage("EVENTS", 1, 3)
    assert empty.count == 0 and empty.missing_ranges(1, 3) == [(1, 3)] and empty.missing_ranges(4, 3) == []
    [nine] = [r for r in await backend.store.history("o-1") if (r.stream, r.stream_seq) == ("CMD", 9)]
    assert await backend.store.record_at("CMD", 9) == nine
    assert await backend.store.record_at("CMD", 4) is None


async def test_a_stream_binding_is_written_once(backend: Backend) -> None:
    assert await backend.store.bindings() == {}
    first = StreamBinding(stream="CMD", created="2026-01-01T00:00:00.123456789Z", first_seq=1, bound_at=1)
    other = StreamBinding(stream="CMD", created="2026-02-02T00:00:00Z", first_seq=1, bound_at=2)
    route = StreamBinding(stream="ROUTE", created="2026-02-02T00:00:00Z", first_seq=7, bound_at=2)
    assert await backend.store.bind([first]) == {"CMD": first}
    # A later bind (another instance, racing) never replaces a binding.
    assert await backend.store.bind([other, route]) == {"CMD": first, "ROUTE": route}
    await backend.reopen()
    assert await backend.store.bindings() == {"CMD": first, "ROUTE": route}


# --- configuration -----------------------------------------------------------------------------


def test_audit_settings_come_from_the_environment_and_are_checked(tmp_path: Path) -> None:
    settings = load_settings(env={
        "TRADEBUS_DATA_DIR": str(tmp_path), "TRADEBUS_AUDIT__STORE": "postgres",
        "TRADEBUS_AUDIT__POSTGRES_DSN": "postgresql://audit:pw-1234@db/audit", "TRADEBUS_AUDIT__BATCH_SIZE": "50",
    })
    assert settings.audit.store == "postgres" and settings.audit.batch_size == 50
    assert settings.audit.postgres_dsn is not None
    assert settings.audit.postgres_dsn.reveal() == "postgresql://audit:pw-1234@db/audit"
    assert "pw-1234" not in repr(settings)
    assert AuditConfig().sqlite_file(str(tmp_path)) == str(tmp_path / "audit.sqlite")
    with pytest.raises(ConfigError, match="needs postgres_dsn"):
        load_settings(env={"TRADEBUS_AUDIT__STORE": "postgres"})
    with pytest.raises(ConfigError, match="not a plain SQL identifier"):
        load_settings(env={"TRADEBUS_AUDIT__POSTGRES_TABLE": "audit; DROP TABLE x"})
