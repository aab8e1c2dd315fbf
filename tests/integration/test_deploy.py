"""The deployment files.

The production NATS profile (deploy/nats/nats-server.conf, generated from deploy/tenants.toml)
runs on a real nats-server, provisioned as compose provisions it (user `provision`), and the
whole fleet (connector, risk, oms, audit, each as its own user) plus the CLI as the tenant
`client` and as `operator` runs without a permission violation in the server's log but the
one expected (a client's halt). What each identity may and may not do, subject family by
subject family, and the attacks that must fail, are tests/security's. docker-compose.yml, the
Dockerfile and the Prometheus config are checked statically (no Docker engine here), and the
pieces that can run without Docker do run: the provisioning container's command, the image's
health probe, the package build from the image's build context, the compose file through
`docker compose config` when that tool is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import pytest
import yaml
from nats.aio.client import Client as NATS

from tradebus.cli.run import build_service
from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode, reply_decoder
from tradebus.schemas.commands import PlaceOrder, command_dedupe_id
from tradebus.schemas.control import GetInstruments, ListInstruments, ServiceStatus, SetTradingState
from tradebus.schemas.events import OrderAccepted, OrderFilled
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import OrderType, ServiceState, Side, TradingState
from tradebus.services.connector.service import ConnectorService
from tradebus.services.oms.config import OmsConfig
from tradebus.services.settings import Settings, load_settings
from tradebus.shared.config import EXIT_CONFIG
from tradebus.shared.credentials import inbox_prefix
from tradebus.shared.direct import read_stored
from tradebus.shared.health import HealthServer, ServiceMetrics
from tradebus.shared.natsserver import free_port, nats_server_binary, port_in_use
from tradebus.shared.service import Service
from tradebus.shared.tenants import load_tenants
from tradebus.shared.topology import Outcome, StreamSettings, provision

from .helpers import collect, event_decoder, paper_settings, running_connector

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NATS_CONF = DEPLOY / "nats" / "nats-server.conf"
TENANTS = DEPLOY / "tenants.toml"
CLUSTER_EXAMPLE = DEPLOY / "nats" / "cluster-r3.conf.example"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = DEPLOY / "env.example"
PROMETHEUS = DEPLOY / "prometheus.yml"
README = DEPLOY / "README.md"

NATS_SERVER = os.environ.get("NATS_SERVER_BIN") or nats_server_binary()
"""The server under test; NATS_SERVER_BIN checks the profile against another release
(e.g. the one the compose file's image ships)."""

FLEET_SERVICES = ("connector", "risk", "oms", "audit")
"""What `tradebus run SERVICE` runs (today or planned)."""
PROVISION = "provision"
"""The one-shot compose service (and NATS user) that creates streams, buckets and durables."""
ORDER_PATH = {"risk", "oms", "audit"}
"""Compose services of the order path: opt-in, under the `order-path` profile."""
CONTAINER_ENV_OUTSIDE_TRADEBUS: frozenset[str] = frozenset()
"""Container variables allowed without the TRADEBUS_ prefix (documented in deploy/README.md); none today."""


# --- the NATS profile ----------------------------------------------------------------------


def _conf_users() -> dict[str, str]:
    """user -> the environment variable holding its password, as nats-server.conf declares them."""
    users = dict(re.findall(r"\{\s*user:\s*\"?([\w-]+)\"?,\s*password:\s*\$(\w+)", NATS_CONF.read_text()))
    assert users, "no `{user: NAME, password: $VAR ...}` entries found in nats-server.conf"
    return users


USERS = _conf_users()


def strong_password() -> str:
    """What deploy/env.example tells operators to generate."""
    return "p" + secrets.token_hex(24)


PASSWORDS = {user: strong_password() for user in USERS}
PASSWORD_ENV = {USERS[user]: password for user, password in PASSWORDS.items()}


def _base_env() -> dict[str, str]:
    """This process's environment without TRADEBUS_* (a developer's own settings must not leak in)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")}


def config_test(conf: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NATS_SERVER, "-t", "-c", str(conf)], env=env, cwd=cwd, capture_output=True, text=True, timeout=30
    )


_VIOLATION = re.compile(r'"([\w-]+/user:[\w-]+)" - (\w+) Violation - Subject "([^"]*)"')
"""How nats-server logs a refused publish or subscription: who, what, which subject."""


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    port: int
    monitor_port: int
    log: Path

    def url(self, user: str, password: str | None = None) -> str:
        return f"nats://{user}:{PASSWORDS[user] if password is None else password}@127.0.0.1:{self.port}"

    def monitor(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}{path}", timeout=5) as answer:
            return json.loads(answer.read())

    def violations(self) -> list[str]:
        """Permission violations the server logged, each as `ACCOUNT/user:USER KIND SUBJECT`
        (KIND: Publish or Subscription); a violation in any other form is kept whole."""
        return [
            " ".join(match.groups()) if (match := _VIOLATION.search(line)) else line
            for line in self.log.read_text(errors="replace").splitlines() if "Violation" in line
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(args: list[str], *, port: int, log: Path, env: dict[str, str], cwd: Path | None = None) -> RunningServer:
    """nats-server with `args` (which must include `-p port`), waited for until it listens."""
    monitor_port = int(args[args.index("-m") + 1])
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [NATS_SERVER, *args], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
            start_new_session=True,
        )
    server = RunningServer(process, port, monitor_port, log)
    deadline = time.monotonic() + 15
    while not port_in_use("127.0.0.1", port):
        if process.poll() is not None:
            raise AssertionError(f"nats-server exited with {process.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"nats-server did not listen on {port}:\n{log.read_text()}")
        time.sleep(0.05)
    return server


async def provision_bus(urls: list[str], settings: StreamSettings | None = None) -> None:
    """What compose's one-shot `provision` service does before any service starts, as the one
    identity allowed to shape the bus: every stream, bucket and durable of a paper fleet."""
    nc = await nats.connect(servers=urls, inbox_prefix=inbox_prefix("provision"), allow_reconnect=False,
                            connect_timeout=5)
    try:
        done = await provision(nc.jetstream(timeout=5), settings or StreamSettings(), ["paper"])
    finally:
        await nc.close()
    assert all(item.outcome is Outcome.CREATED for item in done), done


def start_profile(tmp_path: Path) -> RunningServer:
    """The production profile on free ports, JetStream in tmp_path, passwords in its environment."""
    port, monitor_port = free_port(), free_port()
    args = ["-c", str(NATS_CONF), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor_port), "-sd", str(tmp_path / "js")]
    return start_server(args, port=port, log=tmp_path / "nats-server.log", env={**_base_env(), **PASSWORD_ENV})


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The production profile, provisioned."""
    running = start_profile(tmp_path)
    try:
        await provision_bus([running.url("provision")])
        yield running
    finally:
        running.stop()


@dataclass
class Conn:
    """A connection as one user, with the asynchronous errors the server sent it."""

    user: str
    nc: NATS
    errors: list[Exception] = field(default_factory=list)

    def permission_errors(self) -> list[str]:
        return [str(error) for error in self.errors if "permissions violation" in str(error).lower()]

    async def refused(self, kind: str, subject: str, timeout: float = 5.0) -> bool:
        """Wait until the server refused `kind` ("publish"/"subscription") to `subject`."""
        expected = f'permissions violation for {kind} to "{subject}"'.lower()  # nats-py lower-cases it
        await self.nc.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(expected in error.lower() for error in self.permission_errors()):
                return True
            await asyncio.sleep(0.02)
        return False


Connect = Callable[..., Awaitable[Conn]]


@pytest.fixture
async def connect(server: RunningServer) -> AsyncIterator[Connect]:
    opened: list[Conn] = []

    async def connect_as(user: str) -> Conn:
        conn = Conn(user, nc=None)  # type: ignore[arg-type]

        async def on_error(exc: Exception) -> None:
            conn.errors.append(exc)

        conn.nc = await nats.connect(server.url(user), inbox_prefix=inbox_prefix(user), error_cb=on_error,
                                     allow_reconnect=False, connect_timeout=5)
        opened.append(conn)
        return conn

    yield connect_as
    for conn in opened:
        with contextlib.suppress(Exception):
            await conn.nc.close()


async def quiet(*conns: Conn) -> None:
    """Flush, give asynchronous -ERRs time to arrive, and assert none did."""
    for conn in conns:
        await conn.nc.flush()
    await asyncio.sleep(0.3)
    for conn in conns:
        assert conn.permission_errors() == [], f"{conn.user}: {conn.permission_errors()}"


async def request(conn: Conn, subject: str, payload: bytes, timeout: float = 5.0) -> Any:
    """A request, retried while nobody listens yet (a service's SUB may still be in flight
    when it reports ready)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await conn.nc.request(subject, payload, timeout=timeout)
        except nats.errors.NoRespondersError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def place(client_order_id: str) -> PlaceOrder:
    return PlaceOrder(
        client_order_id=client_order_id, venue="paper", account="demo", symbol="BTC/USDT", side=Side.BUY,
        order_type=OrderType.MARKET, quantity=Decimal("0.01"),
    )


def test_config_test_mode_accepts_the_profile_with_every_password_set() -> None:
    result = config_test(NATS_CONF, {**_base_env(), **PASSWORD_ENV})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr
    # No store dir in the file: it comes from -sd, so a test or a container picks it.
    assert not re.search(r"^\s*store_dir\s*:", NATS_CONF.read_text(), re.MULTILINE)


def test_without_a_password_the_server_refuses_to_start() -> None:
    for variable in PASSWORD_ENV:
        env = {**_base_env(), **PASSWORD_ENV}
        del env[variable]
        result = config_test(NATS_CONF, env)
        assert result.returncode != 0, variable
        assert variable in result.stdout + result.stderr


def test_the_documented_password_recipe_makes_passwords_the_server_accepts() -> None:
    recipe = re.search(r"python3 -c '([^']+)'", ENV_EXAMPLE.read_text())
    assert recipe, "deploy/env.example has no password recipe"
    passwords = [
        subprocess.run([sys.executable, "-c", recipe[1]], capture_output=True, text=True, check=True).stdout.strip()
        for _ in range(len(USERS))
    ]
    for password in passwords:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]{31,}", password), password
    env = {**_base_env(), **dict(zip(PASSWORD_ENV, passwords, strict=True))}
    result = config_test(NATS_CONF, env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_running_profile_fsyncs_every_write_and_limits_payloads(server: RunningServer) -> None:
    varz = server.monitor("/varz")
    assert varz["jetstream"]["config"]["sync_always"] is True
    assert varz["max_payload"] == 1024 * 1024
    assert varz["auth_required"] is True
    # What docker-compose.yml's health check asks.
    assert server.monitor("/healthz") == {"status": "ok"}


async def test_anonymous_unknown_users_and_wrong_passwords_are_refused(server: RunningServer) -> None:
    async def ignore(exc: Exception) -> None:
        pass

    attempts = [
        f"nats://127.0.0.1:{server.port}",
        server.url("client", "wrong-password"),
        server.url("client", PASSWORDS["risk"]),  # another user's password
        f"nats://admin:{PASSWORDS['risk']}@127.0.0.1:{server.port}",
    ]
    for url in attempts:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(url, allow_reconnect=False, connect_timeout=3, error_cb=ignore)
    ok = await nats.connect(server.url("client"), allow_reconnect=False, connect_timeout=3)
    await ok.close()


async def test_the_paper_connector_runs_with_nothing_but_its_own_permissions(
    server: RunningServer, connect: Connect, tmp_path: Path
) -> None:
    client = await connect("client")
    orders = await collect(client.nc, subjects.answers("paper", "demo"), event_decoder.decode)
    quotes: list[str] = []

    async def on_quote(msg: Any) -> None:
        quotes.append(msg.subject)

    await client.nc.subscribe("tradebus.md.paper.quote.>", cb=on_quote)
    # The fixture provisioned the streams and its durable; the connector only checks and binds them.
    async with running_connector(paper_settings(server.url("connector-paper"))):
        answer = await request(client, subjects.market_data_control("paper"), encode(ListInstruments()))
        listed = reply_decoder(Family.MARKET_DATA_CONTROL).decode(answer.data)
        assert listed.ok and "BTC/USDT" in listed.instruments
        answer = await request(client, subjects.instruments("paper"), encode(GetInstruments(symbols=["BTC/USDT"])))
        assert [i.symbol for i in reply_decoder(Family.INSTRUMENTS).decode(answer.data).instruments] == ["BTC/USDT"]
        pong = await request(client, subjects.PING, b"")
        assert decoder(Family.STATUS).decode(pong.data).service == "connector"

        risk = await connect("risk")
        command = place("via-risk-1")
        await risk.nc.jetstream().publish(
            subjects.route("paper", "demo"), encode(command), headers={"Nats-Msg-Id": command_dedupe_id(command)}
        )
        await orders.wait_for(lambda ms: any(isinstance(m, OrderFilled) for m in ms), timeout=15)
        assert isinstance(orders.messages[0], OrderAccepted)
        deadline = time.monotonic() + 10
        while not quotes and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert quotes, "no market data reached the client"
        # The operator's view, heartbeat history included (a `client` sees only live answers:
        # the whole-fleet test below runs it as `client`).
        env = {**_base_env(), "PYTHONUNBUFFERED": "1"}
        status = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tradebus.cli.main", "status", "--nats-url", server.url("operator"), "--wait", "1.5",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(status.communicate(), 30)
        assert status.returncode == 0 and not err, err.decode()
        assert "connector" in out.decode() and "paper" in out.decode()
    # The connector acked the command only after its events were stored: nothing is pending.
    connector = await connect("connector-paper")
    info = await connector.nc.jetstream(timeout=5).consumer_info("ROUTE", "connector-paper")
    assert info.num_ack_pending == 0 and info.num_pending == 0
    await quiet(client, risk, connector)
    assert server.violations() == []
    # Its heartbeats tell risk the paper venue is alive; it cannot vouch for another venue.
    connector = await connect("connector-paper")
    await connector.nc.publish(subjects.status("connector", "binance"), b"{}")
    assert await connector.refused("publish", "tradebus.status.connector.binance")


async def cli(url: str, *argv: str, timeout: float = 60) -> tuple[int, str]:
    """`tradebus ARGV --nats-url URL` as a user would run it: (exit code, stdout + stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebus.cli.main", *argv, "--nats-url", url,
        env={**_base_env(), "PYTHONUNBUFFERED": "1"}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode()


@contextlib.asynccontextmanager
async def running_fleet(services: list[Service]) -> AsyncIterator[None]:
    """Serve every service in this process; stop them all together."""
    tasks = [asyncio.create_task(service.serve(), name=service.name) for service in services]
    deadline = time.monotonic() + 30
    for service, task in zip(services, tasks, strict=True):
        while service.state is not ServiceState.READY:
            assert not task.done(), f"{service.name} exited during start-up"
            assert time.monotonic() < deadline, f"{service.name} not ready"
            await asyncio.sleep(0.02)
    try:
        yield
    finally:
        for service in services:
            service.request_stop()
        assert await asyncio.wait_for(asyncio.gather(*tasks), 60) == [0] * len(services)


async def test_the_whole_fleet_and_its_operators_run_with_nothing_but_their_own_permissions(
    server: RunningServer, connect: Connect, tmp_path: Path
) -> None:
    """connector-paper, risk, oms and audit, each as its own user (the order manager given the
    tenants file, as compose mounts it); the tenant `client` trades through the CLI, an operator
    pulls the kill switch and checks the order manager."""

    def settings(user: str) -> Settings:
        return msgspec.structs.replace(paper_settings(server.url(user)), data_dir=str(tmp_path / user))

    connector_settings = settings("connector-paper")
    connector = ConnectorService(connector_settings, venue="paper", venue_config=connector_settings.paper)
    oms_settings = msgspec.structs.replace(settings("oms"), oms=OmsConfig(tenants_file=str(TENANTS)))
    risk, oms, audit = (build_service(name, oms_settings if name == "oms" else settings(name), "paper")
                        for name in ("risk", "oms", "audit"))
    client_url, operator_url = server.url("client"), server.url("operator")
    async with running_fleet([connector, risk, oms, audit]):
        code, out = await cli(client_url, "order", "place", "--symbol", "BTC/USDT", "--side", "buy", "--qty", "0.01",
                              "--client-order-id", "e2e-1")
        assert code == 0 and "filled" in out.lower(), out
        code, out = await cli(client_url, "orders")
        assert code == 0 and "e2e-1" in out, out
        code, out = await cli(client_url, "status", "--wait", "1.5")
        assert code == 0 and all(name in out for name in ("connector", "risk", "oms", "audit")), out
        # the operator also reads the heartbeat history (services that stopped beating keep their row)
        code, out = await cli(operator_url, "status", "--wait", "1.5")
        assert code == 0 and all(name in out for name in ("connector", "risk", "oms", "audit")), out
        assert "no heartbeat history" not in out, out

        # The kill switch is the operator's, not a client's.
        code, out = await cli(client_url, "halt", "--reason", "not mine to pull")
        assert code != 0 and "refused user 'client' permission to publish to $JS.API.STREAM.INFO.KV_tradebus_risk" in out, out
        assert risk.gate.fleet_state is TradingState.ACTIVE
        code, out = await cli(operator_url, "halt", "--reason", "deploy test")
        assert code == 0, out
        deadline = time.monotonic() + 10
        while risk.gate.fleet_state is not TradingState.HALTED:
            assert time.monotonic() < deadline, "risk did not see the halt"
            await asyncio.sleep(0.05)
        code, out = await cli(client_url, "order", "place", "--symbol", "BTC/USDT", "--side", "buy", "--qty", "0.01",
                              "--client-order-id", "e2e-2")
        assert code == 1 and "halted" in out.lower(), out
        operator = await connect("operator")
        answer = await request(operator, subjects.RISK_CONTROL, encode(SetTradingState(state=TradingState.ACTIVE)))
        assert reply_decoder(Family.RISK_CONTROL).decode(answer.data).fleet is TradingState.ACTIVE
        code, out = await cli(operator_url, "halt", "--reducing-only")
        assert code == 0, out
        code, out = await cli(operator_url, "resume", "--reason", "done")
        assert code == 0, out
        code, out = await cli(operator_url, "risk", "limits")  # risk reads connector heartbeats to answer orders
        assert code == 0 and "[defaults]" in out, out

        deadline = time.monotonic() + 20
        while True:  # the order manager catches up with the events, then a rebuild agrees with it
            code, out = await cli(operator_url, "oms", "rebuild")
            if code == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert code == 0 and "no differences" in out, out

    # The one refusal: the client's halt, at its first step (finding the trading-state bucket).
    assert server.violations() == ["TENANT_CLIENT/user:client Publish $JS.API.STREAM.INFO.KV_tradebus_risk"]


async def test_risk_and_the_connector_take_their_consumers_over_with_nothing_but_their_own_permissions(
    server: RunningServer, connect: Connect, tmp_path: Path
) -> None:
    """A predecessor that died holding a command (pulled, never acknowledged) after its last
    heartbeat: its successor reads that heartbeat, re-creates the provisioned durable from its
    ack floor and handles the command at once, not after the ack wait."""

    def settings(user: str) -> Settings:
        return msgspec.structs.replace(paper_settings(server.url(user)), data_dir=str(tmp_path / user))

    client, router = await connect("client"), await connect("risk")
    for user, service, stream, durable in (("connector-paper", "connector", "ROUTE", "connector-paper"),
                                           ("risk", "risk", "CMD", "risk")):
        predecessor = await connect(user)
        js = predecessor.nc.jetstream(timeout=5)
        killed = time.time_ns() - 10 * 10**9  # its last heartbeat, 10 s ago
        gone = ServiceStatus(service=service, instance="paper" if service == "connector" else "main",
                             state=ServiceState.READY, version="test", pid=1, started_at=killed, ts_event=killed,
                             heartbeat_ms=200)
        await predecessor.nc.publish(subjects.status(gone.service, gone.instance), encode(gone))
        if stream == "ROUTE":
            await router.nc.jetstream(timeout=5).publish(
                subjects.route("paper", "demo"), encode(place("held-by-connector")),
                headers={"Nats-Msg-Id": command_dedupe_id(place("held-by-connector"))})
        else:
            await client.nc.jetstream(timeout=5).publish(subjects.command("paper", "demo"), encode(place("held-by-risk")),
                                                         headers={"Nats-Msg-Id": command_dedupe_id(place("held-by-risk"))})
        pulled = await (await js.pull_subscribe_bind(durable=durable, stream=stream)).fetch(1, timeout=5)
        assert len(pulled) == 1
        await quiet(predecessor)
        await predecessor.nc.close()

    events = await collect(client.nc, subjects.answers("paper", "demo"), event_decoder.decode)
    connector_settings = settings("connector-paper")
    connector = ConnectorService(connector_settings, venue="paper", venue_config=connector_settings.paper)
    started = time.monotonic()
    async with running_fleet([connector, build_service("risk", settings("risk"), "paper")]):
        await events.wait_for(lambda ms: {m.client_order_id for m in ms if isinstance(m, OrderFilled)}
                              >= {"held-by-connector", "held-by-risk"}, timeout=20)
        assert time.monotonic() - started < 10, "a held command waited for its consumer's ack wait"
    assert server.violations() == []


async def test_the_order_manager_reads_route_and_events_by_direct_get_and_a_client_cannot(
        server: RunningServer, connect: Connect) -> None:
    """The order manager's start-up catch-up reads what its durables delivered unacknowledged."""
    risk, oms, client = [await connect(user) for user in ("risk", "oms", "client")]
    ack = await risk.nc.jetstream(timeout=5).publish("tradebus.route.paper.demo", encode(place("direct-1")))
    read = [m async for m in read_stored(oms.nc, "ROUTE", "tradebus.route.>", 1, ack.seq)]
    assert [(m.subject, m.seq, msgspec.json.decode(m.data)["client_order_id"]) for m in read] == [
        ("tradebus.route.paper.demo", ack.seq, "direct-1")]
    assert [m async for m in read_stored(oms.nc, "EVENTS", "tradebus.evt.>", 1, 10)] == []
    await quiet(oms)
    with pytest.raises(TimeoutError):
        [m async for m in read_stored(client.nc, "ROUTE", "tradebus.route.>", 1, ack.seq, timeout=1)]
    assert await client.refused("publish", "$JS.API.DIRECT.GET.ROUTE")


async def test_the_cluster_example_runs_replicated_streams(tmp_path: Path) -> None:
    """Three local nodes from cluster-r3.conf.example; `provision` creates the streams with
    TRADEBUS_STREAMS__REPLICAS=3 and a service uses them through every node's URL."""
    # what its comments tell the operator to do, as done below
    assert "TRADEBUS_STREAMS__REPLICAS=3" in CLUSTER_EXAMPLE.read_text()
    assert "tradebus provision" in CLUSTER_EXAMPLE.read_text()
    shutil.copy(NATS_CONF, tmp_path / "nats-server.conf")
    shutil.copy(CLUSTER_EXAMPLE, tmp_path / "cluster-r3.conf")
    route_password = strong_password()
    cluster_ports = [free_port() for _ in range(3)]
    routes = ", ".join(f"nats://route:{route_password}@127.0.0.1:{port}" for port in cluster_ports)
    env = {**_base_env(), **PASSWORD_ENV, "TRADEBUS_NATS_PASSWORD_ROUTE": route_password,
           "TRADEBUS_NATS_ROUTES": f"[{routes}]"}
    result = config_test(tmp_path / "cluster-r3.conf", {**env, "NATS_SERVER_NAME": "nats-1"}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    servers: list[RunningServer] = []
    try:
        for index, cluster_port in enumerate(cluster_ports, start=1):
            port, monitor_port = free_port(), free_port()
            args = ["-c", "cluster-r3.conf", "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor_port),
                    "-sd", str(tmp_path / f"js-{index}"), "--cluster", f"nats://127.0.0.1:{cluster_port}"]
            servers.append(start_server(
                args, port=port, log=tmp_path / f"nats-{index}.log", env={**env, "NATS_SERVER_NAME": f"nats-{index}"},
                cwd=tmp_path,
            ))
        deadline = time.monotonic() + 60
        while True:  # until the cluster has elected its JetStream meta leader
            try:
                await provision_bus([node.url("provision") for node in servers], StreamSettings(replicas=3))
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        # A service lists every node (TRADEBUS_NATS_URL, comma-separated) and works with its own user.
        nc = await nats.connect(servers=[node.url("risk") for node in servers], inbox_prefix=inbox_prefix("risk"),
                                connect_timeout=5)
        try:
            js = nc.jetstream(timeout=5)
            for stream in ("CMD", "ROUTE", "EVENTS", "KV_tradebus_risk"):
                info = await js.stream_info(stream)
                assert info.config.num_replicas == 3, stream
                assert info.cluster is not None and len(info.cluster.replicas or []) == 2, stream
            ack = await js.publish("tradebus.route.paper.demo", b"replicated", timeout=5)
            assert ack.stream == "ROUTE"
        finally:
            await nc.close()
        assert all(node.monitor("/varz")["jetstream"]["config"]["sync_always"] for node in servers)
    finally:
        for node in servers:
            node.stop()


# --- docker-compose.yml -------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def tradebus_services() -> dict[str, dict[str, Any]]:
    """The compose services built from deploy/Dockerfile, the one-shot `provision` included."""
    return {name: spec for name, spec in compose()["services"].items() if "build" in spec}


def fleet_services() -> dict[str, dict[str, Any]]:
    """The long-running tradebus services (`tradebus run ...`)."""
    return {name: spec for name, spec in tradebus_services().items() if name != PROVISION}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in logical]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), arguments
    return value


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":-", "-"):
            return value if value else arg
        if op in (":?", "?"):
            assert value, f"compose would refuse to start: {name} unset ({arg})"
        assert value is not None, f"{name} is unset and has no default"
        return value

    return _VARIABLE.sub(substitute, text)


