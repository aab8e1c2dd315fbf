"""The audit store knows which streams it records: another fleet's store is refused, and
`tradebus audit verify` checks the store against the streams, not only its own chain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest

from tradebus.schemas import subjects
from tradebus.services.audit.config import AuditConfig
from tradebus.services.audit.service import AuditService
from tradebus.services.audit.store import SQLITE_STREAMS, SQLITE_TABLE
from tradebus.services.settings import Settings
from tradebus.shared.config import Secret
from tradebus.shared.natsserver import NatsServer, free_port
from tradebus.shared.service import EXIT_REFUSED
from tradebus.shared.topology import StreamSettings, ensure_streams

from .helpers import running_service, wait_until

TRADEBUS = [sys.executable, "-m", "tradebus.cli.main"]
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def other_bus(tmp_path: Path) -> Iterator[NatsServer]:
    """A second fleet's bus: its streams start at sequence 1 too."""
    with NatsServer(store_dir=tmp_path / "other-nats", port=free_port()) as server:
        yield server


def settings_for(server: NatsServer, data_dir: Path, **audit: Any) -> Settings:
    return Settings(nats_url=server.url, heartbeat_interval=0.2, data_dir=str(data_dir), audit=AuditConfig(**audit))


async def publish_commands(server: NatsServer, count: int, tag: str) -> None:
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await ensure_streams(js, StreamSettings())
    for n in range(count):
        await js.publish(subjects.command("paper", "demo"), b'{"type":"cancel","client_order_id":"%s-%d"}'
                         % (tag.encode(), n), headers={"Nats-Msg-Id": f"{tag}-{n}"})
    await nc.close()


async def stream_and_consumer(server: NatsServer) -> tuple[int, int | None]:
    """(messages in CMD, what the audit consumer acknowledged, None if it does not exist)."""
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    messages = (await js.stream_info("CMD")).state.messages
    try:
        acked: int | None = (await js.consumer_info("CMD", "audit-cmd")).ack_floor.stream_seq
    except nats.js.errors.NotFoundError:
        acked = None
    await nc.close()
    return messages, acked


async def store_commands(server: NatsServer, settings: Settings, count: int, tag: str) -> None:
    """A fleet that ran: `count` commands on its bus, stored by its audit logger."""
    async with running_service(AuditService(settings)) as service:
        await publish_commands(server, count, tag)
        await wait_until(lambda: service.counters()["stored"] == count, f"{count} commands stored")


async def refused(settings: Settings) -> None:
    assert await asyncio.wait_for(AuditService(settings).serve(), 30) == EXIT_REFUSED


def tradebus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TRADEBUS, *args], env=env, capture_output=True, text=True, timeout=60)


def refusal_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.getMessage().startswith("start-up refused"))


@contextlib.asynccontextmanager
async def postgres_table() -> AsyncIterator[str]:
    table = f"audit_id_{uuid.uuid4().hex[:12]}"
    try:
        yield table
    finally:
        admin = await asyncpg.connect(POSTGRES_DSN)
        await admin.execute(f"DROP TABLE IF EXISTS {table}, {table}_streams")
        await admin.close()


