"""ccxt structures and exceptions -> shared types and the error taxonomy."""

from __future__ import annotations

from decimal import Decimal

import ccxt.async_support as ccxt
import msgspec
import pytest

from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side
from tradebus.services.connector.errors import AuthFailed, OrderRefused, OutcomeUnknown, VenueBusy
from tradebus.services.connector.tracking import OrderSnapshot
from tradebus.services.connector.venues.ccxt import parsing
from tradebus.services.connector.venues.ccxt.config import CcxtConfig
from tradebus.services.connector.venues.ccxt.connector import CcxtConnector, rebased
from tradebus.shared.config import Secret

ORDER = {
    "id": "1001", "clientOrderId": "c1", "symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": 0.3,
    "price": 60000.1, "filled": 0.1, "average": 59999.9, "status": "open", "timeInForce": "IOC",
    "lastUpdateTimestamp": 1_700_000_000_123,
    "trades": [{"id": "t9", "price": 59999.9, "amount": 0.1, "takerOrMaker": "maker", "fee": {"cost": 0.5, "currency": "USDT"}}],
}


def test_an_order_keeps_the_decimals_the_exchange_sent() -> None:
    snapshot = parsing.order_snapshot(ORDER)
    assert (snapshot.quantity, snapshot.price, snapshot.filled) == (Decimal("0.3"), Decimal("60000.1"), Decimal("0.1"))
    assert snapshot.status is OrderStatus.PARTIALLY_FILLED and snapshot.ts == 1_700_000_000_123_000_000
    assert snapshot.last_trade is not None and snapshot.last_trade.trade_id == "t9" and snapshot.last_trade.fee == Decimal("0.5")


def test_closed_means_filled_only_when_everything_filled() -> None:
    assert parsing.order_snapshot({**ORDER, "status": "closed", "filled": 0.3}).status is OrderStatus.FILLED
    assert parsing.order_snapshot({**ORDER, "status": "closed"}).status is OrderStatus.CANCELLED


def test_a_market_orders_price_is_not_a_limit() -> None:
    snapshot = parsing.order_snapshot({**ORDER, "type": "market"})
    assert snapshot.order_type is OrderType.MARKET and snapshot.price is None


def test_an_answer_with_ids_only_keeps_the_requested_terms() -> None:
    requested = OrderSnapshot(client_order_id="c2", venue_order_id="", symbol="BTC/USDT", side=Side.SELL,
                              order_type=OrderType.LIMIT, quantity=Decimal("1"), price=Decimal("70000"),
                              status=OrderStatus.ACCEPTED)
    snapshot = parsing.order_snapshot({"id": "77", "clientOrderId": "c2", "side": None}, requested)
    assert snapshot.venue_order_id == "77" and snapshot.price == Decimal("70000") and snapshot.side is Side.SELL


@pytest.mark.parametrize(
    ("exception", "changes_state", "expected"),
    [
        (ccxt.AuthenticationError("binance {\"code\":-2014,\"msg\":\"API-key format invalid.\"}"), False, AuthFailed),
        (ccxt.DDoSProtection("binance {\"code\":-2015,\"msg\":\"Invalid API-key, IP, or permissions for action.\"}"), True, AuthFailed),
        (ccxt.RateLimitExceeded("binance {\"code\":-1003,\"msg\":\"Too many requests\"}"), True, VenueBusy),
        (ccxt.RequestTimeout("binance POST https://api.binance.com/api/v3/order?signature=abc timed out"), True, OutcomeUnknown),
        (ccxt.ExchangeNotAvailable("binance 503 Service Unavailable"), True, OutcomeUnknown),
        (ccxt.ExchangeNotAvailable("binance 503 Service Unavailable"), False, VenueBusy),
    ],
)
def test_exceptions_fall_into_the_taxonomy(exception: Exception, changes_state: bool, expected: type) -> None:
    assert isinstance(parsing.venue_error(exception, changes_state=changes_state, exchange_id="binance"), expected)


def test_refusals_carry_the_shared_reason_and_no_url() -> None:
    funds = parsing.venue_error(ccxt.InsufficientFunds('binance {"code":-2010,"msg":"Account has insufficient balance for requested action."}'),
                                changes_state=True, exchange_id="binance")
    assert isinstance(funds, OrderRefused) and funds.reason is RejectReason.INSUFFICIENT_FUNDS and funds.venue_code == "-2010"
    tick = parsing.venue_error(ccxt.BadRequest('binance {"code":-1013,"msg":"Filter failure: PRICE_FILTER"}'), changes_state=True,
                               exchange_id="binance")
    assert isinstance(tick, OrderRefused) and tick.reason is RejectReason.TICK_SIZE
    # ccxt calls Bybit spot's duplicate-id code an invalid order: the code table knows better.
    duplicate = parsing.venue_error(ccxt.InvalidOrder('bybit {"retCode":170141,"retMsg":"Duplicate clientOrderId."}'),
                                    changes_state=True, exchange_id="bybit")
    assert isinstance(duplicate, OrderRefused) and duplicate.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    timeout = parsing.venue_error(ccxt.RequestTimeout("binance GET https://x/api?signature=deadbeef"), changes_state=False,
                                  exchange_id="binance")
    assert "deadbeef" not in timeout.message and "<url>" in timeout.message


def test_rebasing_moves_every_url_and_keeps_paths() -> None:
    urls = {"public": "https://api.binance.com/api/v3", "ws": {"spot": "wss://stream.binance.com:9443/ws",
                                                               "ws-api": {"spot": "wss://ws-api.binance.com:443/ws-api/v3"}}}
    moved = rebased(urls, "http://127.0.0.1:8900", "ws://127.0.0.1:8900")
    assert moved == {"public": "http://127.0.0.1:8900/api/v3", "ws": {"spot": "ws://127.0.0.1:8900/ws",
                                                                       "ws-api": {"spot": "ws://127.0.0.1:8900/ws-api/v3"}}}


def _connector(**config: object) -> CcxtConnector:
    settings = msgspec.convert({"api_key": "k", "api_secret": "s", **config}, CcxtConfig, dec_hook=lambda t, v: Secret(v))
    return CcxtConnector(venue="binance", config=settings, market_data=None, emit=lambda events: None,
                         read_journal=None)  # type: ignore[arg-type]


def test_testnet_switches_to_the_sandbox_unless_urls_are_overridden() -> None:
    assert "testnet" in _connector(testnet=True).exchange.urls["api"]["public"]
    assert "testnet" not in _connector(testnet=False).exchange.urls["api"]["public"]
    rebased_one = _connector(testnet=True, rebase={"rest": "http://127.0.0.1:1", "ws": "ws://127.0.0.1:1"})
    assert rebased_one.exchange.urls["api"]["public"] == "http://127.0.0.1:1/api/v3"


def test_an_exchange_without_a_code_table_is_mapped_by_class_and_text() -> None:
    lot = parsing.venue_error(ccxt.InvalidOrder('bitstamp {"status":"error","reason":"Invalid lot_size"}'),
                              changes_state=True, exchange_id="bitstamp")
    assert isinstance(lot, OrderRefused) and lot.reason is RejectReason.LOT_SIZE
