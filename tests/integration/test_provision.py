"""`tradebus provision` shapes the bus; the services only check it (real nats-server).

Provisioning creates every stream, bucket and durable, keeps what is as declared and updates
what is not; every durable is created on the API subject that names its filter, so a
permission can pin it. A service whose bus refuses to create what it finds missing refuses
to start (exit 78) naming the command, and starts with nothing but read rights once the
bus is provisioned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from tradebus.services.oms.service import OmsService
from tradebus.services.settings import Settings
from tradebus.shared.config import EXIT_CONFIG
from tradebus.shared.natsserver import NatsServer, free_port
from tradebus.shared.topology import Outcome, StreamSettings, fleet_consumers, provision

from .helpers import running_service

VENUES = ["paper", "binance"]


async def test_provision_creates_then_keeps_and_updates_and_names_each_durables_filter(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    requests: list[str] = []

    async def on_request(msg: nats.aio.msg.Msg) -> None:
        requests.append(msg.subject)

    await nc.subscribe("$JS.API.CONSUMER.>", cb=on_request)
    await nc.flush()

    created = await provision(js, StreamSettings(), VENUES)
    assert {item.outcome for item in created} == {Outcome.CREATED}
    assert len(created) == 4 + 2 + len(fleet_consumers(VENUES))
    await nc.flush()
    assert {subject for subject in requests if ".CREATE." in subject} == {
        f"$JS.API.CONSUMER.CREATE.{c.stream.name}.{c.durable}.{c.filter_subject}" for c in fleet_consumers(VENUES)}

    assert {item.outcome for item in await provision(js, StreamSettings(), VENUES)} == {Outcome.KEPT}
    changed = [item for item in await provision(js, StreamSettings(event_max_age=86400.0), VENUES)
               if item.outcome is not Outcome.KEPT]
    assert [str(item) for item in changed] == ["stream EVENTS: updated (max_age)"]
    await nc.close()


@pytest.fixture
def restricted_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A bus where `svc` may do anything but create or change streams and consumers (the
    filtered consumer create aside: a takeover's), and `admin` may do everything."""
    config = tmp_path / "nats.conf"
    config.write_text("""
authorization {
  users = [
    {user: admin, password: admin}
    {user: svc, password: svc, permissions: {publish: {deny: [
      "$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>"
    ]}}}
  ]
}
""")
    server = NatsServer(store_dir=tmp_path / "nats", port=free_port(), config_file=config)
    server.start()
    yield server
    server.stop()


async def test_a_service_refuses_to_start_on_an_unprovisioned_bus_and_starts_once_provisioned(
        restricted_server: NatsServer, caplog: pytest.LogCaptureFixture) -> None:
    url = f"nats://svc:svc@{restricted_server.host}:{restricted_server.port}"
    settings = Settings(nats_url=url, heartbeat_interval=0.2)
    with caplog.at_level(logging.ERROR):
        assert await OmsService(settings).serve() == EXIT_CONFIG
    assert "stream CMD is missing: run `tradebus provision`" in caplog.text

    admin = await nats.connect(f"nats://admin:admin@{restricted_server.host}:{restricted_server.port}")
    await provision(admin.jetstream(), StreamSettings(), ["paper"])
    await admin.close()
    async with running_service(OmsService(settings)):
        pass
