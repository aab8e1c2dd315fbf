"""The daily session of the venues whose access tokens last a day (Zerodha, Fyers), through
their real SDKs against their emulators, with the connector on a real nats-server:

- the venue expires the session (the emulator's expire-session answers as the venue does for
  an expired token): the connector's status says `expired` with what to do, every command is
  refused at once with `session_expired`, market streams carry a gap marker, and nothing more
  reaches the venue (counted at the emulator) while no new token comes;
- the login flow (the venue's login page -> its redirect's code -> the token exchange) writes
  a new token into the secrets file: the connector takes it without a restart, reconciles
  (an order the venue cancelled meanwhile is published cancelled), resumes its streams and
  fills a new order;
- `tradebus login` writes the token with mode 0600, keeps the file's other keys and never
  prints the token; no token ever appears in the logs or on the bus.

Fyers runs in its own environment: tests/venues/test_fyers_environment.py runs these there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
import pytest
from yarl import URL

from tradebus.emulators.server import Emulator
from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.events import CommandRejected, OrderRejected
from tradebus.schemas.market import StreamGap, StreamReconnected
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import OrderType, RejectReason, ServiceState, SessionState, Side, TimeInForce
from tradebus.services.connector.credentials import SECRETS_FILE_VARIABLE, secret_variable
from tradebus.services.connector.login import log_in, login_flow
from tradebus.services.connector.venuespecs import VENUE_SPECS, venue_spec
from tradebus.services.settings import venue_config
from tradebus.shared.natsserver import NatsServer

from ..conformance.testbed import VenueUnderTest, new_id
from ..integration.helpers import collect, market_decoder, wait_until

API_KEY, SEED = "session-key", "session-secret-7d2a"
DAILY_VENUES = [name for name, spec in VENUE_SPECS.items() if spec.login is not None and spec.in_this_environment]
CHECK_INTERVAL = 0.1  # seconds between looks at the secrets file (5 s by default)
QUIET = 2.0  # seconds of an expired session during which the venue must hear nothing


@pytest.fixture(params=DAILY_VENUES)
async def venue(request: pytest.FixtureRequest, nats_server: NatsServer, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VenueUnderTest]:
    """The venue's connector with its token in a secrets file (the one place a running
    connector reads a new token from), short session intervals, and a long probe interval."""
    name = request.param
    emulator_type = venue_spec(name).emulator_class()
    secret = emulator_type.issue_secret(SEED)  # the emulated app's secret and its first token (Fyers: a JWT)
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(f"{name.upper()}_API_KEY={API_KEY}\n{secret_variable(name)}={secret}\n"
                            f"{name.upper()}_API_SECRET={secret}\n")
    monkeypatch.setenv(SECRETS_FILE_VARIABLE, str(secrets_file))
    for variable in (f"{name.upper()}_API_KEY", secret_variable(name), f"{name.upper()}_API_SECRET"):
        monkeypatch.delenv(variable, raising=False)
    emulator = emulator_type.create(credentials={API_KEY: secret}, tick_interval=0.05)
    await emulator.start()
    nc = await nats.connect(nats_server.url)
    bed = VenueUnderTest(name, nats_server, nc, emulator, secret)
    table = {key: value for key, value in bed.settings.venues[name].items() if key not in ("api_key", "access_token")}
    table["session"] = {"token_check_interval": CHECK_INTERVAL, "expired_probe_interval": 3600.0}
    table["resilience"] = {"reconnect_delay": 0.05, "command_wait": 5.0}
    bed.settings = msgspec.structs.replace(bed.settings, venues={name: table})
    bed.config = venue_config(bed.settings, name, env={})
    try:
        await bed.watch_events()
        await bed.watch_quotes()
        yield bed
    finally:
        await nc.close()
        await emulator.stop()


def api_root(bed: VenueUnderTest) -> str:
    """The venue's API root as its login takes it (Kite's root; Fyers' /api/v3)."""
    table = bed.settings.venues[bed.venue]
    return str(table.get("rest_url") or table["api_url"])


