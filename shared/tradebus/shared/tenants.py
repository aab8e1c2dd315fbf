"""Tenants: which client identities may trade and read which venue accounts.

A tenants file (TOML) is the one place this is written down; the NATS server configuration
is generated from it (tradebus.shared.natsconf) and the order manager reads it to answer each
tenant about its own orders only:

    [tenants.alpha]
    accounts = ["paper.demo", "binance.main"]    # <venue>.<account> pairs it trades and reads

    [tenants.beta]
    accounts = ["paper.beta"]

Each tenant is one NATS account holding one user of the same name. The bus itself keeps
tenants apart (a tenant's account imports only its own command and event subjects), so a
mistake in a service cannot leak one tenant's orders to another.
"""

from __future__ import annotations

import os
import re
import tomllib
from typing import Any

import msgspec

from .config import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

RESERVED_NAMES = frozenset({"fleet", "operator", "readonly", "system", "provision"})
"""Account and user names the fleet uses itself."""


class VenueAccount(msgspec.Struct, frozen=True, order=True):
    venue: str
    account: str

    def __str__(self) -> str:
        return f"{self.venue}.{self.account}"


class Tenant(msgspec.Struct, frozen=True):
    name: str
    accounts: tuple[VenueAccount, ...]

    def owns(self, venue: str, account: str) -> bool:
        return VenueAccount(venue, account) in self.accounts


class _TenantEntry(msgspec.Struct, forbid_unknown_fields=True):
    accounts: list[str]


class _TenantsFile(msgspec.Struct, forbid_unknown_fields=True):
    tenants: dict[str, _TenantEntry] = {}


def parse_venue_account(text: str, where: str) -> VenueAccount:
    venue, _, account = text.partition(".")
    if not (_TOKEN.match(venue) and _TOKEN.match(account)):
        raise ConfigError(f"{where}: {text!r} is not a <venue>.<account> pair (letters, digits, _ and -)")
    return VenueAccount(venue, account)


def parse_tenants(table: dict[str, Any], where: str) -> tuple[Tenant, ...]:
    try:
        parsed = msgspec.convert(table, _TenantsFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    tenants = []
    for name, entry in sorted(parsed.tenants.items()):
        if not _NAME.match(name) or name in RESERVED_NAMES:
            raise ConfigError(f"{where}: tenant name {name!r} must be lower-case letters, digits, _ or - "
                              f"(at most 32), and none of {sorted(RESERVED_NAMES)}")
        if not entry.accounts:
            raise ConfigError(f"{where}: tenant {name!r} lists no accounts")
        accounts = tuple(sorted({parse_venue_account(text, f"{where}, tenant {name!r}") for text in entry.accounts}))
        tenants.append(Tenant(name, accounts))
    return tuple(tenants)


def load_tenants(path: str | os.PathLike[str]) -> tuple[Tenant, ...]:
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read tenants file {os.fspath(path)}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"tenants file {os.fspath(path)} is not valid TOML: {exc}") from None
    return parse_tenants(table, f"tenants file {os.fspath(path)}")


def tenant_named(tenants: tuple[Tenant, ...], name: str) -> Tenant | None:
    return next((tenant for tenant in tenants if tenant.name == name), None)


def tenants_toml(tenants: tuple[Tenant, ...]) -> str:
    """`tenants` as a tenants file reads them (load_tenants(…) of the text gives them back)."""
    blocks = []
    for tenant in tenants:
        accounts = ", ".join(f'"{pair}"' for pair in tenant.accounts)
        blocks.append(f"[tenants.{tenant.name}]\naccounts = [{accounts}]\n")
    return "\n".join(blocks)
