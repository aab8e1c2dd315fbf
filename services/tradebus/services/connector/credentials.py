"""A venue's API credentials: from its config section, the environment or a secrets file.

The names follow the convention users bring from other systems: `BINANCE_API_KEY`,
`BINANCE_API_SECRET`, `ALPACA_API_KEY`, ... (`<VENUE>_API_KEY`, `<VENUE>_API_SECRET`,
`<VENUE>_API_PASSPHRASE` where the venue has one). A venue that signs with another secret
names it (its VenueSpec's `secret_name`: Zerodha's `ZERODHA_ACCESS_TOKEN`). Looked up in this order: the venue's
settings (`api_key = ...` in `[venues.binance]`, or TRADEBUS_VENUES__BINANCE__API_KEY),
the environment, then the dotenv-style file named by TRADEBUS_SECRETS_FILE. Values are
`Secret`s from the moment they are read: they never print and the log redactor masks them.

A token that changes daily belongs in the secrets file: a running connector can read the
file again (session.py watches it), while its environment is fixed when it starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from tradebus.shared.config import ENV_PREFIX, ConfigError, Secret, load_secrets_file

from .venuespecs import VENUE_SPECS

SECRETS_FILE_VARIABLE = f"{ENV_PREFIX}SECRETS_FILE"


class Credentials(NamedTuple):
    api_key: Secret
    api_secret: Secret
    passphrase: Secret | None = None


def venue_credentials(
    venue: str,
    *,
    api_key: Secret | None = None,
    api_secret: Secret | None = None,
    passphrase: Secret | None = None,
    env: Mapping[str, str] | None = None,
    secret_name: str | None = None,
) -> Credentials:
    """Resolve the credentials of `venue` (its secret under its spec's `secret_name` unless
    one is named); ConfigError naming the variables if missing."""
    env = os.environ if env is None else env
    prefix = venue.upper()
    secret_name = secret_name or secret_name_of(venue)
    secrets_file = secrets_file_of(env)
    from_file = load_secrets_file(secrets_file) if secrets_file else {}

    def lookup(given: Secret | None, name: str) -> Secret | None:
        if given is not None:
            return given
        if env.get(name):
            return Secret(env[name])
        return from_file.get(name)

    key = lookup(api_key, f"{prefix}_API_KEY")
    secret = lookup(api_secret, f"{prefix}_{secret_name}")
    if key is None or secret is None:
        raise ConfigError(
            f"no credentials for {venue}: set {prefix}_API_KEY and {prefix}_{secret_name} in the environment or in "
            f"the secrets file named by {SECRETS_FILE_VARIABLE}, or api_key / {secret_name.lower()} in [venues.{venue}]"
        )
    return Credentials(key, secret, lookup(passphrase, f"{prefix}_API_PASSPHRASE"))


def secret_name_of(venue: str) -> str:
    spec = VENUE_SPECS.get(venue)
    return spec.secret_name if spec is not None else "API_SECRET"


def secret_variable(venue: str, secret_name: str | None = None) -> str:
    """The variable that holds the venue's secret: `ZERODHA_ACCESS_TOKEN`."""
    return f"{venue.upper()}_{secret_name or secret_name_of(venue)}"


def secrets_file_of(env: Mapping[str, str] | None = None) -> Path | None:
    named = (os.environ if env is None else env).get(SECRETS_FILE_VARIABLE)
    return Path(named) if named else None


def secret_from_file(venue: str, *, given: Secret | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The secrets file the venue's secret is read from, or None when the settings or the
    environment give it (those win over the file and cannot change under a running process)."""
    env = os.environ if env is None else env
    if given is not None or env.get(secret_variable(venue)):
        return None
    return secrets_file_of(env)
