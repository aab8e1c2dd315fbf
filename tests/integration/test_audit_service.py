"""The audit logger on a real nats-server: exactly-once storage, ack after commit, the CLI."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
from msgspec.structs import replace as msgspec_replace
from nats.js.client import JetStreamContext

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.commands import CancelAllOrders, CancelOrder, OrderCommand, PlaceOrder, command_dedupe_id
from tradebus.schemas.events import Balance, BalanceUpdate, Fill, OrderAccepted, OrderFilled, OrderRejected
from tradebus.schemas.values import LiquiditySide, OrderType, RejectReason, Side, TimeInForce
from tradebus.services.audit import store as audit_store
from tradebus.services.audit.chain import AuditRecord, link
from tradebus.services.audit.config import AuditConfig
from tradebus.services.audit.service import AuditService
from tradebus.services.audit.store import PostgresAuditStore, SqliteAuditStore
from tradebus.services.settings import Settings
from tradebus.shared.config import Secret
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.topology import StreamSettings, ensure_streams

from .helpers import running_service, wait_until

TRADEBUS = [sys.executable, "-m", "tradebus.cli.main"]
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
NOW = time.time_ns()
ORDER = dict(client_order_id="o-A", venue="paper", account="demo", symbol="BTC/USDT")
EVENT = dict(**ORDER, venue_order_id="P1", ts_event=NOW, ts_recv=NOW)


def audit_settings(server: NatsServer, tmp_path: Path, **audit: Any) -> Settings:
    return Settings(nats_url=server.url, heartbeat_interval=0.2, data_dir=str(tmp_path / "data"),
                    audit=AuditConfig(**audit))


def tradebus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TRADEBUS, *args], env=env, capture_output=True, text=True, timeout=30)


async def publish(js: JetStreamContext, subject: str, payload: bytes, msg_id: str) -> int:
    ack = await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
    return ack.seq


async def publish_command(js: JetStreamContext, subject: str, command: OrderCommand) -> int:
    return await publish(js, subject, encode(command), command_dedupe_id(command))


async def test_every_message_is_stored_once_in_one_chain_that_the_cli_reads(
    nats_server: NatsServer, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    settings = audit_settings(nats_server, tmp_path, batch_size=3)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    place = PlaceOrder(**ORDER, side=Side.BUY, order_type=OrderType.LIMIT, quantity=Decimal("2"),
                       price=Decimal("60000"))
    fill = Fill(trade_id="T1", side=Side.BUY, price=Decimal("60000"), quantity=Decimal("2"), fee=Decimal("0.1"),
                fee_currency="USDT", liquidity=LiquiditySide.MAKER)
    junk = b"\xff\xfe not json at all"
    async with running_service(AuditService(settings)) as service:
        cmd, route = subjects.command("paper", "demo"), subjects.route("paper", "demo")
        events = subjects.order_events("paper", "demo")
        await publish_command(js, cmd, place)
        await publish_command(js, route, place)
        await publish(js, events, encode(OrderAccepted(**EVENT, event_id="e1", side=Side.BUY,
                      order_type=OrderType.LIMIT, quantity=Decimal("2"), price=Decimal("60000"),
                      time_in_force=TimeInForce.GTC)), "e1")
        await publish(js, events, encode(OrderFilled(**EVENT, event_id="e2", fill=fill, cum_quantity=Decimal("2"),
                      leaves_quantity=Decimal("0"), avg_price=Decimal("60000"))), "e2")
        balances = BalanceUpdate(event_id="e3", venue="paper", account="demo", ts_event=NOW, ts_recv=NOW,
                                 balances=[Balance(currency="USDT", total=Decimal("1"), available=Decimal("1"))])
        await publish(js, subjects.account_events("paper", "demo"), encode(balances), "e3")
        await publish_command(js, cmd, CancelOrder(client_order_id="o-A", venue="paper", account="demo"))
        await publish_command(js, cmd, CancelAllOrders(request_id="req-1", venue="paper", account="demo"))
        junk_seq = await publish(js, cmd, junk, "junk-1")
        # A client retrying a publish: JetStream de-duplicates it by its Nats-Msg-Id.
        assert (await js.publish(cmd, encode(place), headers={"Nats-Msg-Id": command_dedupe_id(place)})).duplicate
        await wait_until(lambda: service.counters()["stored"] == 8, "8 messages stored")
    assert service.counters() == {"stored": 8, "duplicates": 0, "redacted": 0, "commit_failures": 0}

    # Redelivery of messages already stored (acks lost, or a consumer reset): a new consumer
    # delivers all four commands again; none is stored twice nor extends the chain.
    await js.delete_consumer("CMD", "audit-cmd")
    async with running_service(AuditService(settings)) as again:
        await wait_until(lambda: again.counters()["duplicates"] == 4, "4 commands redelivered")
    assert again.counters()["stored"] == 0
    await nc.close()

    reader = await SqliteAuditStore.open(str(tmp_path / "data" / "audit.sqlite"), create=False)
    result = await reader.verify()
    assert result.ok and result.count == 8
    history = await reader.history("o-A")
    assert [(r.stream, r.msg_type) for r in history] == [
        ("CMD", "place"), ("ROUTE", "place"), ("EVENTS", "accepted"), ("EVENTS", "filled"), ("CMD", "cancel"),
    ]
    assert history[0].payload == encode(place) and history[0].msg_id == command_dedupe_id(place)
    # Who the bus allowed to publish each (schemas/provenance.py).
    assert [r.scope for r in history] == ["client", "risk", "connector.paper", "connector.paper", "client"]
    assert abs(history[0].ts - time.time_ns()) < 60 * 10**9
    [cancel_all] = await reader.history("req-1")
    assert cancel_all.msg_type == "cancel_all"
    await reader.close()
    db = sqlite3.connect(tmp_path / "data" / "audit.sqlite")
    stored_junk = db.execute("SELECT payload, msg_type, order_key, msg_id FROM audit_log WHERE stream = 'CMD' "
                             "AND stream_seq = ?", (junk_seq,)).fetchone()
    assert stored_junk == (junk, None, None, "junk-1")

    verified = tradebus("audit", "verify", env=cli_env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.splitlines()[0] == "ok: 8 records, chain intact"
    assert verified.stdout.splitlines()[1] == f"head: {result.head}"
    shown = tradebus("audit", "show", "o-A", env=cli_env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 5
    assert "CMD" in lines[0] and "tradebus.cmd.paper.demo by client" in lines[0] and "place" in lines[0]
    assert "tradebus.evt.order.paper.demo by connector.paper" in lines[2]
    assert "side=buy order_type=limit quantity=2 price=60000" in lines[0]
    assert "ROUTE" in lines[1] and "EVENTS" in lines[2] and "accepted" in lines[2]
    assert "filled" in lines[3] and "fill=2@60000" in lines[3] and "leaves_quantity=0" in lines[3]
    assert "cancel" in lines[4]
    missing = tradebus("audit", "show", "o-nobody", env=cli_env)
    assert missing.returncode == 1 and "no audit records for 'o-nobody'" in missing.stderr

    # Someone edits the file behind the append-only triggers: verify names the record.
    with db:
        db.execute("DROP TRIGGER audit_log_no_update")
        db.execute("UPDATE audit_log SET payload = ? WHERE id = 3", (b"{}",))
    db.close()
    tampered = tradebus("audit", "verify", env=cli_env)
    assert tampered.returncode == 1
    assert tampered.stdout.startswith("BROKEN at record 3 (stream ")
    assert "modified" in tampered.stdout and "2 records before it are intact" in tampered.stdout


async def test_a_batch_is_acked_only_after_its_commit(
    nats_server: NatsServer, tmp_path: Path, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "elsewhere" / "audit.sqlite"
    monkeypatch.setattr(audit_store, "SQLITE_BUSY_TIMEOUT", 0.3)  # fail fast while the test holds the lock
    settings = audit_settings(nats_server, tmp_path, sqlite_path=str(path))
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    async with running_service(AuditService(settings)) as service:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        for n in range(20):
            await publish(js, subjects.command("paper", "demo"), b'{"type":"cancel","client_order_id":"o-%d"}' % n,
                          f"m-{n}")
        await wait_until(lambda: service.counters()["commit_failures"] >= 1, "a failed commit")
        info = await js.consumer_info("CMD", "audit-cmd")
        assert info.ack_floor.stream_seq == 0 and info.num_ack_pending + info.num_pending == 20
        assert blocker.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)
        blocker.execute("ROLLBACK")
        blocker.close()
        # The failed batch was naked: it comes back within a second, not after ack_wait.
        await wait_until(lambda: service.counters()["stored"] == 20, "20 messages stored after the lock")
        for _ in range(100):
            info = await js.consumer_info("CMD", "audit-cmd")
            if info.ack_floor.stream_seq == 20:
                break
            await asyncio.sleep(0.02)
        assert info.ack_floor.stream_seq == 20 and info.num_ack_pending == 0
    await nc.close()
    env = {**cli_env, "TRADEBUS_AUDIT__SQLITE_PATH": str(path)}
    verified = tradebus("audit", "verify", env=env)
    assert verified.stdout.startswith("ok: 20 records, chain intact"), verified.stdout + verified.stderr


async def test_stopping_mid_stream_keeps_everything_acked_and_resumes(nats_server: NatsServer, tmp_path: Path) -> None:
    settings = audit_settings(nats_server, tmp_path, batch_size=100)
    total = 3000
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_streams(js, StreamSettings())
    acks = [await js.publish_async(subjects.command("paper", "demo"), b'{"type":"cancel","client_order_id":"o-%d"}'
                                   % n, headers={"Nats-Msg-Id": f"m-{n}"}) for n in range(total)]
    await asyncio.gather(*acks)
    async with running_service(AuditService(settings)) as first:
        await wait_until(lambda: first.counters()["stored"] >= 100, "a first batch stored")
    # Stopped mid-stream: every message the bus considers acknowledged is in the store.
    info = await js.consumer_info("CMD", "audit-cmd")
    db = sqlite3.connect(tmp_path / "data" / "audit.sqlite")
    stored = {seq for (seq,) in db.execute("SELECT stream_seq FROM audit_log WHERE stream = 'CMD'")}
    assert 0 < info.ack_floor.stream_seq and set(range(1, info.ack_floor.stream_seq + 1)) <= stored
    assert len(stored) < total, "the service read everything before it was stopped: raise `total`"

    async with running_service(AuditService(settings)) as second:
        await wait_until(lambda: len(stored) + second.counters()["stored"] == total, "the rest stored")
    await nc.close()
    (count,) = db.execute("SELECT count(DISTINCT stream_seq) FROM audit_log").fetchone()
    db.close()
    assert count == total
    reader = await SqliteAuditStore.open(str(tmp_path / "data" / "audit.sqlite"), create=False)
    result = await reader.verify()
    await reader.close()
    assert result.ok and result.count == total


async def test_a_registered_secret_never_reaches_the_store(nats_server: NatsServer, tmp_path: Path) -> None:
    secret = Secret(f"tb-test-secret-{uuid.uuid4().hex}")  # registers its value, as config loading does
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    async with running_service(AuditService(audit_settings(nats_server, tmp_path))) as service:
        payload = b'{"type":"place","client_order_id":"o-S","note":"key=%s"}' % secret.reveal().encode()
        await publish(js, subjects.command("paper", "demo"), payload, "m-secret")
        await publish(js, subjects.command("paper", "demo"), b'{"type":"cancel","client_order_id":"o-S"}', "m-2")
        await wait_until(lambda: service.counters()["stored"] == 2, "2 messages stored")
    assert service.counters()["redacted"] == 1
    await nc.close()
    raw = (tmp_path / "data" / "audit.sqlite").read_bytes()
    assert secret.reveal().encode() not in raw
    reader = await SqliteAuditStore.open(str(tmp_path / "data" / "audit.sqlite"), create=False)
    history = await reader.history("o-S")
    await reader.close()
    assert history[0].payload == b'{"type":"place","client_order_id":"o-S","note":"key=***"}'


async def test_the_postgres_store_through_the_service(
    nats_server: NatsServer, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    table = f"audit_it_{uuid.uuid4().hex[:12]}"
    settings = audit_settings(nats_server, tmp_path, store="postgres", postgres_dsn=Secret(POSTGRES_DSN),
                              postgres_table=table)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        async with running_service(AuditService(settings)) as service:
            place = PlaceOrder(**ORDER, side=Side.SELL, order_type=OrderType.MARKET, quantity=Decimal("1"))
            await publish_command(js, subjects.command("paper", "demo"), place)
            await publish_command(js, subjects.route("paper", "demo"), place)
            await publish(js, subjects.order_events("paper", "demo"),
                          encode(OrderAccepted(**EVENT, event_id="e1", side=Side.SELL, order_type=OrderType.MARKET,
                                               time_in_force=TimeInForce.IOC,
                                               quantity=Decimal("1"))), "e1")
            await wait_until(lambda: service.counters()["stored"] == 3, "3 messages stored", timeout=15)
        await nc.close()
        reader = await PostgresAuditStore.open(POSTGRES_DSN, table, create=False)
        result = await reader.verify()
        history = await reader.history("o-A")
        await reader.close()
        assert result.ok and result.count == 3
        assert [(r.stream, r.msg_type, r.scope) for r in history] == [
            ("CMD", "place", "client"), ("ROUTE", "place", "risk"), ("EVENTS", "accepted", "connector.paper")]
        env = {**cli_env, "TRADEBUS_AUDIT__STORE": "postgres", "TRADEBUS_AUDIT__POSTGRES_DSN": POSTGRES_DSN,
               "TRADEBUS_AUDIT__POSTGRES_TABLE": table}
        verified = tradebus("audit", "verify", env=env)
        assert verified.stdout.startswith("ok: 3 records, chain intact"), verified.stdout + verified.stderr
    finally:
        admin = await asyncpg.connect(POSTGRES_DSN)
        await admin.execute(f"DROP TABLE IF EXISTS {table}, {table}_streams")
        await admin.close()


async def test_each_record_holds_its_publishers_scope_forged_ones_too(nats_server: NatsServer, tmp_path: Path) -> None:
    """The audit trail keeps everything, a forged event included, with the scope the bus
    allowed on its subject: a fill of a paper order sent by binance's connector shows as such."""
    settings = audit_settings(nats_server, tmp_path)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    fill = Fill(trade_id="T9", side=Side.BUY, price=Decimal("1"), quantity=Decimal("5"), fee=Decimal("0"),
                fee_currency="USDT", liquidity=LiquiditySide.TAKER)
    async with running_service(AuditService(settings)) as service:
        await publish(js, subjects.rejections("paper", "demo"),
                      encode(OrderRejected(**EVENT, event_id="risk:r1", reason=RejectReason.FLEET_HALTED)), "risk:r1")
        await publish(js, subjects.order_events("binance", "x"),
                      encode(OrderFilled(**EVENT, event_id="f1", fill=fill, cum_quantity=Decimal("5"),
                                         leaves_quantity=Decimal("0"), avg_price=Decimal("1"))), "f1")
        await publish(js, subjects.RISK_EVENTS, b"{}", "s1")
        await publish(js, "tradebus.evt.unheard-of", b"{}", "u1")
        await wait_until(lambda: service.counters()["stored"] == 4, "4 messages stored")
    await nc.close()
    db = sqlite3.connect(tmp_path / "data" / "audit.sqlite")
    scopes = db.execute("SELECT subject, scope FROM audit_log ORDER BY id").fetchall()
    db.close()
    assert scopes == [(subjects.rejections("paper", "demo"), "risk"), (subjects.order_events("binance", "x"), "connector.binance"),
                      (subjects.RISK_EVENTS, "risk_control"), ("tradebus.evt.unheard-of", "unknown")]


