"""Fyers' login (myapi.fyers.in/docsv3 "Login flow"): GET /api/v3/generate-authcode with
client_id (the app id), redirect_uri, response_type=code and state redirects, once the user
has logged in, to redirect_uri with `auth_code`; POST /api/v3/validate-authcode with
grant_type=authorization_code, appIdHash = SHA-256("<app id>:<app secret>") and the code
answers the access token. fyers-apiv3's SessionModel builds the URL and makes the request."""

from __future__ import annotations

import secrets

from fyers_apiv3 import fyersModel

from ...login import LoginFlow, LoginRefused


def _use(url: str | None) -> None:
    if url:  # the SDK reads its base URL from the class (as the connector sets it)
        fyersModel.Config.API = url.rstrip("/")


def login_url(app_id: str, url: str | None, redirect_uri: str | None) -> str:
    if not redirect_uri:
        raise LoginRefused("Fyers' login page needs the app's redirect URL (--redirect-uri, as registered with the app)")
    _use(url)
    model = fyersModel.SessionModel(client_id=app_id, redirect_uri=redirect_uri, response_type="code",
                                    state=secrets.token_hex(8))
    page: str = model.generate_authcode()
    return page


def exchange(auth_code: str, app_id: str, app_secret: str, url: str | None) -> str:
    _use(url)
    model = fyersModel.SessionModel(client_id=app_id, secret_key=app_secret, grant_type="authorization_code")
    model.set_token(auth_code)
    try:
        answer = model.generate_token()
    except Exception as exc:  # noqa: BLE001 -- requests' errors (their texts hold URLs, not secrets; only the type is kept)
        raise LoginRefused(f"Fyers could not be reached: {type(exc).__name__}") from None
    token = answer.get("access_token") if isinstance(answer, dict) and answer.get("s") == "ok" else None
    if not token:
        raise LoginRefused(f"Fyers refused the auth code: {answer.get('message')} ({answer.get('code')})"
                           if isinstance(answer, dict) else "Fyers refused the auth code")
    return str(token)


FLOW = LoginFlow(code_name="auth_code", login_url=login_url, exchange=exchange)
