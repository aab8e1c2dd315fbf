"""Connecting with credentials over TLS, against a real nats-server with accounts, users and
a `tls` block, and being told plainly when the bus says no: a wrong password, an untrusted
certificate, a missing client certificate, a refused publish or request, a credentials file
that is not private. No password may appear in any message."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import nats.errors
import pytest

from tradebus.client import BusRefused, Client, PermissionRefused, TlsFiles
from tradebus.schemas.codecs import convert
from tradebus.schemas.commands import PlaceOrder
from tradebus.shared.bus import Bus
from tradebus.shared.busaccess import connect_bus
from tradebus.shared.bustls import tls_context
from tradebus.shared.config import EXIT_CONFIG, Secret
from tradebus.shared.credentials import Credentials, write_credentials
from tradebus.shared.natsserver import NatsServer, free_port
from tradebus.shared.service import RuntimeSettings, Service

from .helpers import running_service
from .test_cli import whole_fleet
from .tlscerts import TlsCertificates, generate

TRADEBUS = [sys.executable, "-m", "tradebus.cli.main"]
FLEET_PASSWORD = "fleetPassw0rdNeverShown"
ALPHA_PASSWORD = "alphaPassw0rdNeverShown"
ECHO = "tradebus.ctl.echo"  # answered by the fleet identity; the tenant may ask it
EXIT_NOPERM = 77


class SecuredBus(NamedTuple):
    server: NatsServer
    certs: TlsCertificates
    fleet: Path  # credentials files
    alpha: Path

    @property
    def url(self) -> str:
        return self.server.url

    def mutual(self) -> TlsFiles:
        return TlsFiles(ca=str(self.certs.ca), cert=str(self.certs.client_cert), key=str(self.certs.client_key))


def _config(certs: TlsCertificates, *, verify: bool) -> str:
    """A fleet account with JetStream: the service identity (`fleet`) and a tenant (`alpha`)
    that may send its own commands and ask `ECHO`, nothing else; each reads only its inboxes."""
    return f"""
