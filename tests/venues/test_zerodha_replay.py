"""Zerodha's recorded payloads (tests/venues/zerodha/corpus: the official samples of
zerodha/kiteconnect-mocks and the documented error envelope) through the real SDK and the
connector's own parsing: each REST body is served to pykiteconnect's KiteConnect by a
`requests` transport answering the recorded bytes, so the SDK's own request, parsing and
exceptions (and the connector's error-type hook) run as against Kite; each ticker packet is
decoded by the connector and by KiteTicker's own parser, and both agree with the decoding
Zerodha publishes beside it."""

from __future__ import annotations

import base64
import json
import struct
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from kiteconnect import KiteConnect, KiteTicker

from tradebus.services.connector.venues.zerodha import parsing, ticker

from .corpus import errors
from .test_error_replay import check

CORPUS = Path(__file__).parent / "zerodha" / "corpus"
STATE_CHANGING = frozenset({"place", "amend", "cancel"})


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / name).read_text())
    assert data["source"], f"{name} names its source"
    return data


class RecordedAnswer(requests.adapters.BaseAdapter):
    """A transport that answers every request with one recorded answer."""

    def __init__(self, body: bytes, *, status: int = 200, content_type: str = "application/json") -> None:
        super().__init__()
        self.body, self.status, self.content_type = body, status, content_type

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = requests.Response()
        response.status_code, response._content, response.url, response.request = self.status, self.body, request.url, request
        response.headers["content-type"] = self.content_type
        return response

    def close(self) -> None:
        pass


def kite(body: bytes | dict[str, Any], **answer: Any) -> tuple[KiteConnect, parsing.ErrorTypes]:
    client = KiteConnect("api-key", access_token="access-token", root="https://api.kite.trade")
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    client.reqsession.mount("https://", RecordedAnswer(raw, **answer))
    error_types = parsing.ErrorTypes()
    error_types.install(client.reqsession)
    return client, error_types


def by_tag(order: dict[str, Any]) -> str:
    return f"kite-{order['order_id']}"


def as_expected(snapshot: Any) -> dict[str, Any]:
    text = lambda value: None if value is None else str(value)  # noqa: E731
    return {"symbol": snapshot.symbol, "status": snapshot.status.value, "order_type": snapshot.order_type.value,
            "time_in_force": snapshot.time_in_force.value, "quantity": str(snapshot.quantity),
            "filled": str(snapshot.filled), "price": text(snapshot.price), "stop_price": text(snapshot.stop_price),
            "average_price": text(snapshot.average_price), "message": snapshot.message}


@pytest.mark.parametrize("recorded", errors("zerodha"), ids=lambda r: r.name)
def test_zerodha_maps_every_recorded_error_by_its_exception_name(recorded: Any) -> None:
    client, error_types = kite(recorded.body, status=recorded.http_status)
    with pytest.raises(Exception) as raised:
        client.orders()
    error = parsing.venue_error(raised.value, error_types.last, changes_state=recorded.operation in STATE_CHANGING)
    check(recorded, error)


@pytest.mark.parametrize("name", ["order-book", "order-history"])
def test_recorded_orders_read_as_the_order_states_they_are(name: str) -> None:
    recorded = load(f"orders/{name}.json")
    client, _ = kite(recorded["body"])
    orders = client.orders() if name == "order-book" else client.order_history("171229000724687")
    assert [as_expected(parsing.order_snapshot(order, by_tag)) for order in orders] == recorded["expect"]


def test_an_order_update_frame_reads_as_kiteticker_reads_it() -> None:
    recorded = load("orders/order-update.json")
    text = json.dumps(recorded["frame"])
    sdk: list[dict[str, Any]] = []
    sdk_ticker = KiteTicker("api-key", "access-token")
    sdk_ticker.on_order_update = lambda ws, data: sdk.append(data)
    sdk_ticker._parse_text_message(text)
    order = ticker.order_update(text)
    assert sdk == [order]
    assert [as_expected(parsing.order_snapshot(order, by_tag))] == recorded["expect"]
    assert ticker.order_update('{"type": "message", "data": "hello"}') is None


@pytest.mark.parametrize("name", ["trades", "order_trades"])
def test_recorded_trades_give_their_ids_prices_and_quantities(name: str) -> None:
    recorded = load(f"trades/{name}.json")
    client, _ = kite(recorded["body"])
    read = [parsing.trade_report(t) for t in (client.trades() if name == "trades" else client.order_trades("1"))]
    assert [{"trade_id": t.trade_id, "quantity": str(t.quantity), "price": str(t.price), "fee": str(t.fee),
             "fee_currency": t.fee_currency} for t in read] == recorded["expect"]
    assert all(t.ts > 0 for t in read)