def test_the_audit_logger_refuses_another_fleets_store_and_acks_nothing(
    nats_server: NatsServer, other_bus: NatsServer, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """Real processes: `tradebus run audit` on a data dir whose store an earlier fleet wrote."""
    shared = tmp_path / "data"  # cli_env's data dir
    asyncio.run(store_commands(nats_server, settings_for(nats_server, shared), 3, "first"))
    asyncio.run(publish_commands(other_bus, 5, "second"))  # sequences 1-5: 1-3 "already stored"
    env = {**cli_env, "TRADEBUS_NATS_URL": other_bus.url, "TRADEBUS_LOG_JSON": "false"}
    audit = subprocess.run([*TRADEBUS, "run", "audit"], env=env, capture_output=True, text=True, timeout=60)
    assert audit.returncode == EXIT_REFUSED, audit.stderr
    store_path = str(shared / "audit.sqlite")
    assert "another fleet's store" in audit.stderr and store_path in audit.stderr, audit.stderr
    assert audit.stderr.count("stream CMD created ") == 2 and "Traceback" not in audit.stderr
    # Nothing acknowledged: every message waits for the right store, which takes all five.
    assert asyncio.run(stream_and_consumer(other_bus)) == (5, None)
    env["TRADEBUS_DATA_DIR"] = str(tmp_path / "second-fleet")
    with subprocess.Popen([*TRADEBUS, "run", "audit"], env=env, stderr=subprocess.DEVNULL) as right:
        try:
            verified = None
            for _ in range(60):
                verified = tradebus("audit", "verify", "--wait", "1", env=env)
                if verified.returncode == 0:
                    break
            assert verified is not None and verified.returncode == 0, verified.stdout + verified.stderr
            assert "CMD: complete, 5 records (seq 1-5)" in verified.stdout
        finally:
            right.terminate()
    assert right.returncode == 0
    # The first fleet's store is untouched.
    db = sqlite3.connect(store_path)
    assert db.execute(f"SELECT count(*) FROM {SQLITE_TABLE}").fetchone() == (3,)
    db.close()


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_a_store_bound_to_other_streams_is_refused(
    store: str, nats_server: NatsServer, other_bus: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with postgres_table() as table:
        audit: dict[str, Any] = {} if store == "sqlite" else dict(
            store="postgres", postgres_dsn=Secret(POSTGRES_DSN), postgres_table=table)
        await store_commands(nats_server, settings_for(nats_server, tmp_path / "data", **audit), 2, "first")
        await publish_commands(other_bus, 2, "second")
        with caplog.at_level(logging.ERROR):
            await refused(settings_for(other_bus, tmp_path / "data", **audit))
        text = refusal_text(caplog)
        where = str(tmp_path / "data" / "audit.sqlite") if store == "sqlite" else f"PostgreSQL table {table}"
        assert where in text and "another fleet's store" in text and text.count("stream CMD created") == 2, text
        assert await stream_and_consumer(other_bus) == (2, None)
        # The store's own fleet still runs on it.
        await store_commands(nats_server, settings_for(nats_server, tmp_path / "data", **audit), 0, "again")


async def test_an_empty_store_is_refused_when_the_bus_acked_to_another_one(
    nats_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await store_commands(nats_server, settings_for(nats_server, tmp_path / "data"), 3, "first")
    with caplog.at_level(logging.ERROR):
        await refused(settings_for(nats_server, tmp_path / "elsewhere"))
    text = refusal_text(caplog)
    assert "holds no record of stream CMD" in text and "acknowledged messages up to seq 3" in text, text
    assert "nats consumer rm CMD audit-cmd" in text
    db = sqlite3.connect(tmp_path / "elsewhere" / "audit.sqlite")
    assert db.execute(f"SELECT count(*) FROM {SQLITE_TABLE}").fetchone() == (0,)
    assert db.execute(f"SELECT count(*) FROM {SQLITE_STREAMS}").fetchone() == (0,)  # not bound either
    db.close()


def unbind(path: Path) -> None:
    """Make the store look like one written before bindings existed."""
    db = sqlite3.connect(path)
    with db:
        db.execute(f"DROP TRIGGER {SQLITE_STREAMS}_no_delete")
        db.execute(f"DELETE FROM {SQLITE_STREAMS}")
    db.close()


async def test_a_store_from_before_bindings_is_adopted_only_by_its_own_bus(
    nats_server: NatsServer, other_bus: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ours = settings_for(nats_server, tmp_path / "data")
    await store_commands(nats_server, ours, 4, "first")
    unbind(tmp_path / "data" / "audit.sqlite")
    await publish_commands(other_bus, 6, "second")
    with caplog.at_level(logging.ERROR):
        await refused(settings_for(other_bus, tmp_path / "data"))
    assert "holds records of stream CMD (up to seq 4) that the bus" in refusal_text(caplog)
    assert await stream_and_consumer(other_bus) == (6, None)
    # Its own bus has exactly those messages: adopted, bound, and it goes on from there.
    await store_commands(nats_server, ours, 1, "more")
    db = sqlite3.connect(tmp_path / "data" / "audit.sqlite")
    assert db.execute(f"SELECT stream, first_seq FROM {SQLITE_STREAMS} WHERE stream = 'CMD'").fetchone() == ("CMD", 1)
    db.close()


async def test_verify_checks_every_sequence_against_the_streams(
    nats_server: NatsServer, other_bus: NatsServer, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    await store_commands(nats_server, settings_for(nats_server, tmp_path / "data"), 6, "first")
    complete = tradebus("audit", "verify", env=cli_env)
    assert complete.returncode == 0, complete.stdout + complete.stderr
    assert "CMD: complete, 6 records (seq 1-6)" in complete.stdout
    assert "ROUTE: complete, 0 records (no messages yet)" in complete.stdout

    # The newest record removed: the chain cannot see a cut-off tail, completeness does.
    db = sqlite3.connect(tmp_path / "data" / "audit.sqlite")
    with db:
        db.execute(f"DROP TRIGGER {SQLITE_TABLE}_no_delete")
        db.execute(f"DELETE FROM {SQLITE_TABLE} WHERE stream = 'CMD' AND stream_seq = 6")
    cut = tradebus("audit", "verify", env=cli_env)
    assert cut.returncode == 1
    assert "chain intact" in cut.stdout and "CMD: INCOMPLETE, 1 of 6 messages missing (seq 6)" in cut.stdout, cut.stdout
    assert "1 acknowledged by the audit logger yet absent: lost from the store" in cut.stdout
    # One from the middle: the chain breaks there and completeness names the sequence.
    with db:
        db.execute(f"DELETE FROM {SQLITE_TABLE} WHERE stream = 'CMD' AND stream_seq = 3")
    db.close()
    hole = tradebus("audit", "verify", env=cli_env)
    assert hole.returncode == 1 and hole.stdout.startswith("BROKEN at record 4")
    assert "CMD: INCOMPLETE, 2 of 6 messages missing (seq 3, 6)" in hole.stdout, hole.stdout
    chain_only = tradebus("audit", "verify", "--chain-only", env=cli_env)
    assert chain_only.returncode == 1 and "completeness not checked" in chain_only.stdout

    # The same store against another fleet's bus: refused, both identities named.
    await publish_commands(other_bus, 6, "second")
    foreign = tradebus("audit", "verify", "--nats-url", other_bus.url, env=cli_env)
    assert foreign.returncode == 1
    assert "CMD: NOT VERIFIABLE" in foreign.stdout and foreign.stdout.count("stream CMD created") >= 2, foreign.stdout

    unreachable = tradebus("audit", "verify", "--nats-url", f"nats://127.0.0.1:{free_port()}", env=cli_env)
    assert unreachable.returncode == 2 and "cannot check completeness" in unreachable.stderr


async def test_verify_names_messages_the_audit_logger_has_not_stored_yet(
    nats_server: NatsServer, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    await store_commands(nats_server, settings_for(nats_server, tmp_path / "data"), 2, "first")
    await publish_commands(nats_server, 3, "later")  # the audit logger is not running
    pending = tradebus("audit", "verify", "--wait", "0.5", env=cli_env)
    assert pending.returncode == 1
    assert "CMD: INCOMPLETE, 3 of 5 messages missing (seq 3-5); 3 not stored yet" in pending.stdout, pending.stdout
    # `--data-dir` finds the same store as TRADEBUS_DATA_DIR does.
    env = {key: value for key, value in cli_env.items() if key != "TRADEBUS_DATA_DIR"}
    by_flag = tradebus("audit", "verify", "--wait", "0", "--data-dir", str(tmp_path / "data"), env=env)
    assert "CMD: INCOMPLETE, 3 of 5" in by_flag.stdout, by_flag.stdout + by_flag.stderr
