"""Zerodha emulated, as a new user tries it (`tradebus up --venue zerodha --emulate`: ticks
of NSE:INFY with five-level depth, a market order filled), and the emulator against the
unmodified SDK: pykiteconnect's KiteConnect for REST and KiteTicker's own parser for the
binary packets the emulator streams."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from kiteconnect import KiteConnect, KiteTicker
from kiteconnect.exceptions import TokenException
from yarl import URL

from tradebus.emulators.zerodha import ZerodhaEmulator
from tradebus.schemas.codecs import decoder
from tradebus.schemas.subjects import Family

from .test_cli import Fleet, tradebus

KEY, TOKEN = "kite-key", "kite-access-token"


def test_up_emulate_streams_infy_with_five_levels_and_fills_an_order(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, "--venue", "zerodha", "--emulate")
    try:
        fleet.wait_ready()
        fleet.wait_services(("risk", "oms", "audit", "connector.zerodha"))
        ticks = tradebus("ticks", "--venue", "zerodha", "--symbol", "NSE:INFY", "--count", "12", "--json", env=fleet.env)
        assert ticks.returncode == 0, ticks.stderr
        messages = [json.loads(line) for line in ticks.stdout.splitlines()]
        assert {m["symbol"] for m in messages} == {"NSE:INFY"}
        books = [m for m in messages if m["type"] == "book_snapshot"]
        assert books and all(len(b["bids"]) == len(b["asks"]) == 5 for b in books)
        assert all(Decimal(b["bids"][0]["price"]) < Decimal(b["asks"][0]["price"]) for b in books)

        placed = tradebus("order", "place", "--venue", "zerodha", "--account", "demo", "--symbol", "NSE:INFY",
                          "--side", "buy", "--qty", "10", "--tif", "DAY", "--json", env=fleet.env)
        assert placed.returncode == 0, placed.stdout + placed.stderr
        events = [decoder(Family.ORDER_EVENT).decode(line) for line in placed.stdout.splitlines()]
        assert events[-1].__struct_config__.tag == "filled" and events[-1].cum_quantity == 10
        assert events[-1].fill.trade_id  # the trade as Kite lists it (GET /orders/{id}/trades)
    finally:
        if fleet.process.poll() is None:
            fleet.stop()


@pytest.fixture
async def emulator() -> ZerodhaEmulator:
    emulated = ZerodhaEmulator.create(credentials={KEY: TOKEN}, tick_interval=0.05)
    await emulated.start()
    yield emulated  # type: ignore[misc]
    await emulated.stop()


async def request_token(emulator: ZerodhaEmulator, kite: KiteConnect) -> str:
    """The login page's redirect (the emulated user is logged in at once): its request_token."""
    login_url = kite.login_url().replace("https://kite.zerodha.com", emulator.url)
    async with aiohttp.ClientSession() as http, http.get(login_url, allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        redirect = URL(answer.headers["Location"])
    assert (redirect.query["action"], redirect.query["status"]) == ("login", "success")
    return redirect.query["request_token"]


async def test_the_login_flow_gives_the_access_token_and_logout_ends_it(emulator: ZerodhaEmulator) -> None:
    kite = KiteConnect(KEY, root=emulator.url)
    first = await request_token(emulator, kite)
    with pytest.raises(TokenException):  # the checksum of another secret
        await asyncio.to_thread(kite.generate_session, first, api_secret="not-the-secret")
    session = await asyncio.to_thread(kite.generate_session, first, api_secret=TOKEN)
    assert session["access_token"] == TOKEN and kite.access_token == TOKEN  # the session lasts: the same token
    with pytest.raises(TokenException):  # a request token is used once
        await asyncio.to_thread(kite.generate_session, first, api_secret=TOKEN)
    assert (await asyncio.to_thread(kite.profile))["user_id"]
    await asyncio.to_thread(kite.invalidate_access_token)
    with pytest.raises(TokenException):
        await asyncio.to_thread(kite.profile)
    session = await asyncio.to_thread(kite.generate_session, await request_token(emulator, kite), api_secret=TOKEN)
    assert session["access_token"] != TOKEN  # a new session, a new token
    assert (await asyncio.to_thread(kite.profile))["user_id"]


async def test_the_sdk_trades_against_the_emulator_in_kites_shapes(emulator: ZerodhaEmulator) -> None:
    kite = KiteConnect(KEY, access_token=TOKEN, root=emulator.url)
    rows = await asyncio.to_thread(kite.instruments, "NFO")
    assert [(r["tradingsymbol"], r["lot_size"], str(r["expiry"])) for r in rows] == [("NIFTY26DECFUT", 75, "2026-12-29")]
    order_id = await asyncio.to_thread(kite.place_order, variety="regular", exchange="NSE", tradingsymbol="INFY",
                                       transaction_type="BUY", quantity=2, product="CNC", order_type="MARKET",
                                       validity="DAY", tag="mytag")
    (order,) = await asyncio.to_thread(kite.order_history, order_id)
    assert (order["status"], order["filled_quantity"], order["tag"]) == ("COMPLETE", 2, "mytag")
    (trade,) = await asyncio.to_thread(kite.order_trades, order_id)
    assert trade["quantity"] == 2 and trade["average_price"] == order["average_price"]
    held = await asyncio.to_thread(kite.positions)
    assert [(p["exchange"], p["tradingsymbol"], p["quantity"]) for p in held["net"]] == [("NSE", "INFY", 2)]
    # Funds the account lacks: an order Kite accepts and its RMS rejects, with the reason.
    rejected_id = await asyncio.to_thread(kite.place_order, variety="regular", exchange="NFO",
                                          tradingsymbol="NIFTY26DECFUT", transaction_type="BUY", quantity=75 * 100,
                                          product="NRML", order_type="MARKET")
    (rejected,) = await asyncio.to_thread(kite.order_history, rejected_id)
    assert rejected["status"] == "REJECTED" and rejected["status_message"]
    with pytest.raises(TokenException):
        await asyncio.to_thread(KiteConnect(KEY, access_token="expired", root=emulator.url).profile)


async def test_the_ticker_streams_packets_kiteticker_parses(emulator: ZerodhaEmulator) -> None:
    parser = KiteTicker(KEY, TOKEN)
    url = emulator.url.replace("http://", "ws://")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{url}/?api_key={KEY}&access_token={TOKEN}") as socket:
            for mode, length in (("ltp", 8), ("quote", 44), ("full", 184)):
                await socket.send_str(json.dumps({"a": "subscribe", "v": [408065]}))
                await socket.send_str(json.dumps({"a": "mode", "v": [mode, [408065]]}))
                while True:
                    frame = await asyncio.wait_for(socket.receive_bytes(), 10)
                    if int.from_bytes(frame[2:4], "big") == length:
                        break
                (tick,) = parser._parse_binary(frame)
                assert (tick["mode"], tick["instrument_token"], tick["tradable"]) == (mode, 408065, True)
                assert tick["last_price"] > 1000
                if mode == "full":
                    assert len(tick["depth"]["buy"]) == len(tick["depth"]["sell"]) == 5
                    assert tick["depth"]["buy"][0]["price"] < tick["depth"]["sell"][0]["price"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{url}/?api_key={KEY}&access_token=expired")
        assert refused.value.status == 403