def test_margins_give_the_inr_balance() -> None:
    recorded = load("account/margins.json")
    client, _ = kite(recorded["body"])
    assert [{"currency": b.currency, "total": str(b.total), "available": str(b.available)}
            for b in parsing.balances(client.margins())] == recorded["expect"]


def test_positions_and_holdings_give_one_position_per_instrument() -> None:
    recorded = load("account/positions-and-holdings.json")
    positions, _ = kite(recorded["positions"])
    holdings, _ = kite(recorded["holdings"])
    read = parsing.positions(positions.positions()["net"], holdings.holdings())
    assert [{"symbol": p.symbol, "quantity": str(p.quantity), "avg_price": str(p.avg_price)} for p in read] == recorded["expect"]


def test_the_instrument_master_gives_unified_symbols_tokens_lots_and_expiries() -> None:
    recorded = load("instruments/instruments_all.json")
    client, _ = kite((CORPUS / "instruments" / "instruments_all.csv").read_bytes(), content_type="text/csv")
    rows = parsing.instrument_rows(client.instruments())
    read = [parsing.instrument("zerodha", row) for row in rows]
    assert [{"symbol": i.symbol, "venue_symbol": i.venue_symbol, "asset_class": i.asset_class, "base": i.base,
             "tick_size": str(i.tick_size), "lot_size": str(i.lot_size),
             "expiry": i.expiry, "strike": None if i.strike is None else str(i.strike)}
            for i in read] == recorded["expect"]
    assert rows == parsing.instrument_rows((CORPUS / "instruments" / "instruments_all.csv").read_text())


def frame(*packets: bytes) -> bytes:
    return struct.pack(">H", len(packets)) + b"".join(struct.pack(">H", len(p)) + p for p in packets)


def seconds(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp())


@pytest.mark.parametrize("mode", ["quote", "full"])
def test_ticker_packets_decode_as_zerodha_and_kiteticker_decode_them(mode: str) -> None:
    recorded = load(f"ticker/{mode}.json")
    packet = base64.b64decode(recorded["packet_base64"])
    (tick,) = ticker.decode(frame(packet))
    (sdk,) = KiteTicker("api-key", "access-token")._parse_binary(frame(packet))
    expected = recorded["expect"]
    exact = lambda value: Decimal(str(value))  # noqa: E731
    assert (tick.mode, tick.instrument_token, tick.tradable) == (expected["mode"], expected["instrument_token"], True)
    assert tick.last_price == exact(expected["last_price"]) == exact(sdk["last_price"])
    assert (tick.last_quantity, tick.volume, tick.buy_quantity, tick.sell_quantity) == (
        expected["last_quantity"], expected["volume"], expected["buy_quantity"], expected["sell_quantity"])
    assert tick.average_price == exact(expected["average_price"])
    assert [tick.open, tick.high, tick.low, tick.close] == [exact(expected["ohlc"][k]) for k in ("open", "high", "low", "close")]
    if mode == "full":
        assert tick.last_trade_time == seconds(expected["last_trade_time"])
        assert tick.exchange_time == seconds(expected["timestamp"])
        assert tick.oi == expected["oi"]
        for side, levels in (("buy", tick.bids), ("sell", tick.asks)):
            assert [(level.price, level.quantity, level.orders) for level in levels] == [
                (exact(e["price"]), e["quantity"], e["orders"]) for e in expected["depth"][side]]
            assert [(exact(e["price"]), e["quantity"], e["orders"]) for e in sdk["depth"][side]] == [
                (level.price, level.quantity, level.orders) for level in levels]


def test_ltp_index_and_heartbeat_frames_decode_as_kiteticker_decodes_them() -> None:
    """The layouts the mocks hold no sample of, built from the documented structure: an ltp
    packet (8 bytes) of a currency future (segment 3: price / 10^7) and an index's full
    packet (32 bytes, segment 9: not tradable); a 1-byte frame is a heartbeat."""
    ltp = struct.pack(">II", 412675, 729_412_500)  # 412675 & 0xFF == 3: the CDS segment of USDINR21JUNFUT
    index = struct.pack(">8I", (256265 << 8) | 9, 2_400_055, 2_410_000, 2_390_000, 2_395_000, 2_392_000, 300, 1_625_462_487)
    ticks = ticker.decode(frame(ltp, index))
    sdk = KiteTicker("api-key", "access-token")._parse_binary(frame(ltp, index))
    assert [(t.mode, t.tradable, t.instrument_token) for t in ticks] == [(s["mode"], s["tradable"], s["instrument_token"]) for s in sdk]
    assert [t.last_price for t in ticks] == [Decimal("72.94125"), Decimal("24000.55")]
    assert [Decimal(str(s["last_price"])) for s in sdk] == [t.last_price for t in ticks]
    assert ticks[1].exchange_time == 1_625_462_487 and not ticks[1].tradable
    assert ticker.decode(b"\x00") == []
