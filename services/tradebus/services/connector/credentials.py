"""A venue's API credentials: from its config section, the environment or a secrets file.

The names follow the convention users bring from other systems: `BINANCE_API_KEY`,
`BINANCE_API_SECRET`, `ALPACA_API_KEY`, ... (`<VENUE>_API_KEY`, `<VENUE>_API_SECRET`,
`<VENUE>_API_PASSPHRASE` where the venue has one). A venue that signs with another secret
names it (`secret_name`: Zerodha's `ZERODHA_ACCESS_TOKEN`, see its VenueSpec). Looked up in this order: the venue's
settings (`api_key = ...` in `[venues.binance]`, or TRADEBUS_VENUES__BINANCE__API_KEY),
the environment, then the dotenv-style file named by TRADEBUS_SECRETS_FILE. Values are
`Secret`s from the moment they are read: they never print and the log redactor masks them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from tradebus.shared.config import ENV_PREFIX, ConfigError, Secret, load_secrets_file

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
    secret_name: str = "API_SECRET",
) -> Credentials:
    """Resolve the credentials of `venue`; ConfigError naming the variables if missing."""
    env = os.environ if env is None else env
    prefix = venue.upper()
    secrets_file = env.get(SECRETS_FILE_VARIABLE)
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
