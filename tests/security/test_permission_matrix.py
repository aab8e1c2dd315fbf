"""Every identity x publish/subscribe x subject family, against a real nats-server running the
generated configuration: what is allowed is exactly what this table says, nothing more.

The table is written out by hand on purpose (not derived from natsgrants.py): a change of
the grants that widens or narrows anyone's rights makes this test fail until the table, and
with it the threat model in docs/security.md, is changed too. It runs against both products
of the generator: `tradebus up --secure`'s configuration and the deployment profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .securebus import SecureBus, deploy_bus, local_bus

PUBLISH = {
    "command for alpha's account": "tradebus.cmd.paper.demo",
    "command for beta's account": "tradebus.cmd.paper.beta",
    "routed command": "tradebus.route.paper.demo",
    "paper order event": "tradebus.evt.order.paper.demo",
    "binance order event": "tradebus.evt.order.binance.main",
    "paper account event": "tradebus.evt.account.paper.demo",
    "risk rejection": "tradebus.evt.reject.paper.demo",
    "trading state event": "tradebus.evt.risk",
    "paper market data": "tradebus.md.paper.quote.BTC",
    "binance market data": "tradebus.md.binance.quote.BTC",
    "risk heartbeat": "tradebus.status.risk.main",
    "paper connector heartbeat": "tradebus.status.connector.paper",
    "ping": "tradebus.ctl.ping",
    "risk control": "tradebus.ctl.risk",
    "order query": "tradebus.ctl.oms",
    "sizing request": "tradebus.ctl.sizing",
    "market data control": "tradebus.ctl.md.paper",
    "instruments query": "tradebus.ctl.instruments.paper",
    "reconcile request": "tradebus.ctl.reconcile.paper",
    "another's inbox": "_INBOX.risk.stolen",
    "stream update": "$JS.API.STREAM.UPDATE.EVENTS",
    "stream delete": "$JS.API.STREAM.DELETE.EVENTS",
    "stream purge": "$JS.API.STREAM.PURGE.EVENTS",
    "stream create": "$JS.API.STREAM.CREATE.EVIL",
    "re-point a connector's durable": "$JS.API.CONSUMER.CREATE.ROUTE.connector-paper.tradebus.route.>",
    "durable create without filter": "$JS.API.CONSUMER.DURABLE.CREATE.ROUTE.connector-paper",
    "ephemeral consumer": "$JS.API.CONSUMER.CREATE.EVENTS",
    "pull risk's durable": "$JS.API.CONSUMER.MSG.NEXT.CMD.risk",
    "pull the paper connector's durable": "$JS.API.CONSUMER.MSG.NEXT.ROUTE.connector-paper",
    "delete the paper connector's durable": "$JS.API.CONSUMER.DELETE.ROUTE.connector-paper",
    "delete risk's durable": "$JS.API.CONSUMER.DELETE.CMD.risk",
    "delete the order manager's durable": "$JS.API.CONSUMER.DELETE.EVENTS.oms-events",
    "trading-state bucket": "$KV.tradebus_risk.account.demo",
    "orders bucket": "$KV.tradebus_orders.paper.demo.x",
}

SUBSCRIBE = {
    "all commands": "tradebus.cmd.>",
    "all routed commands": "tradebus.route.>",
    "all events": "tradebus.evt.>",
    "alpha's order events": "tradebus.evt.order.paper.demo",
    "beta's order events": "tradebus.evt.order.paper.beta",
    "alpha's rejections": "tradebus.evt.reject.paper.demo",
    "market data": "tradebus.md.>",
    "heartbeats": "tradebus.status.>",
    "order queries": "tradebus.ctl.oms",
    "sizing requests": "tradebus.ctl.sizing",
    "risk control": "tradebus.ctl.risk",
    "paper market data control": "tradebus.ctl.md.paper",
    "paper instruments queries": "tradebus.ctl.instruments.paper",
    "pings": "tradebus.ctl.ping",
    "dead letters": "tradebus.dlq.>",
    "every inbox": "_INBOX.>",
    "risk's inboxes": "_INBOX.risk.>",
    "alpha's inboxes": "_INBOX.alpha.>",
    "trading-state bucket writes": "$KV.tradebus_risk.>",
    "the JetStream API": "$JS.API.>",
    "everything": ">",
}

PUBLISH_ALLOWED = {
    "risk": {"routed command", "risk rejection", "trading state event", "market data control", "risk heartbeat",
             "trading-state bucket", "pull risk's durable", "delete risk's durable"},
    "oms": {"reconcile request", "orders bucket", "delete the order manager's durable"},
    "audit": set(),
    "sizing": {"order query", "instruments query"},
    "connector-paper": {"paper order event", "paper account event", "paper market data", "paper connector heartbeat",
                        "pull the paper connector's durable", "delete the paper connector's durable"},
    "connector-binance": {"binance order event", "binance market data"},
    "operator": {"command for alpha's account", "command for beta's account", "ping", "risk control", "order query",
                 "sizing request", "market data control", "instruments query", "trading-state bucket", "trading state event",
                 "orders bucket"},
    "provision": {"stream update", "stream create", "re-point a connector's durable", "durable create without filter",
                  "ephemeral consumer", "pull risk's durable", "pull the paper connector's durable",
                  "delete the paper connector's durable", "delete risk's durable", "delete the order manager's durable"},
    "alpha": {"command for alpha's account", "ping", "order query", "market data control", "instruments query"},
    "beta": {"command for beta's account", "ping", "order query", "market data control", "instruments query"},
    "readonly": {"ping", "order query", "market data control", "instruments query"},
}

SUBSCRIBE_ALLOWED = {
    "risk": {"all routed commands", "all events", "alpha's order events", "beta's order events", "alpha's rejections",
             "market data", "risk control", "trading-state bucket writes", "risk's inboxes", "pings"},
    "oms": {"order queries", "pings"},
    "audit": {"pings"},
    "sizing": {"sizing requests", "pings"},
    "connector-paper": {"paper market data control", "paper instruments queries", "pings"},
    "connector-binance": {"pings"},
    "operator": {"all events", "alpha's order events", "beta's order events", "alpha's rejections", "market data",
                 "heartbeats", "dead letters"},
    "provision": set(),
    "alpha": {"alpha's order events", "alpha's rejections", "market data", "heartbeats", "alpha's inboxes"},
    "beta": {"beta's order events", "market data", "heartbeats"},
    "readonly": {"all events", "alpha's order events", "beta's order events", "alpha's rejections", "market data",
                 "heartbeats"},
}


@pytest.fixture(scope="module", params=["up --secure", "deploy profile"])
def bus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBus]:
    start = local_bus if request.param == "up --secure" else deploy_bus
    running = start(tmp_path_factory.mktemp(request.param.replace(" ", "").replace("-", "")))
    yield running
    running.server.stop()


def test_the_configuration_has_exactly_the_identities_of_the_table(bus: SecureBus) -> None:
    assert set(bus.passwords) == set(PUBLISH_ALLOWED) == set(SUBSCRIBE_ALLOWED)


@pytest.mark.parametrize("user", sorted(PUBLISH_ALLOWED))
async def test_publish_rights(bus: SecureBus, user: str) -> None:
    async with bus.connect(user) as identity:
        for subject in PUBLISH.values():
            await identity.nc.publish(subject, b"{}")
        await identity.settle()
        allowed = {name for name, subject in PUBLISH.items() if not identity.refused("publish", subject)}
    assert allowed == PUBLISH_ALLOWED[user], f"{user} may publish: {sorted(allowed)}"


@pytest.mark.parametrize("user", sorted(SUBSCRIBE_ALLOWED))
async def test_subscribe_rights(bus: SecureBus, user: str) -> None:
    async with bus.connect(user) as identity:
        for subject in SUBSCRIBE.values():
            await identity.nc.subscribe(subject)
        own_inbox = f"_INBOX.{user}.mine"
        await identity.nc.subscribe(own_inbox)
        await identity.settle()
        allowed = {name for name, subject in SUBSCRIBE.items() if not identity.refused("subscription", subject)}
        assert not identity.refused("subscription", own_inbox), f"{user} cannot use its own inbox"
    assert allowed == SUBSCRIBE_ALLOWED[user], f"{user} may subscribe to: {sorted(allowed)}"


async def test_no_identity_without_its_password(bus: SecureBus) -> None:
    import nats
    import nats.errors

    for user in ("risk", "alpha", "provision"):
        with pytest.raises((nats.errors.Error, OSError)):
            await nats.connect(bus.url(user, password="wrong"), allow_reconnect=False, connect_timeout=3)
    with pytest.raises((nats.errors.Error, OSError)):
        await nats.connect(f"nats://127.0.0.1:{bus.server.port}", allow_reconnect=False, connect_timeout=3)


def test_the_committed_deploy_profile_is_the_generators_output() -> None:
    from tradebus.cli.secure import deploy_config
    from tradebus.shared.tenants import load_tenants

    repo = Path(__file__).resolve().parents[2]
    committed = (repo / "deploy" / "nats" / "nats-server.conf").read_text()
    venues = tuple(committed.split("tradebus nats-config", 1)[1].split("--output", 1)[0].split("--venue ")[1:])
    assert deploy_config(tuple(v.strip() for v in venues), load_tenants(repo / "deploy" / "tenants.toml")) == committed
