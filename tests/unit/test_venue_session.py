"""The session state machine (connector/session.py) and each venue's documented expiry.
The venues themselves are tested through their SDKs and emulators in
tests/venues/test_session_lifecycle.py; here the transitions a day brings that a test run
cannot wait for (the documented expiry time) and the secrets file's edge cases."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from tradebus.schemas.control import VenueSession
from tradebus.schemas.values import ServiceState, SessionState
from tradebus.services.connector.errors import SessionExpired, VenueBusy
from tradebus.services.connector.session import SessionRules, SessionSettings, TokenSession, service_view
from tradebus.services.connector.venues.fyers import session as fyers
from tradebus.services.connector.venues.zerodha import session as zerodha
from tradebus.shared.config import Secret, write_secret

SECOND = 1_000_000_000
FAST = SessionSettings(token_check_interval=0.01, expired_probe_interval=3600.0, expiring_warning=10.0)


def ist(text: str) -> int:
    return int(datetime.fromisoformat(f"{text}+05:30").timestamp()) * SECOND


@pytest.mark.parametrize(("seen", "expiry"), [
    ("2026-12-07 09:15:00", "2026-12-08 06:00:00"),  # a token of the trading day lasts until the next morning
    ("2026-12-07 05:59:59", "2026-12-07 06:00:00"),  # one seen before 6 AM is yesterday's
    ("2026-12-07 06:00:00", "2026-12-08 06:00:00"),
])
def test_a_kite_token_ends_at_the_next_6_am_ist(seen: str, expiry: str) -> None:
    assert zerodha.expires_at("any", ist(seen)) == ist(expiry)


def test_a_fyers_token_ends_at_its_exp_claim_and_a_token_without_one_has_no_known_end() -> None:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1_796_000_000}).encode()).rstrip(b"=").decode()
    assert fyers.expires_at(f"eyJhbGciOiJIUzI1NiJ9.{claims}.sig", 0) == 1_796_000_000 * SECOND
    assert fyers.expires_at("not-a-jwt", 0) is None
    assert fyers.expires_at("a.%%%.c", 0) is None


class Venue:
    """The venue side of a session: which token signs, and what the venue says of it."""

    def __init__(self) -> None:
        self.token = ""
        self.valid: set[str] = set()
        self.checks = 0

    def use_token(self, token: str) -> None:
        self.token = token

    async def check_session(self) -> None:
        self.checks += 1
        if self.token not in self.valid:
            raise SessionExpired("token refused")


def session(venue: Venue, secrets: Path | None, *, expires_in: float | None = None,
            settings: SessionSettings = FAST) -> tuple[TokenSession, list[VenueSession]]:
    reported: list[VenueSession] = []
    end = None if expires_in is None else time.time_ns() + int(expires_in * SECOND)
    rules = SessionRules(expires_at=lambda token, seen: end, login="tradebus login demo --code <code>")
    venue.token = "day-one"
    return TokenSession(venue, venue="zerodha", account="main", token=Secret("day-one"), source=secrets, rules=rules,
                        settings=settings, report=reported.append), reported


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_near_its_documented_end_the_session_is_expiring_and_at_it_one_request_finds_it_expired() -> None:
    venue = Venue()  # takes no token: at the documented end, the venue refuses it
    tokens, reported = session(venue, None, expires_in=0.3)
    watcher = asyncio.create_task(tokens.run(resume=lambda: asyncio.sleep(0)))
    try:
        await until(lambda: tokens.state is SessionState.EXPIRED)
    finally:
        watcher.cancel()
    assert [s.state for s in reported] == [SessionState.EXPIRING, SessionState.EXPIRED]
    assert venue.checks == 1  # one look at the documented time, none while expired (probe interval: an hour)
    assert service_view(reported[0])[0] is ServiceState.READY  # expiring still trades
    state, detail = service_view(reported[-1])
    assert state is ServiceState.DEGRADED and "tradebus login demo" in detail
    assert "settings or the environment" in detail  # no secrets file: says why a new token will not be seen


async def test_a_new_token_in_the_secrets_file_is_taken_and_the_same_one_rewritten_is_not(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    write_secret(secrets, "ZERODHA_ACCESS_TOKEN", "day-one")
    venue = Venue()
    tokens, reported = session(venue, secrets)
    resumed: list[str] = []

    async def resume() -> None:
        resumed.append(venue.token)

    watcher = asyncio.create_task(tokens.run(resume=resume))
    try:
        tokens.expired("TokenException")
        write_secret(secrets, "ZERODHA_ACCESS_TOKEN", "day-one")  # rewritten, same token: nothing to try
        await asyncio.sleep(0.1)
        assert tokens.blocked and resumed == []
        write_secret(secrets, "ZERODHA_ACCESS_TOKEN", "day-two")
        await until(lambda: tokens.state is SessionState.LOGGED_IN)
    finally:
        watcher.cancel()
    assert resumed == ["day-two"] and tokens.token == "day-two"
    assert [s.state for s in reported] == [SessionState.EXPIRED, SessionState.REAUTHENTICATED, SessionState.LOGGED_IN]
    assert str(secrets) in reported[0].action


async def test_a_new_token_the_venue_refuses_leaves_the_session_expired_and_an_unreachable_venue_is_tried_again(
    tmp_path: Path,
) -> None:
    secrets = tmp_path / "secrets.env"
    write_secret(secrets, "ZERODHA_ACCESS_TOKEN", "day-one")
    venue = Venue()
    tokens, reported = session(venue, secrets)
    answers: list[Exception | None] = [SessionExpired("refused"), VenueBusy("down"), None]

    async def resume() -> None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    watcher = asyncio.create_task(tokens.run(resume=resume))
    try:
        tokens.expired("TokenException")
        write_secret(secrets, "ZERODHA_ACCESS_TOKEN", "bad")
        await until(lambda: len(reported) >= 3)
        assert tokens.blocked and "refused the new access token" in tokens.detail
        write_secret(secrets, "ZERODHA_ACCESS_TOKEN", "good")
        await until(lambda: tokens.state is SessionState.LOGGED_IN)  # unreachable once, then taken
    finally:
        watcher.cancel()
    assert answers == [] and tokens.token == "good"
