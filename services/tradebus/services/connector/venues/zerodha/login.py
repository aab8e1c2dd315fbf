"""Kite Connect's login (kite.trade/docs/connect/v3/user/ "Login flow"): the login page
`https://kite.zerodha.com/connect/login?v=3&api_key=<key>` redirects, once the user has
logged in, to the app's registered redirect URL with `request_token` (valid a few minutes,
once); POST /session/token with api_key, request_token and checksum = SHA-256(api_key +
request_token + api_secret) answers the access token. pykiteconnect's generate_session makes
that request (the checksum is the SDK's)."""

from __future__ import annotations

from kiteconnect import KiteConnect
from kiteconnect.exceptions import KiteException

from ...login import LoginFlow, LoginRefused

LOGIN_PAGE = "https://kite.zerodha.com/connect/login"


def login_url(api_key: str, url: str | None, redirect_uri: str | None) -> str:
    """The redirect URL is the app's setting at Kite (developers.kite.trade), not a parameter."""
    page = f"{url.rstrip('/')}/connect/login" if url else LOGIN_PAGE
    return f"{page}?v=3&api_key={api_key}"


def exchange(request_token: str, api_key: str, api_secret: str, url: str | None) -> str:
    kite = KiteConnect(api_key, root=url) if url else KiteConnect(api_key)
    try:
        session = kite.generate_session(request_token, api_secret=api_secret)
    except KiteException as exc:  # its text is Kite's message
        raise LoginRefused(f"Kite refused the request token ({type(exc).__name__}, HTTP {exc.code}): {exc}") from None
    token: str = session["access_token"]
    return token


FLOW = LoginFlow(code_name="request_token", login_url=login_url, exchange=exchange)
