"""Alpaca JSON and alpaca-py exceptions to the shared types and the error taxonomy."""

from __future__ import annotations

from decimal import Decimal

import requests
from alpaca.common.exceptions import APIError

from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, TimeInForce
from tradebus.services.connector.errors import AuthFailed, OrderRefused, OutcomeUnknown, VenueBusy
from tradebus.services.connector.venues.alpaca import parsing

ORDER = {
    "id": "00000000-0000-0000-0000-000000000001", "client_order_id": "c-1", "symbol": "BRK.B", "side": "buy",
    "type": "limit", "qty": "3", "filled_qty": "1", "filled_avg_price": "410.5", "limit_price": "411",
    "stop_price": None, "time_in_force": "day", "status": "partially_filled", "updated_at": "2026-01-02T03:04:05Z",
}


def api_error(status: int, code: int, headers: dict[str, str] | None = None, message: str = "no") -> APIError:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    return APIError(f'{{"code": {code}, "message": "{message}"}}', requests.HTTPError(response=response))


def test_an_order_keeps_the_dotted_ticker_and_exact_decimals() -> None:
    snapshot = parsing.order_snapshot(ORDER)
    assert snapshot.symbol == "BRK.B" and snapshot.order_type is OrderType.LIMIT
    assert snapshot.status is OrderStatus.PARTIALLY_FILLED and snapshot.filled == Decimal(1)
    assert snapshot.price == Decimal("411") and snapshot.time_in_force is TimeInForce.DAY


def test_a_replacement_keeps_our_client_order_id() -> None:
    replaced = parsing.order_snapshot({**ORDER, "client_order_id": "alpaca-generated"}, client_order_id="c-1")
    assert replaced.client_order_id == "c-1"


def test_finished_states() -> None:
    for status, ours in (("filled", OrderStatus.FILLED), ("canceled", OrderStatus.CANCELLED),
                         ("expired", OrderStatus.EXPIRED), ("rejected", OrderStatus.REJECTED)):
        assert parsing.order_snapshot({**ORDER, "status": status}).status is ours


def test_done_for_day_is_not_final() -> None:
    """Alpaca: "done executing for the day, and will not receive further updates until the
    next trading day" - the order still works (a GTC order can fill the next day)."""
    working = parsing.order_snapshot({**ORDER, "status": "done_for_day", "filled_qty": "0"})
    assert working.status is OrderStatus.ACCEPTED
    partly = parsing.order_snapshot({**ORDER, "status": "done_for_day", "filled_qty": "1"})
    assert partly.status is OrderStatus.PARTIALLY_FILLED


def test_a_fill_event_carries_its_trade() -> None:
    trade = parsing.fill({"event": "fill", "execution_id": "e-1", "price": "410.5", "qty": "2", "order": ORDER})
    assert trade is not None and trade.price == Decimal("410.5") and trade.quantity == Decimal(2)
    assert parsing.fill({"event": "new", "order": ORDER}) is None


def test_errors_map_onto_the_taxonomy() -> None:
    # (every recorded Alpaca body is replayed in tests/venues/test_error_replay.py)
    funds = parsing.venue_error(api_error(403, 40310000, message="insufficient buying power"), changes_state=True)
    assert isinstance(funds, OrderRefused) and funds.reason is RejectReason.INSUFFICIENT_FUNDS
    assert isinstance(parsing.venue_error(api_error(401, 40110000), changes_state=False), AuthFailed)
    # a 403 refuses one order; only a 401 says the credentials are refused
    forbidden = parsing.venue_error(api_error(403, 40399999), changes_state=False)
    assert isinstance(forbidden, OrderRefused) and forbidden.reason is RejectReason.VENUE_REJECTED
    missing = parsing.venue_error(api_error(404, 40410000), changes_state=False)
    assert isinstance(missing, OrderRefused) and missing.reason is RejectReason.UNKNOWN_ORDER
    busy = parsing.venue_error(api_error(429, 42910000, {"Retry-After": "3"}), changes_state=True)
    assert isinstance(busy, VenueBusy) and busy.retry_after == 3.0
    assert isinstance(parsing.venue_error(api_error(500, 50010000), changes_state=True), OutcomeUnknown)
    assert isinstance(parsing.venue_error(requests.Timeout("http://x"), changes_state=True), OutcomeUnknown)
    assert isinstance(parsing.venue_error(requests.Timeout("http://x"), changes_state=False), VenueBusy)
