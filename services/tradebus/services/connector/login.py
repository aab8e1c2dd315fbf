"""The daily login of a venue whose access tokens last a day, as a script can run it
(`tradebus login <venue>`; docs/venues.md "Session lifecycle").

The venues' flow has one step only a person can take: logging in on the venue's page (with
their password and second factor), which redirects to the app's redirect URL with a
one-time code. The rest is here: the code, with the app's API key and secret (from the
environment or the secrets file, as the connector reads its credentials), is exchanged for
the day's access token, which is written into the secrets file, where running connectors
pick it up (session.py). The token is never printed or logged.

Each venue says how it logs in with a LoginFlow (venues/<venue>/login.py, named by its
VenueSpec's `login`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tradebus.shared.config import ConfigError, write_secret

from .credentials import SECRETS_FILE_VARIABLE, secret_variable, secrets_file_of, venue_credentials
from .venuespecs import load, venue_spec


class LoginRefused(Exception):
    """The venue refused the exchange (its message; never the code or a secret)."""


@dataclass(frozen=True)
class LoginFlow:
    code_name: str  # what the venue calls the redirect's one-time code ("request_token")
    # The venue's login page for the app (`url`: the API root of an emulator or proxy, None:
    # the venue's own), and its redirect URL where the venue takes it as a parameter.
    login_url: Callable[[str, str | None, str | None], str]
    # (code, api key, api secret, url) -> the access token; LoginRefused if the venue says no
    exchange: Callable[[str, str, str, str | None], str]


def login_flow(venue: str) -> LoginFlow:
    spec = venue_spec(venue)
    if spec.login is None:
        raise ConfigError(f"{venue} has no login flow: its credentials do not expire daily")
    flow: LoginFlow = load(spec.login)
    return flow


def app_credentials(venue: str, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The app's API key and API secret (`<VENUE>_API_KEY`, `<VENUE>_API_SECRET`)."""
    credentials = venue_credentials(venue, env=env, secret_name="API_SECRET")
    return credentials.api_key.reveal(), credentials.api_secret.reveal()


def log_in(venue: str, code: str, *, url: str | None = None, secrets_file: str | None = None,
           env: Mapping[str, str] | None = None) -> Path:
    """Exchange `code` for the day's access token and write it into the secrets file
    (`secrets_file`, else the one TRADEBUS_SECRETS_FILE names); the file written."""
    target = Path(secrets_file) if secrets_file else secrets_file_of(env)
    if target is None:
        raise ConfigError(f"no secrets file to write the access token to: set {SECRETS_FILE_VARIABLE} "
                          f"(the file running connectors read) or give --secrets-file")
    api_key, api_secret = app_credentials(venue, env)
    token = login_flow(venue).exchange(code, api_key, api_secret, url)
    write_secret(target, secret_variable(venue), token)
    return target
