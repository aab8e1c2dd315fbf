"""No process can hang: SIGTERM stops every service within its grace period, whatever the bus
does (killed, frozen, never there) and whenever it comes (serving, or still starting).

Real processes on a real nats-server. The grace period is 3 s here; a process may take a
little longer to be gone (interpreter exit on a loaded machine), hence SLACK.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.events import BalanceUpdate, TradingStateChanged
from tradebus.schemas.values import TradingState
from tradebus.services.connector.events import EventPublisher
from tradebus.shared.bus import Bus
from tradebus.shared.health import ServiceMetrics
from tradebus.shared.natsserver import NatsServer, free_port
from tradebus.shared.pipeline import BusOutage
from tradebus.shared.topology import StreamSettings, ensure_streams

from .processes import ProcessFleet

SERVICES = ("risk", "oms", "audit", "connector.paper")
GRACE = 3.0
SLACK = 4.0  # seconds past the grace period for the process to be gone on a loaded machine
STOP_IN_START_UP = "stop requested during start-up"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    nats_server = NatsServer(store_dir=tmp_path / "nats", port=free_port())
    nats_server.start()
    try:
        yield nats_server
    finally:
        assert nats_server.process is not None
        nats_server.process.send_signal(signal.SIGCONT)  # if a test froze it
        nats_server.stop()


def fleet_on(url: str, work: Path) -> ProcessFleet:
    return ProcessFleet(url, work, env={"TRADEBUS_SHUTDOWN_GRACE": str(GRACE)})


def assert_stops_in_time(fleet: ProcessFleet, name: str) -> int:
    code, seconds = fleet.terminate(name, timeout=GRACE + 60)
    assert seconds < GRACE + SLACK, f"{name} took {seconds:.1f}s to stop:\n{fleet.log(name)}"
    return code


def wait_for_log(fleet: ProcessFleet, name: str, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in fleet.log(name):
        assert fleet.processes[name].poll() is None, fleet.log(name)
        assert time.monotonic() < deadline, f"no {text!r} from {name}:\n{fleet.log(name)}"
        time.sleep(0.05)


@pytest.mark.parametrize("bus", ["killed", "frozen"])
def test_sigterm_stops_every_service_in_time_when_the_bus_is_gone(bus: str, server: NatsServer, tmp_path: Path) -> None:
    """`killed`: nats-server SIGKILLed and not restarted (the services reconnect for ever).
    `frozen`: nats-server SIGSTOPped: connections stay open and nothing answers, so a drain's
    flush waits for a PONG that never comes."""
    fleet = fleet_on(server.url, tmp_path)
    for name in SERVICES:
        fleet.start(name)
    assert server.process is not None
    if bus == "killed":
        server.kill()
    else:
        server.process.send_signal(signal.SIGSTOP)
    time.sleep(1)  # the services notice (killed) or keep waiting on a silent socket (frozen)
    for name in SERVICES:
        assert_stops_in_time(fleet, name)


@pytest.mark.parametrize("name", SERVICES)
def test_sigterm_during_start_up_with_no_bus_stops_in_time(name: str, tmp_path: Path) -> None:
    """Nothing listens at the bus address: start-up retries the connection for ever, and
    SIGTERM must still end it."""
    fleet = fleet_on(f"nats://127.0.0.1:{free_port()}", tmp_path)
    fleet.launch(name)
    wait_for_log(fleet, name, "bus error")  # past the imports, into the connection attempts
    assert_stops_in_time(fleet, name)
    assert STOP_IN_START_UP in fleet.log(name)


def test_sigterm_while_risk_replays_from_a_frozen_bus_stops_in_time(server: NatsServer, tmp_path: Path) -> None:
    """Risk is replaying EVENTS when the bus stops answering: the replay never catches up."""
    asyncio.run(fill_events(server.url, 50_000))
    fleet = fleet_on(server.url, tmp_path)
    fleet.launch("risk")
    wait_for_log(fleet, "risk", "msg=starting")
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    assert_stops_in_time(fleet, "risk")
    assert STOP_IN_START_UP in fleet.log("risk")


async def fill_events(url: str, count: int) -> None:
    """`count` trading-state events in EVENTS (risk reads past them while replaying)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js, StreamSettings())
    for first in range(0, count, 1000):
        futures = [await js.publish_async(subjects.RISK_EVENTS, encode(TradingStateChanged(
            event_id=f"fill.{n}", account=None, state=TradingState.ACTIVE, reason="filler", changed_by="test",
            ts_event=n))) for n in range(first, first + 1000)]
        await asyncio.gather(*futures)
    await nc.close()


async def test_the_event_writer_fails_its_waiters_when_the_bus_dies(nats_server: NatsServer) -> None:
    """The connector's hang after a nats-server kill: a publish timed out, the writer died,
    and `stop()` waited for ever for a flush. Now the writer waits for the bus its grace
    period long, then every waiter fails with the writer, and a flush returns."""
    grace = 2.0
    bus = await Bus.connect(nats_server.url, name="test", outage_grace=grace)
    publisher = EventPublisher(bus, ServiceMetrics("connector"))
    writer = asyncio.create_task(publisher.run())
    nats_server.kill()
    in_flight = publisher.submit([balance(1)])
    await asyncio.sleep(0.2)  # the writer is waiting for the bus
    queued = publisher.submit([balance(2)])
    with pytest.raises(BusOutage):  # the bus does not come back
        await asyncio.wait_for(writer, grace + 10)
    for waiter in (in_flight, queued, publisher.submit([balance(3)])):
        with pytest.raises(BusOutage):
            await waiter
    await asyncio.wait_for(publisher.flush(), 1)
    await bus.nc.close()


def balance(n: int) -> BalanceUpdate:
    return BalanceUpdate(event_id=f"balance.{n}", venue="paper", account="demo", ts_event=n, ts_recv=n, balances=[])
