"""The nats-server configuration of a secured fleet, generated from the fleet's description.

One generator for every deployment: `tradebus up --secure` writes a configuration with fresh
passwords into its data dir, and deploy/nats/nats-server.conf is this generator's output with
passwords read from the server's environment (`tradebus nats-config`). The grants themselves
are data in natsgrants.py; this module lays them out as accounts, users, exports and imports:

- FLEET holds JetStream and the fleet's users. It exports to each tenant exactly that
  tenant's subjects, to READONLY the read side, and nothing else.
- A tenant's account imports its subjects; its publish acks and replies come back into the
  tenant's own account, whatever reply subject the tenant chose.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from .natsgrants import FLEET_ACCOUNT, Grants, Import, OutsideAccount, fleet_grants, readonly_account, tenant_account
from .tenants import Tenant

PasswordOf = Callable[[str], str]
"""The password entry of a user, as the configuration writes it (a literal or a $VARIABLE)."""


@dataclass(frozen=True)
class TlsFiles:
    cert: str
    key: str
    ca: str = ""
    verify_clients: bool = False  # mutual TLS: every client presents a certificate signed by `ca`


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 4222
    monitor_host: str = "127.0.0.1"  # the monitoring endpoints have no authentication
    monitor_port: int = 8222  # 0: no monitoring endpoint


@dataclass(frozen=True)
class FleetSecurity:
    venues: tuple[str, ...]
    tenants: tuple[Tenant, ...]
    listen: Listen = Listen()
    tls: TlsFiles | None = None

    def outside_accounts(self) -> tuple[OutsideAccount, ...]:
        tenants = tuple(tenant_account(tenant.name, tuple((pair.venue, pair.account) for pair in tenant.accounts))
                        for tenant in self.tenants)
        return (*tenants, readonly_account())

    def users(self) -> tuple[str, ...]:
        """Every user of the configuration, fleet first."""
        return (*fleet_grants(self.venues), *(outside.user for outside in self.outside_accounts()))


def password_from_environment(user: str) -> str:
    """`$TRADEBUS_NATS_PASSWORD_<USER>`: nats-server resolves it when it reads the file, and
    refuses to start when it is not set."""
    return "$" + password_variable(user)


def password_variable(user: str) -> str:
    return "TRADEBUS_NATS_PASSWORD_" + user.upper().replace("-", "_")


def _quoted(items: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def _permissions(grants: Grants) -> str:
    publish = f"allow: {_quoted(grants.publish)}"
    if grants.deny_publish:
        publish += f", deny: {_quoted(grants.deny_publish)}"
    text = f"{{publish: {{{publish}}}, subscribe: {{allow: {_quoted(grants.subscribe)}}}"
    if grants.allow_responses:
        text += ", allow_responses: {max: 1, expires: \"1m\"}"
    return text + "}"


def _user(user: str, password: str, grants: Grants) -> str:
    return f"      {{user: {json.dumps(user)}, password: {password}, permissions: {_permissions(grants)}}}"


def _exports(outside: tuple[OutsideAccount, ...]) -> list[str]:
    """Each subject FLEET offers, to exactly the accounts that import it."""
    takers: dict[tuple[str, str, str], list[str]] = {}
    for account in outside:
        for item in account.imports:
            takers.setdefault((item.kind, item.subject, item.responses), []).append(account.account)
    lines = []
    for (kind, subject, responses), accounts in takers.items():
        answer = f", response_type: {responses}" if kind == "service" and responses != "singleton" else ""
        lines.append(f"      {{{kind}: {json.dumps(subject)}{answer}, accounts: {_quoted(accounts)}}}")
    return lines


def _import(item: Import) -> str:
    target = f"{{account: {FLEET_ACCOUNT}, subject: {json.dumps(item.subject)}}}"
    local = f", to: {json.dumps(item.local)}" if item.local else ""
    return f"      {{{item.kind}: {target}{local}}}"


def render(fleet: FleetSecurity, password_of: PasswordOf, *, header: str = "") -> str:
    outside = fleet.outside_accounts()
    listen = fleet.listen
    parts = [header.rstrip() + "\n" if header else "",
             f"host: {json.dumps(listen.host)}\nport: {listen.port}\n"]
    if listen.monitor_port:
        parts.append(f"http: {json.dumps(f'{listen.monitor_host}:{listen.monitor_port}')}\n")
    parts.append(_TUNING)
    if fleet.tls is not None:
        parts.append(_tls(fleet.tls))
    fleet_users = "\n".join(_user(user, password_of(user), grants) for user, grants in fleet_grants(fleet.venues).items())
    parts.append(f"accounts {{\n  {FLEET_ACCOUNT} {{\n    jetstream: enabled\n    users: [\n{fleet_users}\n    ]\n"
                 f"    exports: [\n" + "\n".join(_exports(outside)) + "\n    ]\n  }\n")
    for account in outside:
        parts.append(f"  {account.account} {{\n    users: [\n{_user(account.user, password_of(account.user), account.grants)}\n"
                     f"    ]\n    imports: [\n" + "\n".join(_import(item) for item in account.imports) + "\n    ]\n  }\n")
    parts.append("}\n")
    return "".join(parts)


def _tls(tls: TlsFiles) -> str:
    lines = [f"  cert_file: {json.dumps(tls.cert)}", f"  key_file: {json.dumps(tls.key)}"]
    if tls.ca:
        lines.append(f"  ca_file: {json.dumps(tls.ca)}")
    if tls.verify_clients:
        lines.append("  verify: true")
    lines.append("  timeout: 2")
    return "tls {\n" + "\n".join(lines) + "\n}\n"


_TUNING = """
# 1 MB is NATS' default: every message of the contract is far below it.
max_payload: 1MB
max_connections: 10000
# A client that stops reading is cut off instead of growing the server's memory.
write_deadline: "10s"
# On SIGUSR2 (lame duck mode) clients are moved away gradually before shutdown.
lame_duck_duration: "30s"
lame_duck_grace_period: "10s"

jetstream {
  # store_dir comes from `-sd DIR` (nats-server refuses both). fsync every write before
  # acknowledging it: a published order command or fill must survive a power loss.
  sync_interval: always
  max_memory_store: 256MB
}

"""
