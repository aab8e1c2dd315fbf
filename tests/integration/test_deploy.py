"""The deployment files.

The production NATS profile (deploy/nats/nats-server.conf, generated from deploy/tenants.toml)
runs on a real nats-server, provisioned as compose provisions it (user `provision`), and the
whole fleet (connector, risk, oms, audit, each as its own user) plus the CLI as the tenant
`client` and as `operator` runs without a permission violation in the server's log but the
one expected (a client's halt). What each identity may and may not do, subject family by
subject family, and the attacks that must fail, are tests/security's; the compose file, the
images, the Kubernetes manifests and the monitoring files are tests/deploy's. What runs here
without Docker: the provisioning container's command against the profile, and the 3-node
cluster example with replicated streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import pytest
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
from tradebus.services.settings import Settings
from tradebus.shared.config import EXIT_CONFIG
from tradebus.shared.credentials import inbox_prefix
from tradebus.shared.direct import read_stored
from tradebus.shared.natsserver import free_port, port_in_use
from tradebus.shared.service import Service
from tradebus.shared.topology import Outcome, StreamSettings, provision

from ..deploy.deployfiles import (
    CLUSTER_CONF,
    ENV_EXAMPLE,
    NATS_CONF,
    NATS_SERVER,
    PASSWORD_ENV,
    PASSWORDS,
    PROVISION,
    TENANTS,
    USERS,
    base_env,
    compose,
    compose_values,
    config_test,
    resolved_environment,
    strong_password,
)
from .helpers import collect, event_decoder, paper_settings, running_connector

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
    return start_server(args, port=port, log=tmp_path / "nats-server.log", env={**base_env(), **PASSWORD_ENV})


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
    result = config_test(NATS_CONF, {**base_env(), **PASSWORD_ENV})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr
    # No store dir in the file: it comes from -sd, so a test or a container picks it.
    assert not re.search(r"^\s*store_dir\s*:", NATS_CONF.read_text(), re.MULTILINE)


def test_without_a_password_the_server_refuses_to_start() -> None:
    for variable in PASSWORD_ENV:
        env = {**base_env(), **PASSWORD_ENV}
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
    env = {**base_env(), **dict(zip(PASSWORD_ENV, passwords, strict=True))}
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
        env = {**base_env(), "PYTHONUNBUFFERED": "1"}
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
        env={**base_env(), "PYTHONUNBUFFERED": "1"}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
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
    assert "TRADEBUS_STREAMS__REPLICAS=3" in CLUSTER_CONF.read_text()
    assert "tradebus provision" in CLUSTER_CONF.read_text()
    shutil.copy(NATS_CONF, tmp_path / "nats-server.conf")
    shutil.copy(CLUSTER_CONF, tmp_path / "cluster-r3.conf")
    route_password = strong_password()
    cluster_ports = [free_port() for _ in range(3)]
    routes = ", ".join(f"nats://route:{route_password}@127.0.0.1:{port}" for port in cluster_ports)
    env = {**base_env(), **PASSWORD_ENV, "TRADEBUS_NATS_PASSWORD_ROUTE": route_password,
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


# --- compose's provisioning, run -----------------------------------------------------------


async def test_the_provision_service_provisions_the_profile_and_a_service_user_cannot(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What compose's `provision` container runs, with its environment, against the profile;
    before it, a service refuses to start (compose starts none before it succeeded)."""
    spec = compose()["services"][PROVISION]
    env = resolved_environment(spec, compose_values())
    # One node here: the 3 replicas compose asks for need its 3-node cluster
    # (test_the_cluster_example_runs_replicated_streams provisions those).
    assert env["TRADEBUS_STREAMS__REPLICAS"] == "3"
    env["TRADEBUS_STREAMS__REPLICAS"] = "1"
    venues = spec["command"][2::2]
    running = start_profile(tmp_path)

    async def provision_as(url: str) -> tuple[int, list[str]]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tradebus.cli.main", *spec["command"],
            env={**base_env(), **env, "TRADEBUS_NATS_URL": url}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode().splitlines()

    try:
        settings = msgspec.structs.replace(paper_settings(running.url("connector-paper")), data_dir=str(tmp_path / "c"))
        connector = ConnectorService(settings, venue="paper", venue_config=settings.paper)
        assert await asyncio.wait_for(connector.serve(), 30) == EXIT_CONFIG
        assert "missing: run `tradebus provision`" in caplog.text
        assert env["TRADEBUS_NATS_URL"].split(",")[0] == f"nats://{PROVISION}:{PASSWORDS[PROVISION]}@nats-1:4222"
        code, out = await provision_as(running.url("risk"))
        assert code != 0 and "refused user 'risk' permission" in "\n".join(out), out
        code, out = await provision_as(running.url(PROVISION))
        assert code == 0 and all(line.endswith(": created") for line in out), out
        for venue in venues:  # the durable of every connector compose can run
            assert f"consumer ROUTE/connector-{venue}: created" in out, out
        code, again = await provision_as(running.url(PROVISION))  # compose runs it at every `up`
        assert code == 0 and len(again) == len(out) and all(line.endswith(": kept") for line in again), again
    finally:
        running.stop()