tls {{
  cert_file: "{certs.server_cert}"
  key_file: "{certs.server_key}"
  ca_file: "{certs.ca}"
  verify: {str(verify).lower()}
  timeout: 2
}}
accounts {{
  FLEET {{
    jetstream: enabled
    users: [
      {{user: fleet, password: "{FLEET_PASSWORD}",
        permissions: {{publish: {{allow: [">"]}}, subscribe: {{allow: ["_INBOX.fleet.>", "tradebus.>"]}}}}}}
      {{user: alpha, password: "{ALPHA_PASSWORD}",
        permissions: {{publish: {{allow: ["tradebus.cmd.paper.alpha", "{ECHO}", "$JS.API.INFO"]}},
                      subscribe: {{allow: ["_INBOX.alpha.>", "tradebus.evt.order.paper.alpha"]}}}}}}
    ]
  }}
}}
"""


def _secured_bus(tmp_path: Path, *, verify: bool) -> Iterator[SecuredBus]:
    certs = generate(tmp_path / "certs")
    config = tmp_path / "nats.conf"
    config.write_text(_config(certs, verify=verify))
    server = NatsServer(store_dir=tmp_path / "nats", port=free_port(), config_file=config)
    server.start()
    try:
        yield SecuredBus(server, certs, write_credentials(tmp_path / "fleet.creds", "fleet", FLEET_PASSWORD),
                         write_credentials(tmp_path / "alpha.creds", "alpha", ALPHA_PASSWORD))
    finally:
        server.stop()


@pytest.fixture
def mutual_tls_bus(tmp_path: Path) -> Iterator[SecuredBus]:
    """TLS with client certificates required (`verify: true`)."""
    yield from _secured_bus(tmp_path, verify=True)


@pytest.fixture
def tls_bus(tmp_path: Path) -> Iterator[SecuredBus]:
    """TLS without client certificates."""
    yield from _secured_bus(tmp_path, verify=False)


def _fleet(bus: SecuredBus) -> Credentials:
    return Credentials("fleet", Secret(FLEET_PASSWORD))


async def _echo(fleet: Bus) -> None:
    async def answer(msg) -> None:  # noqa: ANN001 - nats Msg
        await msg.respond(b"echo:" + msg.data)

    await fleet.nc.subscribe(ECHO, cb=answer)
    await fleet.nc.flush()


def tradebus(*args: str, bus: SecuredBus, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")}
    environment.update(TRADEBUS_NATS_URL=bus.url, PYTHONUNBUFFERED="1", **env)
    return subprocess.run([*TRADEBUS, *args], env=environment, capture_output=True, text=True, timeout=timeout)


def _no_password(*texts: str) -> None:
    for text in texts:
        assert FLEET_PASSWORD not in text and ALPHA_PASSWORD not in text, text


# --- connecting ------------------------------------------------------------------------------


async def test_a_service_bus_connects_with_credentials_over_mutual_tls_and_uses_its_own_inboxes(
        mutual_tls_bus: SecuredBus) -> None:
    bus = await Bus.connect(mutual_tls_bus.url, name="test", credentials=_fleet(mutual_tls_bus),
                            tls=mutual_tls_bus.mutual())
    try:
        await _echo(bus)
        # requests and JetStream API calls are answered on _INBOX.fleet.>, the only inboxes it may read
        assert (await bus.request(ECHO, b"hi")).data == b"echo:hi"
        await bus.js.add_stream(name="T", subjects=["tradebus.t.>"])
        ack = await bus.js.publish("tradebus.t.one", b"x")
        assert (ack.stream, ack.seq) == ("T", 1)
    finally:
        await bus.drain()


async def test_the_client_connects_with_a_credentials_file_over_tls(mutual_tls_bus: SecuredBus) -> None:
    fleet = await Bus.connect(mutual_tls_bus.url, name="fleet", credentials=_fleet(mutual_tls_bus),
                              tls=mutual_tls_bus.mutual())
    await _echo(fleet)
    try:
        async with await Client.connect(mutual_tls_bus.url, credentials=mutual_tls_bus.alpha,
                                        tls=mutual_tls_bus.mutual()) as client:
            assert (await client.nc.request(ECHO, b"hi", timeout=2)).data == b"echo:hi"
    finally:
        await fleet.drain()


class Probe(Service):
    name = "probe"


async def test_a_service_and_the_cli_connect_with_credentials_and_tls_from_settings_flags_or_environment(
        mutual_tls_bus: SecuredBus) -> None:
    certs = mutual_tls_bus.certs
    settings = RuntimeSettings(nats_url=mutual_tls_bus.url, nats_credentials=str(mutual_tls_bus.fleet),
                               nats_tls_ca=str(certs.ca), nats_tls_cert=str(certs.client_cert),
                               nats_tls_key=str(certs.client_key), heartbeat_interval=0.2)
    async with running_service(Probe(settings, instance="one")):
        flags = await asyncio.to_thread(
            tradebus, "status", "--wait", "0.5", "--credentials", str(mutual_tls_bus.fleet), "--tls-ca", str(certs.ca),
            "--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key), bus=mutual_tls_bus)
        environment = await asyncio.to_thread(
            tradebus, "status", "--wait", "0.5", bus=mutual_tls_bus, TRADEBUS_NATS_CREDENTIALS=str(mutual_tls_bus.fleet),
            TRADEBUS_NATS_TLS_CA=str(certs.ca), TRADEBUS_NATS_TLS_CERT=str(certs.client_cert),
            TRADEBUS_NATS_TLS_KEY=str(certs.client_key))
    for result in (flags, environment):
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert "probe.one" in result.stdout and " ready " in result.stdout, result.stdout


async def test_a_client_without_the_ca_is_refused_with_a_clear_error(tls_bus: SecuredBus) -> None:
    started = time.monotonic()
    with pytest.raises(BusRefused, match="does not trust .*--tls-ca"):
        await Client.connect(tls_bus.url, credentials=tls_bus.alpha)
    assert time.monotonic() - started < 5  # at once, not after retries (nats-py alone hangs here)
    result = tradebus("status", "--credentials", str(tls_bus.alpha), bus=tls_bus)
    assert result.returncode == EXIT_NOPERM
    assert "TLS certificate this process does not trust" in result.stderr and "Traceback" not in result.stderr


async def test_mutual_tls_refuses_a_client_without_a_certificate(mutual_tls_bus: SecuredBus) -> None:
    with pytest.raises(BusRefused, match="requires a TLS client certificate"):
        await Bus.connect(mutual_tls_bus.url, name="test", credentials=_fleet(mutual_tls_bus),
                          tls=TlsFiles(ca=str(mutual_tls_bus.certs.ca)))


async def test_a_wrong_password_is_an_authorization_error_that_never_shows_the_password(
        tls_bus: SecuredBus, tmp_path: Path) -> None:
    wrong = write_credentials(tmp_path / "wrong.creds", "alpha", FLEET_PASSWORD)  # a real password, the wrong user's
    ca = TlsFiles(ca=str(tls_bus.certs.ca))
    with pytest.raises(BusRefused) as refused:
        await Client.connect(tls_bus.url, credentials=wrong, tls=ca)
    assert "refused user 'alpha': authorization violation" in str(refused.value)
    _no_password(str(refused.value))
    with pytest.raises(BusRefused, match="requires credentials"):
        await Client.connect(tls_bus.url, tls=ca)

    result = tradebus("status", "--credentials", str(wrong), "--tls-ca", str(tls_bus.certs.ca), bus=tls_bus)
    assert result.returncode == EXIT_NOPERM and "authorization violation" in result.stderr
    service = tradebus("run", "risk", bus=tls_bus, TRADEBUS_NATS_CREDENTIALS=str(wrong),
                       TRADEBUS_NATS_TLS_CA=str(tls_bus.certs.ca), TRADEBUS_DATA_DIR=str(tmp_path / "data"))
    assert service.returncode == EXIT_CONFIG and "authorization violation" in service.stderr  # not restarted by `up`
    _no_password(result.stdout, result.stderr, service.stdout, service.stderr)


def test_a_password_in_the_url_is_never_printed(tmp_path: Path) -> None:
    url = f"nats://alpha:{ALPHA_PASSWORD}@127.0.0.1:{free_port()}"  # nothing listens there
    result = subprocess.run([*TRADEBUS, "status", "--nats-url", url], capture_output=True, text=True, timeout=30,
                            env={key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")})
    assert result.returncode == 1 and "cannot reach the bus at nats://***@127.0.0.1:" in result.stderr
    _no_password(result.stdout, result.stderr)


# --- refused operations --------------------------------------------------------------------


async def test_a_refused_request_or_publish_raises_permission_refused_naming_subject_and_user(
        tls_bus: SecuredBus) -> None:
    alpha = await Bus.connect(tls_bus.url, name="alpha", credentials=Credentials("alpha", Secret(ALPHA_PASSWORD)),
                              tls=TlsFiles(ca=str(tls_bus.certs.ca)))
    try:
        started = time.monotonic()
        with pytest.raises(PermissionRefused) as refused:
            await alpha.request("tradebus.ctl.risk", b"{}", timeout=10)
        assert str(refused.value) == "the bus refused user 'alpha' permission to publish to tradebus.ctl.risk"
        assert time.monotonic() - started < 5  # the refusal, not the request's timeout
        with pytest.raises(PermissionRefused, match="permission to publish to tradebus.route.paper.alpha"):
            await alpha.js.publish("tradebus.route.paper.alpha", b"{}")
        with pytest.raises(PermissionRefused, match="permission to publish to tradebus.evt.paper.alpha"):
            await alpha.publish_pipelined([("tradebus.evt.paper.alpha", b"{}", None)])
        assert alpha.connected  # a refusal does not cost the connection
        assert (await alpha.js.account_info()) is not None  # and what is allowed still works
    finally:
        await alpha.drain()


async def test_the_client_reports_a_refused_command_for_another_tenant(tls_bus: SecuredBus) -> None:
    async with await Client.connect(tls_bus.url, credentials=tls_bus.alpha,
                                    tls=TlsFiles(ca=str(tls_bus.certs.ca))) as client:
        command = convert({"client_order_id": "c1", "venue": "paper", "account": "beta", "symbol": "BTC/USDT",
                           "side": "buy", "order_type": "market", "quantity": "1"}, PlaceOrder)
        with pytest.raises(PermissionRefused) as refused:
            await asyncio.wait_for(client.send(command), 10)  # not JetStream's ack timeout
    assert str(refused.value) == "the bus refused user 'alpha' permission to publish to tradebus.cmd.paper.beta"


def test_the_cli_prints_a_refused_request_as_such(tls_bus: SecuredBus) -> None:
    result = tradebus("risk", "limits", "--credentials", str(tls_bus.alpha), "--tls-ca", str(tls_bus.certs.ca),
                      bus=tls_bus)
    assert result.returncode == EXIT_NOPERM
    assert result.stderr.strip() == "tradebus: the bus refused user 'alpha' permission to publish to tradebus.ctl.risk"


# --- credentials files -----------------------------------------------------------------------


@pytest.mark.parametrize("problem", ["readable by others", "empty password", "missing CA file"])
def test_a_credentials_or_tls_file_that_cannot_be_used_refuses_start(
        tls_bus: SecuredBus, tmp_path: Path, problem: str) -> None:
    path = write_credentials(tmp_path / "bad.creds", "alpha", "" if problem == "empty password" else ALPHA_PASSWORD)
    ca = str(tls_bus.certs.ca)
    if problem == "readable by others":
        path.chmod(0o644)
    elif problem == "missing CA file":
        ca = str(tmp_path / "no-such-ca.pem")
    expected = {"readable by others": "is readable by others (mode 644): chmod 600 it",
                "empty password": "`password` is missing or empty",
                "missing CA file": "cannot read the TLS CA file"}[problem]
    env = {"TRADEBUS_NATS_CREDENTIALS": str(path), "TRADEBUS_NATS_TLS_CA": ca}
    service = tradebus("run", "oms", bus=tls_bus, TRADEBUS_DATA_DIR=str(tmp_path / "data"), **env)
    assert service.returncode == EXIT_CONFIG and expected in service.stderr, service.stderr
    client = tradebus("status", bus=tls_bus, **env)
    assert client.returncode == EXIT_CONFIG and expected in client.stderr, client.stderr
    _no_password(service.stderr, client.stderr)


async def test_replies_the_identity_may_not_read_and_refused_subscriptions_are_reported(tls_bus: SecuredBus) -> None:
    reported: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        reported.append(exc)

    url = tls_bus.url.replace("nats://", f"nats://alpha:{ALPHA_PASSWORD}@")
    # The user in the URL (as docker-compose passes it) gets its answers on its own inboxes,
    # _INBOX.alpha.>: here the server's "no responders" (nobody answers ECHO in this test).
    own = await connect_bus(url, name="alpha", tls=tls_context(TlsFiles(ca=str(tls_bus.certs.ca))))
    try:
        with pytest.raises(nats.errors.NoRespondersError):
            await own.request(ECHO, b"hi", timeout=10)
    finally:
        await own.close()
    # Told to use nats-py's own inboxes (_INBOX.>), which alpha may not read.
    nc = await connect_bus(url, name="alpha", tls=tls_context(TlsFiles(ca=str(tls_bus.certs.ca))), error_cb=on_error,
                           inbox_prefix="_INBOX")
    try:
        with pytest.raises(PermissionRefused, match=r"user 'alpha' permission to subscribe to _inbox\."):
            await nc.request(ECHO, b"hi", timeout=10)
        await nc.subscribe("tradebus.evt.>")
        await nc.flush()
        deadline = time.monotonic() + 5
        while not any("subscribe to tradebus.evt.>" in str(exc) for exc in reported) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert [str(exc) for exc in reported if isinstance(exc, PermissionRefused)] == [
            "the bus refused user 'alpha' permission to subscribe to tradebus.evt.>"]
    finally:
        await nc.close()


def test_up_runs_its_fleet_with_a_credentials_file_in_the_environment(tmp_path: Path) -> None:
    """The services `tradebus up` starts inherit TRADEBUS_NATS_CREDENTIALS (an embedded bus
    without authentication takes any identity): each connects as it, on its inboxes."""
    path = write_credentials(tmp_path / "fleet.creds", "fleet", FLEET_PASSWORD)
    with whole_fleet(tmp_path, TRADEBUS_NATS_CREDENTIALS=str(path)) as fleet:
        result = subprocess.run([*TRADEBUS, "status"], env=fleet.env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and "connector.paper" in result.stdout, result.stderr
    logs = [log.read_text() for log in (tmp_path / "data" / "logs").glob("*.log")]
    assert len(logs) >= 5  # nats-server and the four services
    _no_password(*logs, fleet.output.read_text())
