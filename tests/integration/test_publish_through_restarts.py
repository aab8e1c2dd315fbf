"""Pipelined JetStream publishing through a nats-server SIGKILL and restart (shared/pipeline.py),
on a real server restarted on the same port and store.

What the break cut off is published again once the server is back, with its Nats-Msg-Id, so
the stream holds every message exactly once; a message without a Nats-Msg-Id is never
published twice; a server that stays away longer than the grace fails the publish in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter

import msgspec
import pytest

from tradebus.schemas import subjects
from tradebus.services.connector.events import EventPublisher
from tradebus.shared.bus import Bus, publish_pipelined
from tradebus.shared.health import ServiceMetrics
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.pipeline import MSG_ID, AckLost, BusOutage, Publication
from tradebus.shared.topology import StreamSettings, ensure_streams

from .helpers import read_stream, wait_until
from .test_bounded_shutdown import balance

SUBJECT = "test.restart.messages"
BATCH = 20_000  # enough that the kill lands while acks are still awaited


async def with_stream(nats_server: NatsServer, *, grace: float = 30.0) -> Bus:
    bus = await Bus.connect(nats_server.url, name="test", outage_grace=grace)
    await bus.js.add_stream(name="RESTART", subjects=[SUBJECT], duplicate_window=600)
    return bus


def messages(identified: bool) -> list[Publication]:
    return [(SUBJECT, f"m{n}".encode(), {MSG_ID: f"m{n}"} if identified else None) for n in range(BATCH)]


async def kill_while_publishing(nats_server: NatsServer, bus: Bus, publications: list[Publication]) -> asyncio.Task:
    """Start the batch, SIGKILL the server while many of its acks are awaited, start it
    again 1.5 s later; the batch's task."""
    publishing = asyncio.create_task(publish_pipelined(bus.js, publications, outages=bus.outages))
    await wait_until(lambda: bus.js.publish_async_pending() > 1000, "acks in flight")
    await asyncio.to_thread(nats_server.kill)
    await asyncio.sleep(1.5)
    await asyncio.to_thread(nats_server.start)
    return publishing


async def stored_payloads(bus: Bus) -> Counter[bytes]:
    await wait_until(lambda: bus.connected, "reconnected", timeout=20)
    return Counter(msg.data for msg in await read_stream(bus.js, "RESTART", SUBJECT))


async def test_what_a_restart_cut_off_is_published_again_and_stored_once(
        nats_server: NatsServer, caplog: pytest.LogCaptureFixture) -> None:
    bus = await with_stream(nats_server)
    caplog.set_level(logging.WARNING, logger="tradebus.shared.pipeline")
    try:
        publishing = await kill_while_publishing(nats_server, bus, messages(identified=True))
        acks = await asyncio.wait_for(publishing, 60)
        assert bus.outages.count == 1
        assert "publishing again what a bus break left unacknowledged" in caplog.text  # the break did cut acks off
        assert len(acks) == BATCH and len({ack.seq for ack in acks}) == BATCH
        stored = await stored_payloads(bus)
        assert stored == Counter(f"m{n}".encode() for n in range(BATCH)), "a message lost or stored twice"
    finally:
        await bus.nc.close()


async def test_a_message_without_a_msg_id_is_never_published_twice(nats_server: NatsServer) -> None:
    bus = await with_stream(nats_server)
    try:
        publishing = await kill_while_publishing(nats_server, bus, messages(identified=False))
        with pytest.raises(AckLost, match="not published again"):
            await asyncio.wait_for(publishing, 60)
        assert bus.connected, "AckLost comes once the bus is back (its publisher decides what to write again)"
        stored = await stored_payloads(bus)
        assert max(stored.values()) == 1 and len(stored) < BATCH, len(stored)
    finally:
        await bus.nc.close()


async def test_a_bus_away_longer_than_the_grace_fails_the_publish_in_time(nats_server: NatsServer) -> None:
    grace = 2.0
    bus = await with_stream(nats_server, grace=grace)
    try:
        publishing = asyncio.create_task(publish_pipelined(bus.js, messages(identified=True), outages=bus.outages))
        await wait_until(lambda: bus.js.publish_async_pending() > 0, "acks in flight")
        await asyncio.to_thread(nats_server.kill)
        started = time.monotonic()
        with pytest.raises(BusOutage):
            await asyncio.wait_for(publishing, grace + 10)
        assert time.monotonic() - started < grace + 2
    finally:
        with contextlib.suppress(OSError):  # nats-py's close flushes into the dead socket
            await bus.nc.close()


async def test_the_connectors_event_writer_rides_out_a_restart(nats_server: NatsServer,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """Events published into a frozen server, which then dies: the writer does not stop, every
    submission completes once the server is back, and EVENTS holds each event once."""
    caplog.set_level(logging.WARNING, logger="tradebus.shared.pipeline")
    bus = await Bus.connect(nats_server.url, name="test")
    await ensure_streams(bus.js, StreamSettings())
    publisher = EventPublisher(bus, ServiceMetrics("connector"))
    writer = asyncio.create_task(publisher.run())
    try:
        await publisher.submit([balance(n) for n in range(100)])
        assert nats_server.process is not None
        nats_server.process.send_signal(signal.SIGSTOP)
        cut_off = publisher.submit([balance(n) for n in range(100, 600)])
        await asyncio.sleep(0.3)  # on the wire, unanswered
        await asyncio.to_thread(nats_server.kill)
        later = publisher.submit([balance(n) for n in range(600, 700)])
        await asyncio.sleep(1.0)
        await asyncio.to_thread(nats_server.start)
        await asyncio.wait_for(asyncio.gather(cut_off, later), 30)
        assert not writer.done()
        assert "publishing again what a bus break left unacknowledged" in caplog.text
        stored = Counter(msgspec.json.decode(m.data)["event_id"]
                         for m in await read_stream(bus.js, "EVENTS", subjects.account_events("paper", "demo")))
        assert stored == Counter(f"balance.{n}" for n in range(700)), "an event lost or stored twice"
    finally:
        writer.cancel()
        await bus.nc.close()
