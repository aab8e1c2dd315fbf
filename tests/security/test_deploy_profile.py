"""The deployment profile's own guards: its passwords, checked before nats-server reads them,
and TLS from the same generator, on a real nats-server."""

from __future__ import annotations

import os
from pathlib import Path

import nats
import nats.errors
import pytest

from tradebus.cli.secure import check_environment, deploy_config, deploy_fleet
from tradebus.shared.busaccess import BusRefused, connect_bus
from tradebus.shared.bustls import TlsFiles as ClientTls
from tradebus.shared.bustls import tls_context
from tradebus.shared.config import Secret
from tradebus.shared.credentials import Credentials, new_password
from tradebus.shared.natsconf import TlsFiles, password_variable
from tradebus.shared.natsserver import NatsServer, free_port
from tradebus.shared.tenants import load_tenants

from ..integration import tlscerts
from .securebus import VENUES, write_tenants


def _fleet(tmp_path: Path):  # noqa: ANN202
    return deploy_fleet(VENUES, load_tenants(write_tenants(tmp_path)))


def test_the_environment_check_names_each_weak_password_never_its_value(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    fleet = _fleet(tmp_path)
    env = {password_variable(user): new_password() for user in fleet.users()}
    assert check_environment(fleet, env) == 0
    env[password_variable("risk")] = ""
    env[password_variable("alpha")] = "shortpw1"
    del env[password_variable("provision")]
    assert check_environment(fleet, env) == 78
    err = capsys.readouterr().err
    assert {line.split()[1] for line in err.splitlines()} == {
        password_variable("risk"), password_variable("alpha"), password_variable("provision")}
    assert "shortpw1" not in err


def _server(tmp_path: Path, text: str, passwords: dict[str, str]) -> NatsServer:
    conf = tmp_path / "nats-server.conf"
    conf.write_text(text)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")}
    env.update({password_variable(user): password for user, password in passwords.items()})
    server = NatsServer(store_dir=tmp_path / "js", port=free_port(), config_file=conf, env=env,
                        extra_args=("-m", str(free_port())))
    server.start()
    return server


async def test_why_the_check_exists_nats_server_opens_a_user_whose_variable_is_empty(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    passwords = {user: new_password() for user in fleet.users()}
    passwords["alpha"] = ""
    server = _server(tmp_path, deploy_config(VENUES, fleet.tenants), passwords)
    try:
        nc = await nats.connect(f"nats://alpha:@127.0.0.1:{server.port}", allow_reconnect=False, connect_timeout=3)
        await nc.close()  # in: which is what check_environment refuses to let happen
    finally:
        server.stop()


async def test_the_profile_serves_mutual_tls_to_credentialed_clients_only(tmp_path: Path) -> None:
    certs = tlscerts.generate(tmp_path / "certs")
    fleet = _fleet(tmp_path)
    passwords = {user: new_password() for user in fleet.users()}
    tls = TlsFiles(str(certs.server_cert), str(certs.server_key), str(certs.ca), verify_clients=True)
    server = _server(tmp_path, deploy_config(VENUES, fleet.tenants, tls), passwords)
    alpha = Credentials("alpha", Secret(passwords["alpha"]))
    url = f"tls://127.0.0.1:{server.port}"
    try:
        with_cert = tls_context(ClientTls(ca=str(certs.ca), cert=str(certs.client_cert), key=str(certs.client_key)))
        nc = await connect_bus(url, name="tls-test", credentials=alpha, tls=with_cert, allow_reconnect=False)
        await nc.flush()
        await nc.close()
        without_cert = tls_context(ClientTls(ca=str(certs.ca)))
        with pytest.raises((BusRefused, nats.errors.Error, OSError)):
            await connect_bus(url, name="tls-test", credentials=alpha, tls=without_cert, allow_reconnect=False)
        with pytest.raises((BusRefused, nats.errors.Error, OSError)):
            await connect_bus(f"nats://127.0.0.1:{server.port}", name="plain", credentials=alpha, allow_reconnect=False)
    finally:
        server.stop()
