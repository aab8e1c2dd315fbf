"""Logins of an emulated venue whose access tokens last a day (Zerodha, Fyers).

The venues' flow: the user logs in on the venue's login page, which redirects to the app's
redirect URL with a one-time code (Kite's `request_token`, Fyers' `auth_code`); the app
exchanges the code, proving it holds the app's secret, for the day's access token. The code
works once and for a few minutes (Kite: "valid only for a couple of minutes and can be used
only once", kite.trade/forum/discussion/comment/40134; Fyers states no lifetime: the same
is assumed). Logging in again while the session lasts gives the same token (Kite, forum
comment 9775); once it has expired, a new one.

Emulated app: the credential an emulated account is created with is both the app's secret
and the first session's access token (so `tradebus up --emulate` starts logged in). The
control API's `expire-session` ends an account's session as the venue's expiry does: its
token is refused from then on, and the venue's streams of that session end.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from tradebus.schemas.values import RejectReason

from .venue import EmulatedVenue, Refused

CODE_LIFETIME = 120.0  # seconds a login code can be exchanged


@dataclass(frozen=True)
class _Code:
    api_key: str
    issued: float  # monotonic


class DailySessions:
    """`new_token(api_key)` makes a session's access token in the venue's format."""

    def __init__(self, venue: EmulatedVenue, new_token: Callable[[str], str]) -> None:
        self.venue = venue
        self.app_secrets = dict(venue.credentials)  # api key -> the app's secret
        self.expired: set[str] = set()  # api keys whose current token expired
        self._codes: dict[str, _Code] = {}
        self._new_token = new_token

    def login(self, api_key: str) -> str:
        """The user logged in on the venue's page: the code its redirect carries."""
        self.venue.authenticate(api_key)  # a key the venue does not know, or revoked, logs nobody in
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(api_key, time.monotonic())
        return code

    def redeem(self, code: str, api_key: str | None = None) -> str:
        """The app's exchange of a code for the access token: its api key (None where the
        code names it); Refused(AUTH_FAILED) for a code unknown, used, late or another app's.
        The caller has checked the app's proof of its secret."""
        issued = self._codes.pop(code, None)
        if issued is None or time.monotonic() - issued.issued > CODE_LIFETIME or api_key not in (None, issued.api_key):
            raise Refused(RejectReason.AUTH_FAILED, "Token is invalid or has expired.")
        if issued.api_key in self.expired:  # a new session
            self.venue.credentials[issued.api_key] = self._new_token(issued.api_key)
            self.expired.discard(issued.api_key)
        return self.venue.credentials[issued.api_key]

    def app_of(self, code: str) -> str | None:
        """The api key a code was issued to (Fyers' code names its app)."""
        issued = self._codes.get(code)
        return issued.api_key if issued is not None else None

    def check(self, api_key: str, token: str) -> str:
        """The account of a request signed with `token`: Refused(AUTH_FAILED) for a token the
        venue never gave or replaced, Refused(SESSION_EXPIRED) for the session's own token
        once it expired."""
        account = self.venue.authenticate(api_key)
        if self.venue.credentials[account] != token:
            raise Refused(RejectReason.AUTH_FAILED, "invalid access token")
        if account in self.expired:
            raise Refused(RejectReason.SESSION_EXPIRED, "access token expired")
        return account

    def expire(self, api_key: str) -> None:
        self.venue.authenticate(api_key)
        self.expired.add(api_key)
