"""A real nats-server running a secured fleet's configuration, and connections as its identities.

Two ways to get the configuration, both from the one generator: what `tradebus up --secure`
writes into its data dir (passwords inside), and the deployment profile (passwords from the
server's environment, as docker-compose passes them). The fleet described is small but has
what isolation needs: two venues and two tenants, one of them trading on both venues.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.client import Client as NATS

from tradebus.cli.secure import deploy_config, prepare
from tradebus.shared.credentials import load_credentials, new_password
from tradebus.shared.natsconf import password_variable
from tradebus.shared.natsserver import NatsServer, free_port
from tradebus.shared.tenants import load_tenants

VENUES = ("paper", "binance")
TENANTS_TOML = """\
[tenants.alpha]
accounts = ["paper.demo"]

[tenants.beta]
accounts = ["paper.beta", "binance.main"]
"""


@dataclass
class SecureBus:
    server: NatsServer
    passwords: dict[str, str]
    tenants_file: Path

    def url(self, user: str, password: str | None = None) -> str:
        return f"nats://{user}:{self.passwords[user] if password is None else password}@127.0.0.1:{self.server.port}"

    @asynccontextmanager
    async def connect(self, user: str) -> AsyncIterator[Identity]:
        identity = Identity(user)

        async def on_error(exc: Exception) -> None:
            identity.errors.append(str(exc).lower())

        identity.nc = await nats.connect(self.url(user), name=f"test-{user}", inbox_prefix=f"_INBOX.{user}",
                                         error_cb=on_error, allow_reconnect=False, connect_timeout=5)
        try:
            yield identity
        finally:
            await identity.nc.close()


@dataclass
class Identity:
    """A connection as one user, with the refusals the server sent it (lower-cased, as nats-py reports them)."""

    user: str
    nc: NATS = field(init=False)
    errors: list[str] = field(default_factory=list)

    def refused(self, kind: str, subject: str) -> bool:
        expected = f'permissions violation for {kind} to "{subject.lower()}"'
        return any(error.endswith(expected) for error in self.errors)

    async def settle(self, seconds: float = 0.3) -> None:
        """Let the server's refusals of what was just sent arrive."""
        await self.nc.flush()
        await asyncio.sleep(seconds)


def write_tenants(directory: Path) -> Path:
    path = directory / "tenants.toml"
    path.write_text(TENANTS_TOML)
    return path


def local_bus(tmp_path: Path) -> SecureBus:
    """What `tradebus up --secure --tenants ...` runs."""
    tenants_file = write_tenants(tmp_path)
    port = free_port()
    secure = prepare(tmp_path / "data", VENUES, "demo", str(tenants_file), port)
    passwords = {path.stem: load_credentials(path).password.reveal()
                 for path in (secure.directory / "credentials").glob("*.creds")}
    server = NatsServer(store_dir=tmp_path / "js", port=port, config_file=secure.config_file)
    server.start()
    return SecureBus(server, passwords, tenants_file)


def deploy_bus(tmp_path: Path) -> SecureBus:
    """The deployment profile for the same fleet, passwords in the server's environment."""
    tenants_file = write_tenants(tmp_path)
    conf = tmp_path / "nats-server.conf"
    conf.write_text(deploy_config(VENUES, load_tenants(tenants_file)))
    users = re_users(conf.read_text())
    passwords = {user: new_password() for user in users}
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")}
    env.update({password_variable(user): password for user, password in passwords.items()})
    server = NatsServer(store_dir=tmp_path / "js", port=free_port(), config_file=conf, env=env,
                        extra_args=("-m", str(free_port())))
    server.start()
    return SecureBus(server, passwords, tenants_file)


def re_users(text: str) -> list[str]:
    import re

    return re.findall(r'\{user: "([\w-]+)", password: \$', text)


def wait_until(condition, timeout: float = 10.0, interval: float = 0.05) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