def env_example() -> dict[str, str]:
    entries = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, line
            entries[key.strip()] = value.strip()
    return entries


def test_compose_starts_only_nats_its_provisioning_and_the_paper_connector_by_default() -> None:
    services = compose()["services"]
    default = {name for name, spec in services.items() if not spec.get("profiles")}
    assert default == {"nats", PROVISION, "connector-paper"}
    order_path = {name for name, spec in services.items() if "order-path" in spec.get("profiles", [])}
    assert order_path == ORDER_PATH


def test_every_tradebus_service_runs_tradebus_run_from_the_one_image() -> None:
    entrypoint = _exec_form(dict(final_stage())["ENTRYPOINT"])
    assert entrypoint == ["tradebus"]
    services = fleet_services()
    assert set(services) == {"connector-paper"} | ORDER_PATH
    for name, spec in services.items():
        build = spec["build"]
        assert (REPO / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE.resolve(), name
        assert "entrypoint" not in spec, name
        argv = entrypoint + spec["command"]
        assert argv[:2] == ["tradebus", "run"] and argv[2] in FLEET_SERVICES, (name, argv)
        if argv[2] == "connector":
            assert argv[3:] == ["--venue", name.removeprefix("connector-")]
        else:
            assert name == argv[2]
        assert spec["restart"] == "unless-stopped", name
        # nats healthy, then provisioned (a service may not create what it uses)
        assert spec["depends_on"] == {PROVISION: {"condition": "service_completed_successfully"}}, name
        assert any("/healthz" in part for part in spec["healthcheck"]["test"]), name
        assert spec["healthcheck"]["test"][0] == "CMD"


def test_the_provision_service_shapes_the_bus_once_before_the_services_start() -> None:
    spec = compose()["services"][PROVISION]
    argv = _exec_form(dict(final_stage())["ENTRYPOINT"]) + spec["command"]
    # the durable of every connector compose runs
    venues = sorted(name.removeprefix("connector-") for name in fleet_services() if name.startswith("connector-"))
    assert argv == ["tradebus", "provision", *(part for venue in venues for part in ("--venue", venue))]
    assert spec["restart"] == "no"  # a one-shot: done once it exited 0
    assert spec["depends_on"] == {"nats": {"condition": "service_healthy"}}
    assert spec["healthcheck"] == {"disable": True}  # nothing to probe; compose waits for its exit
    assert "profiles" not in spec  # whatever profile runs a service runs it first


def test_the_order_manager_reads_the_tenants_file_the_profile_was_generated_from() -> None:
    oms = compose()["services"]["oms"]
    path = oms["environment"]["TRADEBUS_OMS__TENANTS_FILE"]
    mounts = {target: (source, options) for source, target, *options in (volume.split(":") for volume in oms["volumes"])}
    source, options = mounts[path]
    assert (REPO / source).resolve() == TENANTS.resolve() and options == ["ro"]
    assert f"--tenants {TENANTS.relative_to(REPO)} " in NATS_CONF.read_text()
    for tenant in load_tenants(TENANTS):
        assert tenant.name in USERS, f"tenant {tenant.name} has no user in nats-server.conf"


async def test_the_provision_service_provisions_the_profile_and_a_service_user_cannot(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What compose's `provision` container runs, with its environment, against the profile;
    before it, a service refuses to start (compose starts none before it succeeded)."""
    spec = compose()["services"][PROVISION]
    values = {**env_example(), **PASSWORD_ENV}
    env = {key: interpolate(str(value), values) for key, value in spec["environment"].items()}
    running = start_profile(tmp_path)

    async def provision_as(url: str) -> tuple[int, list[str]]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tradebus.cli.main", *spec["command"],
            env={**_base_env(), **env, "TRADEBUS_NATS_URL": url}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode().splitlines()

    try:
        settings = msgspec.structs.replace(paper_settings(running.url("connector-paper")), data_dir=str(tmp_path / "c"))
        connector = ConnectorService(settings, venue="paper", venue_config=settings.paper)
        assert await asyncio.wait_for(connector.serve(), 30) == EXIT_CONFIG
        assert "missing: run `tradebus provision`" in caplog.text
        assert env["TRADEBUS_NATS_URL"] == f"nats://{PROVISION}:{PASSWORDS[PROVISION]}@nats:4222"
        code, out = await provision_as(running.url("risk"))
        assert code != 0 and "refused user 'risk' permission" in "\n".join(out), out
        code, out = await provision_as(running.url(PROVISION))
        assert code == 0 and len(out) == 13 and all(line.endswith(": created") for line in out), out
        assert "consumer ROUTE/connector-paper: created" in out, out
        code, out = await provision_as(running.url(PROVISION))  # compose runs it at every `up`
        assert code == 0 and len(out) == 13 and all(line.endswith(": kept") for line in out), out
    finally:
        running.stop()


def test_every_compose_service_has_a_health_check() -> None:
    for name, spec in compose()["services"].items():
        if name in ("nats-exporter", "prometheus", PROVISION):
            continue  # third-party monitoring images nothing depends on; a one-shot (its exit code tells)
        assert spec.get("healthcheck", {}).get("test"), name


def test_the_container_environment_is_valid_tradebus_settings() -> None:
    values = {**env_example(), **PASSWORD_ENV}
    streams = set()
    for name, spec in tradebus_services().items():
        environment = spec["environment"]
        assert isinstance(environment, dict), f"{name}: write environment as a mapping"
        assert "env_file" not in spec, f"{name}: an env file would hand it every password"
        for key in environment:
            assert key.startswith("TRADEBUS_") or key in CONTAINER_ENV_OUTSIDE_TRADEBUS, (name, key)
        resolved = {key: interpolate(str(value), values) for key, value in environment.items()}
        # Exactly what the service will do with them: unknown keys or bad values fail here.
        settings = load_settings(env=resolved)
        if name != PROVISION:
            assert (settings.http_host, settings.http_port) == ("0.0.0.0", 8080), name
        assert name in USERS, f"{name} has no NATS user in nats-server.conf"
        assert settings.nats_url == f"nats://{name}:{PASSWORDS[name]}@nats:4222", name
        streams.add(settings.streams)
    # `provision` creates the streams with the replicas every service is told about
    assert len(streams) == 1


def test_the_compose_file_holds_no_secrets() -> None:
    text = COMPOSE_FILE.read_text()
    # Every credential in a URL is a variable.
    for match in re.finditer(r"://([^:/@\s]+):([^@\s]+)@", text):
        assert match[2].startswith("${TRADEBUS_NATS_PASSWORD_"), match[0]
    services = compose()["services"]
    for name, spec in services.items():
        for key, value in (spec.get("environment") or {}).items():
            if "PASSWORD" in key or "SECRET" in key or "TOKEN" in key:
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:\?[^}]*)?\}", str(value)), (name, key)
    # And deploy/env.example ships none either.
    for key, value in env_example().items():
        if "PASSWORD" in key:
            assert value == "", key


def test_compose_variables_are_all_in_env_example_and_passwords_are_required() -> None:
    example = env_example()
    text = "\n".join(line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    used = {match["name"]: match["op"] for match in _VARIABLE.finditer(text)}
    assert set(used) <= set(example), set(used) - set(example)
    for name, op in used.items():
        if name.startswith("TRADEBUS_NATS_PASSWORD_"):
            assert op == ":?", f"{name} must be required (${{{name}:?...}})"
        else:
            assert op in (":-", "-"), f"{name} needs a default"
    assert set(PASSWORD_ENV) <= set(used)


def test_the_nats_service_runs_the_profile_with_a_persistent_store() -> None:
    nats_service = compose()["services"]["nats"]
    image, _, tag = nats_service["image"].partition(":")
    assert image == "nats"
    major, minor = (int(part) for part in re.match(r"(\d+)\.(\d+)", tag).groups())  # type: ignore[union-attr]
    assert (major, minor) >= (2, 12)
    command = nats_service["command"]
    config_path = command[command.index("--config") + 1]
    store_dir = command[command.index("--store_dir") + 1]
    mounts = [volume.split(":") for volume in nats_service["volumes"]]
    sources = {target: source for source, target, *_ in mounts}
    assert (REPO / sources[config_path]).resolve() == NATS_CONF.resolve()
    named = {target for source, target, *_ in mounts if source in compose()["volumes"]}
    assert any(store_dir == target or store_dir.startswith(target.rstrip("/") + "/") for target in named)
    assert set(nats_service["environment"]) == set(PASSWORD_ENV)
    for value in nats_service["environment"].values():
        assert str(value).startswith("${TRADEBUS_NATS_PASSWORD_")
    for port in nats_service["ports"]:
        assert str(port).startswith("127.0.0.1:"), port
    assert "/healthz" in " ".join(nats_service["healthcheck"]["test"])


def _compose_command() -> list[str] | None:
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run([*command, "version"], capture_output=True, timeout=30).returncode == 0:
                return command
    return None


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed here; the YAML checks above still ran")
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in PASSWORD_ENV.items()))
    base = [*command, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE)]
    env = _base_env()
    result = subprocess.run([*base, "--env-file", str(env_file), "config"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    url = rendered["services"]["connector-paper"]["environment"]["TRADEBUS_NATS_URL"]
    assert url == f"nats://connector-paper:{PASSWORDS['connector-paper']}@nats:4222"
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = subprocess.run([*base, "--env-file", str(empty), "config"], capture_output=True, text=True,
                             env=env, timeout=60)
    assert missing.returncode != 0 and "TRADEBUS_NATS_PASSWORD_" in missing.stdout + missing.stderr


# --- deploy/Dockerfile ----------------------------------------------------------------------


def test_the_dockerfile_builds_one_non_root_image_for_every_service() -> None:
    instructions = dockerfile_instructions()
    args = dict(arg.split("=", 1) for name, arg in instructions if name == "ARG" and "=" in arg)
    stages = [arg for name, arg in instructions if name == "FROM"]
    for stage in stages:
        image = stage.split()[0].replace("${PYTHON_VERSION}", args["PYTHON_VERSION"])
        assert image == "python:3.11-slim", stage
    assert "EXTRAS" in {arg.split("=", 1)[0] for name, arg in instructions if name == "ARG"}
    final = final_stage()
    users = [arg for name, arg in final if name == "USER"]
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    assert _exec_form(dict(final)["ENTRYPOINT"]) == ["tradebus"]
    assert _exec_form(dict(final)["CMD"]) == ["run", "connector", "--venue", "paper"]
    healthcheck = dict(final)["HEALTHCHECK"]
    assert "urllib" in healthcheck and "/healthz" in healthcheck
    environment = " ".join(arg for name, arg in final if name == "ENV")
    assert "TRADEBUS_HTTP_PORT=8080" in environment and "TRADEBUS_HTTP_HOST=0.0.0.0" in environment
    settings_env = dict(re.findall(r"(TRADEBUS_\w+)=(\S+)", environment))
    load_settings(env=settings_env)  # valid settings
    assert any(name == "RUN" and "pip install" in arg for name, arg in instructions)


def _healthcheck_argv() -> list[str]:
    healthcheck = dict(final_stage())["HEALTHCHECK"]
    return _exec_form(healthcheck[healthcheck.index("CMD") + len("CMD"):].strip())


def test_the_image_and_compose_probe_the_same_way() -> None:
    argv = _healthcheck_argv()
    for name, spec in fleet_services().items():
        assert spec["healthcheck"]["test"] == ["CMD", *argv], name


async def test_the_health_probe_passes_only_while_the_service_is_live() -> None:
    live = True
    health = HealthServer(host="127.0.0.1", port=0, registry=ServiceMetrics("probe").registry,
                          is_live=lambda: live, is_ready=lambda: True)
    await health.start()
    argv = _healthcheck_argv()

    async def probe(port: int) -> int:
        process = await asyncio.create_subprocess_exec(
            *argv, env={**_base_env(), "TRADEBUS_HTTP_PORT": str(port)},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        return await asyncio.wait_for(process.wait(), 20)

    try:
        assert await probe(health.port) == 0
        live = False
        assert await probe(health.port) != 0  # 503
    finally:
        await health.stop()
    assert await probe(health.port) != 0  # nothing listening


def test_the_extras_build_argument_selects_optional_dependencies() -> None:
    expression = re.search(r'"(\.\$\{EXTRAS:\+\[\$\{EXTRAS\}\]\})"', DOCKERFILE.read_text())
    assert expression, "pip install target not found"
    for extras, target in (("", "."), ("parquet", ".[parquet]"), ("parquet,bench", ".[parquet,bench]")):
        out = subprocess.run(["sh", "-c", f'printf %s "{expression[1]}"'], env={"EXTRAS": extras},
                             capture_output=True, text=True, check=True).stdout
        assert out == target


def _build_context_paths() -> list[str]:
    """The allow-list of .dockerignore (`*` then `!path` lines)."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", ".dockerignore should exclude everything, then allow what the build needs"
    return [line[1:].rstrip("/") for line in lines if line.startswith("!")]


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_secrets() -> None:
    allowed = _build_context_paths()
    for secret in (".env", ".git", ".venv", "deploy", "tests"):
        assert secret not in allowed
    copied = []
    for name, arg in dockerfile_instructions():
        if name == "COPY" and not arg.startswith("--from"):
            copied += arg.split()[:-1]
    assert copied
    for source in copied:
        assert (REPO / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is copied but excluded by .dockerignore"


def test_the_package_builds_from_the_image_build_context(tmp_path: Path) -> None:
    """What `pip install .` does in the image, with only the files .dockerignore lets through."""
    pytest.importorskip("hatchling", reason="hatchling (the build backend) is not installed in this environment")
    context = tmp_path / "context"
    context.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    for path in _build_context_paths():
        source = REPO / path
        if source.is_dir():
            shutil.copytree(source, context / path, ignore=ignore)
        else:
            shutil.copy(source, context / path)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "wheel"), str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = (tmp_path / "wheel").glob("tradebus-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for module in ("tradebus/cli/main.py", "tradebus/shared/service.py", "tradebus/schemas/subjects.py",
                   "tradebus/services/connector/service.py"):
        assert module in names
    assert "tradebus = tradebus.cli.main:main" in entry_points
    assert not [name for name in names if "/venues/_template/" in name], "the venue template is no venue to ship"


# --- Prometheus, docs -----------------------------------------------------------------------


def test_prometheus_scrapes_every_tradebus_service_and_nats() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    services = compose()["services"]
    targets = [
        target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    ]
    hosts = {target.split(":")[0]: int(target.split(":")[1]) for target in targets}
    for name in fleet_services():
        assert hosts.get(name) == 8080, name
    for host in hosts:
        assert host in services, host
    mounted = [volume.split(":")[0] for volume in services["prometheus"]["volumes"]]
    assert (REPO / mounted[0]).resolve() == PROMETHEUS.resolve()


def test_the_readme_documents_users_profiles_and_durability() -> None:
    text = README.read_text()
    for user in USERS:  # services, tenants, operator, readonly, provision
        assert f"`{user}`" in text, user
    first_cells = [line.split("|")[1] for line in text.splitlines() if line.startswith("| `")]
    for name in compose()["services"]:
        assert any(f"`{name}`" in cell for cell in first_cells), f"compose service {name} missing from the README's table"
    # how the profile is made, exactly as its header says, and where tenants come from
    generated_by = re.search(r"^#\s+(tradebus nats-config .+)$", NATS_CONF.read_text(), re.MULTILINE)
    assert generated_by and generated_by[1] in text
    for needle in ("sync_interval: always", "TRADEBUS_STREAMS__REPLICAS=3", "order-path", "docker compose up",
                   "deploy/env.example", "prometheus.yml", "deploy/tenants.toml", "TRADEBUS_OMS__TENANTS_FILE",
                   " ".join(["tradebus", *compose()["services"][PROVISION]["command"]]),
                   "service_completed_successfully", "docs/security.md"):
        assert needle in text, needle