def old_record(seq: int) -> AuditRecord:
    return AuditRecord(stream="EVENTS", stream_seq=seq, subject="tradebus.evt.order.paper.demo", msg_id=f"old-{seq}",
                       ts=NOW, msg_type="accepted", order_key="o-old", payload=b"{}")


OLD_COLUMNS = [column for column in audit_store.COLUMNS if column != "scope"]


async def test_a_store_written_before_scopes_stays_readable_and_is_migrated_by_its_writer(tmp_path: Path) -> None:
    """A store without the scope column: a reader reads its records with no scope; the
    audit service's opening adds the column; old and new records verify as one chain."""
    path = tmp_path / "audit.sqlite"
    old = sqlite3.connect(path)
    old.executescript(audit_store._SQLITE_SCHEMA.replace("    scope TEXT,\n", ""))
    rows = link([old_record(1), old_record(2)], head_id=0, head_hash=audit_store.GENESIS)
    old.executemany(f"INSERT INTO audit_log ({', '.join(OLD_COLUMNS)}) VALUES ({', '.join('?' * len(OLD_COLUMNS))})",
                    [tuple(getattr(row, column) for column in OLD_COLUMNS) for row in rows])
    old.commit()
    old.close()

    reader = await SqliteAuditStore.open(str(path), create=False)
    assert [r.scope for r in await reader.history("o-old")] == [None, None]
    assert (await reader.verify()).count == 2
    await reader.close()
    assert "scope" not in {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(audit_log)")}

    writer = await SqliteAuditStore.open(str(path))  # as the audit service opens it
    newer = msgspec_replace(old_record(3), scope="connector.paper")
    assert await writer.append([newer]) == 1
    result = await writer.verify()
    assert result.ok and result.count == 3
    assert [r.scope for r in await writer.history("o-old")] == [None, None, "connector.paper"]
    await writer.close()


async def test_a_postgres_store_written_before_scopes_is_migrated_by_its_writer() -> None:
    table = f"audit_old_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_DSN)
    try:
        await admin.execute(audit_store._postgres_schema(table).replace("    scope TEXT,\n", "").replace(
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS scope TEXT;\n", ""))
        rows = link([old_record(1)], head_id=0, head_hash=audit_store.GENESIS)
        await admin.copy_records_to_table(table, records=[tuple(getattr(row, c) for c in OLD_COLUMNS) for row in rows],
                                          columns=OLD_COLUMNS)
        reader = await PostgresAuditStore.open(POSTGRES_DSN, table, create=False)
        assert [r.scope for r in await reader.history("o-old")] == [None]
        await reader.close()
        writer = await PostgresAuditStore.open(POSTGRES_DSN, table)
        assert await writer.append([msgspec_replace(old_record(2), scope="risk")]) == 1
        result = await writer.verify()
        assert result.ok and result.count == 2
        assert [r.scope for r in await writer.history("o-old")] == [None, "risk"]
        await writer.close()
    finally:
        await admin.execute(f"DROP TABLE IF EXISTS {table}, {table}_streams")
        await admin.close()