async def login_code(bed: VenueUnderTest) -> str:
    """A person's login on the venue's page: the code its redirect carries."""
    flow = login_flow(bed.venue)
    page = flow.login_url(API_KEY, api_root(bed), "http://127.0.0.1:9/redirect")
    async with aiohttp.ClientSession() as http, http.get(page, allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        return URL(answer.headers["Location"]).query[flow.code_name]


def requests_since(emulator: Emulator, since: float) -> list[str]:
    return [operation for at, operation in emulator.venue.requests if at >= since]


async def test_an_expired_session_refuses_at_once_goes_quiet_and_a_new_token_resumes_it(
    venue: VenueUnderTest, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bus = await collect(venue.nc, "tradebus.>", bytes)
    statuses = await collect(venue.nc, subjects.status("connector", venue.venue), _status)
    market = await collect(venue.nc, subjects.market_data_filter(venue.venue), market_decoder.decode)
    emulator = venue.emulator
    assert emulator is not None
    async with venue.connector():
        instrument = venue.instrument()
        quote = await venue.quote(instrument.symbol)
        resting = venue.place(instrument, quantity=instrument.lot_size, price=venue.price(instrument, quote.bid, "0.9"))
        await venue.send(resting)
        await venue.until(resting.client_order_id, "accepted")
        assert venue.service is not None
        service = venue.service
        await wait_until(lambda: not service._executing.locked(), "the place's own reads done")

        await venue.control("POST", "expire-session", {"api_key": API_KEY})
        expired = await statuses.wait_for(lambda ss: any(_session(s) is SessionState.EXPIRED for s in ss), timeout=15)
        status = next(s for s in expired if _session(s) is SessionState.EXPIRED)
        assert status.state is ServiceState.DEGRADED
        assert f"tradebus login {venue.venue}" in status.detail and "secrets" in status.detail
        shown = await _tradebus("status", "--nats-url", venue.nats_server.url, "--wait", "0.5")
        assert "session expired" in shown and f"tradebus login {venue.venue}" in shown  # where a user looks
        await asyncio.sleep(0.5)  # streams that were mid-reconnect find the session expired

        quiet_from = time.monotonic()
        place = venue.place(instrument, quantity=instrument.lot_size, price=venue.price(instrument, quote.bid, "0.9"))
        await venue.send(place)
        (refused,) = await venue.finished(place.client_order_id, timeout=5)
        assert isinstance(refused, OrderRejected) and refused.reason is RejectReason.SESSION_EXPIRED
        assert f"tradebus login {venue.venue}" in refused.message
        await venue.send(venue.cancel(resting.client_order_id))
        cancel_refused = await venue.events.wait_for(  # type: ignore[union-attr]
            lambda es: any(isinstance(e, CommandRejected) and e.client_order_id == resting.client_order_id for e in es))
        assert next(e for e in cancel_refused if isinstance(e, CommandRejected)).reason is RejectReason.SESSION_EXPIRED
        await asyncio.sleep(QUIET)
        assert requests_since(emulator, quiet_from) == [], "an expired session kept calling the venue"
        assert any(isinstance(m, StreamGap) for m in market.messages), "market streams end with a gap marker"

        # the venue cancels the resting order while the connector cannot see it
        await venue.control("POST", "cancel", {"account": API_KEY, "client_order_id": await _resting_at_venue(venue)})
        written = await asyncio.to_thread(log_in, venue.venue, await login_code(venue), url=api_root(venue))
        assert written == Path(os.environ[SECRETS_FILE_VARIABLE])
        await statuses.wait_for(lambda ss: any(_session(s) is SessionState.REAUTHENTICATED for s in ss), timeout=10)
        await statuses.wait_for(lambda ss: bool(ss) and _session(ss[-1]) is SessionState.LOGGED_IN and ss[-1].state is
                                ServiceState.READY, timeout=15)
        await venue.until(resting.client_order_id, "cancelled")  # reconciled with the venue
        await market.wait_for(lambda ms: any(isinstance(m, StreamReconnected) for m in ms), timeout=15)
        quote = await _fresh_quote(venue, instrument.symbol)
        fills = venue.place(instrument, order_type=OrderType.LIMIT, quantity=instrument.lot_size,
                            price=venue.price(instrument, quote.ask, "1.05"), time_in_force=TimeInForce.DAY)
        await venue.send(fills)
        await venue.until(fills.client_order_id, "filled", timeout=15)

    new_token = emulator.venue.credentials[API_KEY]
    assert new_token != venue.secret
    for token in (venue.secret, new_token):
        assert token not in caplog.text
        assert not any(token.encode() in raw for raw in bus.messages)


async def test_a_connector_started_with_an_expired_token_says_so_and_trades_once_a_new_one_comes(
    venue: VenueUnderTest,
) -> None:
    """The morning after: the fleet starts before anyone logged in."""
    statuses = await collect(venue.nc, subjects.status("connector", venue.venue), _status)
    await venue.control("POST", "expire-session", {"api_key": API_KEY})
    async with venue.connector(degraded=True):
        await statuses.wait_for(lambda ss: bool(ss) and _session(ss[-1]) is SessionState.EXPIRED and ss[-1].state is
                                ServiceState.DEGRADED, timeout=10)
        symbol = venue.settings.venues[venue.venue]["symbols"][0]
        refused = PlaceOrder(client_order_id=new_id("early"), venue=venue.venue, account=venue.account, symbol=symbol,
                             side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal(1),
                             time_in_force=TimeInForce.DAY)
        await venue.send(refused)
        (rejected,) = await venue.finished(refused.client_order_id, timeout=5)
        assert isinstance(rejected, OrderRejected) and rejected.reason is RejectReason.SESSION_EXPIRED
        await asyncio.to_thread(log_in, venue.venue, await login_code(venue), url=api_root(venue))
        await statuses.wait_for(lambda ss: bool(ss) and _session(ss[-1]) is SessionState.LOGGED_IN and ss[-1].state is
                                ServiceState.READY, timeout=15)
        instrument = venue.instrument()  # listed now: the new session loaded the instruments
        quote = await venue.quote(instrument.symbol)  # and started the configured streams
        fills = venue.place(instrument, quantity=instrument.lot_size, price=venue.price(instrument, quote.ask, "1.05"),
                            time_in_force=TimeInForce.DAY)
        await venue.send(fills)
        await venue.until(fills.client_order_id, "filled", timeout=15)


async def test_login_writes_the_token_0600_keeps_other_keys_and_never_prints_it(
    venue: VenueUnderTest, tmp_path: Path,
) -> None:
    target = tmp_path / "fresh.env"
    target.write_text("# kept\nOTHER_VENUE_API_KEY=abc\n")
    target.chmod(0o644)
    await venue.control("POST", "expire-session", {"api_key": API_KEY})  # a login after expiry: a new token
    option = "--request-token" if login_flow(venue.venue).code_name == "request_token" else "--auth-code"
    command = [sys.executable, "-m", "tradebus.cli.main", "login", venue.venue, option, await login_code(venue),
               "--url", api_root(venue), "--secrets-file", str(target)]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (out + err).decode()
    assert venue.emulator is not None
    token = venue.emulator.venue.credentials[API_KEY]
    assert token != venue.secret and token.encode() not in out + err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == f"# kept\nOTHER_VENUE_API_KEY=abc\n{secret_variable(venue.venue)}='{token}'\n"
    again = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(again.communicate(), 60)
    assert again.returncode == 1 and b"refused" in err  # a code is used once
    assert token.encode() not in out + err


def _status(data: bytes) -> ServiceStatus | None:
    message = decoder(Family.STATUS).decode(data)
    return message if isinstance(message, ServiceStatus) else None


def _session(status: ServiceStatus | None) -> SessionState | None:
    return status.session.state if status is not None and status.session is not None else None


async def _resting_at_venue(venue: VenueUnderTest) -> str:
    """The emulated venue's name of the one order resting there."""
    orders = await venue.control("GET", f"orders?account={API_KEY}")
    (resting,) = [order for order in orders if order["status"] == "accepted"]
    return str(resting["client_order_id"])


async def _tradebus(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "tradebus.cli.main", *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return (out + err).decode()


async def _fresh_quote(venue: VenueUnderTest, symbol: str) -> Any:
    venue.quotes.pop(symbol, None)
    await wait_until(lambda: symbol in venue.quotes, f"a quote of {symbol} after the new session", timeout=15)
    return venue.quotes[symbol]

