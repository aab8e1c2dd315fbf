"""The Fyers emulator's REST market answers have the documented shape: `/data/depth` carries
every key of the documented Market Depth sample (tests/venues/fyers/corpus/payloads/depth.json),
each with the documented JSON type, and no key the sample lacks. The connector streams market
data from the data socket, but a user's own fyers-apiv3 client asks these endpoints, and the
emulator answers as Fyers does. Over real HTTP (no SDK needed: this runs in .venv)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tradebus.emulators.fyers import FyersEmulator

APP_ID = "SHAPES-100"
DOCUMENTED = json.loads((Path(__file__).parent / "fyers" / "corpus" / "payloads" / "depth.json").read_text())["body"]


def shape(value: Any) -> Any:
    """Keys and JSON types, recursively (a list by its first element)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__


@pytest.fixture
async def emulator() -> AsyncIterator[FyersEmulator]:
    emulator = FyersEmulator.create(credentials={APP_ID: FyersEmulator.issue_secret()}, tick_interval=0.02)
    assert isinstance(emulator, FyersEmulator)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


async def answer(emulator: FyersEmulator, path: str, **query: str) -> dict[str, Any]:
    headers = {"Authorization": f"{APP_ID}:{emulator.venue.credentials[APP_ID]}"}
    async with aiohttp.ClientSession() as session, session.get(f"{emulator.url}{path}", params=query,
                                                                headers=headers) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_depth_has_the_documented_shape(emulator: FyersEmulator) -> None:
    symbol = next(iter(DOCUMENTED["d"]))  # NSE:SBIN-EQ, which the emulator lists
    for _ in range(100):  # until the emulated market has a book
        body = await answer(emulator, "/data/depth", symbol=symbol, ohlcv_flag="1")
        if body["d"][symbol]["bids"]:
            break
        await asyncio.sleep(0.02)
    documented, given = shape(DOCUMENTED["d"][symbol]), shape(body["d"][symbol])
    assert given.keys() <= documented.keys(), f"keys Fyers' sample lacks: {sorted(given.keys() - documented.keys())}"
    for key in ("bids", "ask", "totalbuyqty", "totalsellqty", "ltp"):
        assert given[key] == documented[key], key


async def test_quotes_answer_each_symbol(emulator: FyersEmulator) -> None:
    body = await answer(emulator, "/data/quotes", symbols="NSE:SBIN-EQ,NSE:NOPE-EQ")
    assert body["s"] == "ok"
    by_name = {quote["n"]: quote for quote in body["d"]}
    assert by_name["NSE:NOPE-EQ"]["s"] == "error"
