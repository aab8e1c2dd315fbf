"""Hostile clients against the secured fleet, as `tradebus up --secure` runs it.

Each attack of the outside check is tried with the identity that tried it (a tenant, a
connector, risk, the audit logger) and must be refused, leave every stream and bucket as it
was, and leave every service running: at the end the whole fleet is still ready and a tenant's
order still fills.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.commands import PlaceOrder, command_dedupe_id
from tradebus.schemas.values import OrderType, Side
from tradebus.shared.credentials import load_credentials

from ..integration.test_cli import Fleet, tradebus
from .securebus import write_tenants

ORDER_PATH = ("risk", "oms", "audit", "connector.paper")
ORDER = ("order", "place", "--venue", "paper", "--symbol", "BTC/USDT", "--side", "buy", "--qty", "0.01")


PAPER_ACCOUNTS = """\
[paper.accounts.demo]
USDT = 1000000
[paper.accounts.beta]
USDT = 1000000
"""


class SecuredFleet(Fleet):
    """`tradebus up --secure` with two tenants (securebus.TENANTS_TOML) on two paper accounts."""

    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        config = tmp_path / "fleet.toml"
        config.write_text(PAPER_ACCOUNTS)
        super().__init__(tmp_path, "--secure", "--tenants", str(write_tenants(tmp_path)), "--data-dir", str(self.data),
                         "--config", str(config))
        self.env["TRADEBUS_NATS_CREDENTIALS"] = str(self.creds("operator"))

    def creds(self, user: str) -> Path:
        return self.data / "secure" / "credentials" / f"{user}.creds"

    def as_user(self, user: str) -> dict[str, str]:
        return {**self.env, "TRADEBUS_NATS_CREDENTIALS": str(self.creds(user))}

    async def connect(self, user: str) -> tuple[NATS, list[str]]:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc).lower())

        credentials = load_credentials(self.creds(user))
        nc = await nats.connect(f"nats://127.0.0.1:{self.port}", user=user, password=credentials.password.reveal(),
                                inbox_prefix=credentials.inbox_prefix, error_cb=on_error, allow_reconnect=False)
        return nc, errors


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredFleet]:
    running = SecuredFleet(tmp_path_factory.mktemp("secured"))
    try:
        running.wait_ready(60)
        running.wait_services(ORDER_PATH, timeout=60)
        yield running
    finally:
        if running.process.poll() is None:
            assert running.stop() == 0


def refused(errors: list[str], kind: str, subject: str) -> bool:
    return any(error.endswith(f'permissions violation for {kind} to "{subject.lower()}"') for error in errors)


async def last_on(js, stream: str, subject: str) -> bytes | None:  # noqa: ANN001
    try:
        return (await js.get_last_msg(stream, subject)).data
    except nats.js.errors.NotFoundError:
        return None


def test_the_secured_fleet_trades_with_a_tenants_credentials(fleet: SecuredFleet) -> None:
    result = tradebus(*ORDER, "--account", "demo", env=fleet.as_user("alpha"))
    assert result.returncode == 0 and "filled" in result.stdout, result.stdout + result.stderr
    orders = tradebus("orders", env=fleet.as_user("alpha"))
    assert orders.returncode == 0 and "paper" in orders.stdout, orders.stderr
    logs = "".join(path.read_text() for path in (fleet.data / "logs").glob("*.log"))
    for path in (fleet.data / "secure" / "credentials").glob("*.creds"):
        assert load_credentials(path).password.reveal() not in logs + fleet.output.read_text()


async def test_reply_subjects_cannot_reach_fleet_streams_or_buckets(fleet: SecuredFleet) -> None:
    targets = {
        "ROUTE": "tradebus.route.paper.demo",
        "EVENTS": "tradebus.evt.order.paper.demo",
        "STATUS": "tradebus.status.risk.main",
        "CMD": "tradebus.cmd.paper.beta",
        "KV_tradebus_risk": "$KV.tradebus_risk.account.demo",
        "KV_tradebus_orders": "$KV.tradebus_orders.paper.demo.injected",
    }
    watcher, _ = await fleet.connect("provision")
    alpha, _ = await fleet.connect("alpha")
    try:
        js = watcher.jetstream()
        for reply in targets.values():
            await alpha.publish("tradebus.cmd.paper.demo", b'{"not": "a command"}', reply=reply)
        await alpha.flush()
        await asyncio.sleep(1.0)
        for stream, subject in targets.items():
            stored = await last_on(js, stream, subject)
            assert stored is None or b'"stream"' not in stored, f"a publish ack landed on {subject}: {stored!r}"
    finally:
        await alpha.close()
        await watcher.close()
    status = tradebus("status", env=fleet.env)
    assert all(any(line.startswith(name) and " ready " in line for line in status.stdout.splitlines())
               for name in ORDER_PATH), status.stdout


async def test_inboxes_are_private(fleet: SecuredFleet) -> None:
    alpha, errors = await fleet.connect("alpha")
    seen: list[str] = []

    async def on_message(msg) -> None:  # noqa: ANN001
        seen.append(msg.subject)

    try:
        for subject in ("_INBOX.>", "_INBOX.beta.>", "_INBOX.oms.>"):
            await alpha.subscribe(subject, cb=on_message)
        await alpha.flush()
        result = tradebus("orders", env=fleet.as_user("beta"))
        assert result.returncode == 0, result.stderr
        await asyncio.sleep(0.5)
        assert seen == []
        assert all(refused(errors, "subscription", subject) for subject in ("_INBOX.>", "_INBOX.beta.>", "_INBOX.oms.>"))
    finally:
        await alpha.close()


@pytest.mark.parametrize("user", ["audit", "risk", "oms", "connector-paper", "operator", "alpha"])
async def test_no_identity_can_rewrite_a_stream(fleet: SecuredFleet, user: str) -> None:
    watcher, _ = await fleet.connect("provision")
    attacker, errors = await fleet.connect(user)
    try:
        js = watcher.jetstream()
        before = await js.stream_info("EVENTS")
        config = {**before.config.as_dict(), "max_msgs": 1}
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await attacker.request("$JS.API.STREAM.UPDATE.EVENTS", json.dumps(config).encode(), timeout=1)
        for subject in ("$JS.API.STREAM.DELETE.EVENTS", "$JS.API.STREAM.PURGE.EVENTS"):
            await attacker.publish(subject, b"")
        await attacker.flush()
        await asyncio.sleep(0.3)
        after = await js.stream_info("EVENTS")
        assert after.config.max_msgs == before.config.max_msgs and after.state.messages >= before.state.messages
        assert refused(errors, "publish", "$JS.API.STREAM.UPDATE.EVENTS") or user == "alpha"
    finally:
        await attacker.close()
        await watcher.close()


async def test_a_connector_cannot_re_point_its_durable(fleet: SecuredFleet) -> None:
    watcher, _ = await fleet.connect("provision")
    connector, errors = await fleet.connect("connector-paper")
    try:
        js = watcher.jetstream()
        before = await js.consumer_info("ROUTE", "connector-paper")
        wide = {"stream_name": "ROUTE", "config": {**before.config.as_dict(), "filter_subject": "tradebus.route.>"}}
        for subject in ("$JS.API.CONSUMER.CREATE.ROUTE.connector-paper.tradebus.route.>",
                        "$JS.API.CONSUMER.DURABLE.CREATE.ROUTE.connector-paper",
                        "$JS.API.CONSUMER.CREATE.ROUTE.connector-paper.tradebus.route.binance.>"):
            with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await connector.request(subject, json.dumps(wide).encode(), timeout=1)
            assert refused(errors, "publish", subject)
        # through the one create it may send, the server holds the body to the subject's filter
        answer = await connector.request("$JS.API.CONSUMER.CREATE.ROUTE.connector-paper.tradebus.route.paper.>",
                                         json.dumps(wide).encode(), timeout=2)
        assert b'"error"' in answer.data
        assert (await js.consumer_info("ROUTE", "connector-paper")).config.filter_subject == "tradebus.route.paper.>"
    finally:
        await connector.close()
        await watcher.close()


async def test_no_identity_can_publish_another_ones_events(fleet: SecuredFleet) -> None:
    forgeries = {
        "connector-paper": "tradebus.evt.order.binance.main",
        "risk": "tradebus.evt.order.paper.demo",
        "audit": "tradebus.evt.order.paper.demo",
        "oms": "tradebus.evt.account.paper.demo",
        "alpha": "tradebus.evt.order.paper.demo",
    }
    watcher, _ = await fleet.connect("provision")
    try:
        js = watcher.jetstream()
        for user, subject in forgeries.items():
            attacker, errors = await fleet.connect(user)
            try:
                before = await last_on(js, "EVENTS", subject)
                await attacker.publish(subject, b'{"type": "filled", "forged": true}')
                await attacker.flush()
                await asyncio.sleep(0.3)
                assert refused(errors, "publish", subject), f"{user} published on {subject}"
                assert await last_on(js, "EVENTS", subject) == before
            finally:
                await attacker.close()
    finally:
        await watcher.close()


async def test_a_tenant_cannot_reach_another_tenants_accounts(fleet: SecuredFleet) -> None:
    result = tradebus(*ORDER, "--account", "beta", "--timeout", "3", env=fleet.as_user("alpha"))
    assert result.returncode != 0 and "permission" in result.stderr.lower(), result.stdout + result.stderr
    assert "tradebus.cmd.paper.beta" in result.stderr
    # beta trades; alpha sees none of it, neither as events nor through the order manager
    alpha, errors = await fleet.connect("alpha")
    try:
        await alpha.subscribe("tradebus.evt.order.paper.beta")
        await alpha.flush()
        await asyncio.sleep(0.3)
        assert refused(errors, "subscription", "tradebus.evt.order.paper.beta")
    finally:
        await alpha.close()
    placed = tradebus(*ORDER, "--account", "beta", env=fleet.as_user("beta"))
    assert placed.returncode == 0, placed.stdout + placed.stderr
    seen_by_beta = tradebus("orders", "--json", env=fleet.as_user("beta"))
    assert '"account":"beta"' in seen_by_beta.stdout.replace(" ", ""), seen_by_beta.stdout + seen_by_beta.stderr
    listing = tradebus("orders", "--json", env=fleet.as_user("alpha"))
    assert listing.returncode == 0 and '"account":"beta"' not in listing.stdout.replace(" ", "")
    asked = tradebus("orders", "--account", "beta", env=fleet.as_user("alpha"))
    assert asked.returncode != 0 and "may read only its accounts" in asked.stderr and not asked.stdout.strip(), asked.stderr


async def test_a_tenants_retried_command_is_stored_once(fleet: SecuredFleet) -> None:
    """A tenant retrying a command it got no answer for: through its account's import, the
    publish is acknowledged by CMD and the retry recognized as the same command."""
    command = PlaceOrder(client_order_id="retried-1", venue="paper", account="demo", symbol="BTC/USDT", side=Side.BUY,
                         order_type=OrderType.MARKET, quantity=Decimal("0.01"))
    headers = {"Nats-Msg-Id": command_dedupe_id(command)}
    alpha, errors = await fleet.connect("alpha")
    try:
        js = alpha.jetstream(timeout=5)
        first = await js.publish(subjects.command("paper", "demo"), encode(command), headers=headers)
        again = await js.publish(subjects.command("paper", "demo"), encode(command), headers=headers)
    finally:
        await alpha.close()
    assert (first.stream, bool(first.duplicate)) == ("CMD", False)
    assert (again.stream, again.seq, again.duplicate) == ("CMD", first.seq, True)
    assert errors == []


def test_after_every_attack_the_fleet_is_ready_and_trades(fleet: SecuredFleet) -> None:
    status = tradebus("status", env=fleet.env)
    for name in ORDER_PATH:
        assert any(line.startswith(name) and " ready " in line for line in status.stdout.splitlines()), status.stdout
    result = tradebus(*ORDER, "--account", "demo", env=fleet.as_user("alpha"))
    assert result.returncode == 0 and "filled" in result.stdout, result.stdout + result.stderr
