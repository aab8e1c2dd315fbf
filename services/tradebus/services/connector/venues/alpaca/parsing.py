"""Alpaca's JSON (alpaca-py with raw_data=True: plain dicts) to the shared types, and
alpaca-py's exceptions to the connector's error taxonomy. Alpaca dicts never leave this folder.

Symbology: Alpaca names equities by ticker (AAPL, BRK.B: the dot stays, subject tokens
encode it) and crypto pairs as BASE/QUOTE (BTC/USD), which are our unified symbols as
they are. Positions name crypto without the slash (BTCUSD), and so did orders before
Alpaca's 2023 symbol change (its documented trade_updates example: SOLUSD): `symbols`
maps such a name back to ours (`slashless`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca.common.exceptions import APIError

from tradebus.schemas.events import Balance
from tradebus.schemas.market import Instrument, Quote, Trade
from tradebus.schemas.values import Aggressor, CancelReason, OrderStatus, OrderType, RejectReason, Side, TimeInForce

from ...accounts import ReportedPosition
from ...codes import UNKNOWN, refused, taxonomy_error
from ...errors import OutcomeUnknown, VenueBusy, VenueError
from ...tracking import OrderSnapshot, TradeReport
from .codes import BY_STATUS, CODES

ZERO = Decimal(0)
TIME_IN_FORCE = {TimeInForce.DAY: "day", TimeInForce.GTC: "gtc", TimeInForce.IOC: "ioc", TimeInForce.FOK: "fok"}
_TIME_IN_FORCE = {value: key for key, value in TIME_IN_FORCE.items()}
# What Alpaca accepts per asset class (its orders documentation).
ORDER_TYPES = {
    "us_equity": frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT,
                            OrderType.TRAILING_STOP}),
    "crypto": frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT}),
}
TIME_IN_FORCE_BY_CLASS = {
    "us_equity": frozenset({TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK}),
    "crypto": frozenset({TimeInForce.GTC, TimeInForce.IOC}),
}
# Alpaca's final states (alpaca.markets/docs/trading/orders "Order Lifecycle": "no further
# updates will occur"). Not `done_for_day`: "done executing for the day, and will not
# receive further updates until the next trading day" - a GTC order can still fill then.
_FINISHED = {"filled": OrderStatus.FILLED, "canceled": OrderStatus.CANCELLED, "expired": OrderStatus.EXPIRED,
             "rejected": OrderStatus.REJECTED}


def decimal(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def nanos(timestamp: Any) -> int:
    if not timestamp:
        return 0
    if isinstance(timestamp, datetime):
        return int(timestamp.timestamp() * 1e9)
    return int(datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp() * 1e9)


def slashless(symbols: list[str]) -> dict[str, str]:
    """Alpaca's slashless name of each crypto pair (BTCUSD) -> ours (BTC/USD)."""
    return {symbol.replace("/", ""): symbol for symbol in symbols if "/" in symbol}


def order_class(order: dict[str, Any]) -> str:
    """Alpaca's `order_class` of an order: simple (also written "" by Alpaca), bracket, oco, oto."""
    return order.get("order_class") or "simple"


def order_snapshot(order: dict[str, Any], *, client_order_id: str | None = None, trade: TradeReport | None = None,
                   symbols: Mapping[str, str] | None = None) -> OrderSnapshot:
    """`client_order_id`: ours, when a replace gave the order another one at Alpaca;
    `symbols`: see `slashless`. A notional order (`qty` null) states its quantity only as
    what filled. An equity order's fees are a stated 0 USD (commission-free: see `fill`),
    so a fill derived from it says so too; a crypto order's are unknown (None)."""
    filled = decimal(order.get("filled_qty")) or ZERO
    status = _FINISHED.get(order.get("status") or "")
    if status is None:
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
    kind = order.get("type") or order.get("order_type") or "market"
    quantity = decimal(order.get("qty"))
    equity = order.get("asset_class") == "us_equity"
    trailing = kind == OrderType.TRAILING_STOP.value
    # An order of a bracket / oco / oto cancelled without our asking was cancelled by its group
    # ("If any one of the orders is canceled, any remaining open order in the group is canceled").
    grouped = order_class(order) != "simple" and status is OrderStatus.CANCELLED
    return OrderSnapshot(
        client_order_id=client_order_id or order["client_order_id"], venue_order_id=str(order["id"]),
        symbol=(symbols or {}).get(order["symbol"], order["symbol"]), side=Side(order["side"]),
        order_type=OrderType(kind), quantity=filled if quantity is None else quantity, status=status,
        # a trailing stop's stop_price is Alpaca's, derived from its hwm: not a term of ours
        price=decimal(order.get("limit_price")), stop_price=None if trailing else decimal(order.get("stop_price")),
        trail_amount=decimal(order.get("trail_price")), trail_percent=decimal(order.get("trail_percent")),
        cancel_reason=CancelReason.CONTINGENT if grouped else None,
        time_in_force=_TIME_IN_FORCE.get(order.get("time_in_force") or "", TimeInForce.GTC),
        filled=filled, average_price=decimal(order.get("filled_avg_price")), last_trade=trade,
        cum_fee=ZERO if equity else None, fee_currency="USD" if equity else "",
        ts=nanos(order.get("updated_at") or order.get("created_at")),
    )


def trade_update(frame: dict[str, Any], *, client_order_ids: Mapping[str, str],
                 symbols: Mapping[str, str]) -> OrderSnapshot | None:
    """A trading stream frame as its order's state, None for a frame that is no order
    update (the authorization and listening answers) and for the order a replace
    superseded (`replaced`: its replacement's own events follow). `client_order_ids`:
    the ids Alpaca gave replacements -> ours."""
    update = frame.get("data") or {}
    order = update.get("order")
    if frame.get("stream") != "trade_updates" or not isinstance(order, dict) or order.get("status") == "replaced":
        return None
    return order_snapshot(order, client_order_id=client_order_ids.get(order["client_order_id"]),
                          trade=fill(update), symbols=symbols)


def fill(update: dict[str, Any]) -> TradeReport | None:
    """The fill a trade_updates event reports (fill / partial_fill), if it reports one:
    its `execution_id`, `qty` and `price` (docs.alpaca.markets "Websocket Streaming").

    Fees: Alpaca's fill events carry none. "Alpaca stock trading remains commission-free,
    where crypto trading includes a small fee per trade" (docs "Crypto Spot Trading Fees";
    alpacahq/alpaca-docs content/trading/crypto-trading.md), so an equity fill's fee is a
    stated 0 USD. A crypto
    fill's fee is taken by Alpaca from the asset the trade credits and is not on the event:
    it is left at 0 with no currency (unknown, never made up); the account's balances and
    positions show what was received."""
    if update.get("event") not in ("fill", "partial_fill") or update.get("price") is None:
        return None
    equity = (update.get("order") or {}).get("asset_class") == "us_equity"
    return TradeReport(trade_id=str(update.get("execution_id") or update.get("timestamp")),
                       price=decimal(update["price"]) or ZERO, quantity=decimal(update.get("qty")) or ZERO,
                       fee=ZERO, fee_currency="USD" if equity else "", ts=nanos(update.get("timestamp")))


def balances(account: dict[str, Any]) -> list[Balance]:
    """GET /v2/account: the account's cash in its currency; available is Alpaca's
    `non_marginable_buying_power` (what can buy without margin), never above the cash and
    never below zero (a margin account's cash is negative while it borrows: its documented
    example has cash -23140.2, and no cash of its own is available then)."""
    cash = decimal(account.get("cash")) or ZERO
    buying_power = decimal(account.get("non_marginable_buying_power"))
    available = cash if buying_power is None else min(cash, buying_power)
    return [Balance(currency=account.get("currency") or "USD", total=cash, available=max(ZERO, available))]


def positions(listed: list[dict[str, Any]], symbols: Mapping[str, str]) -> list[ReportedPosition]:
    """GET /v2/positions, with `symbols` mapping a position's symbol (crypto without the
    slash, BTCUSD) to ours; `qty` is signed by Alpaca already (negative when short)."""
    return [
        ReportedPosition(symbol=symbols.get(p["symbol"], p["symbol"]), quantity=decimal(p.get("qty")) or ZERO,
                      avg_price=decimal(p.get("avg_entry_price")) or ZERO)
        for p in listed
    ]


def instrument(venue: str, asset: dict[str, Any]) -> Instrument:
    crypto = asset.get("class") == "crypto"
    symbol = asset["symbol"]
    base, _, quote = symbol.partition("/") if crypto else (symbol, "", "USD")
    lot = decimal(asset.get("min_trade_increment")) or (Decimal("0.000000001") if asset.get("fractionable") else Decimal(1))
    return Instrument(
        venue=venue, symbol=symbol, seq=0, ts_event=0, ts_recv=0, venue_symbol=symbol,
        asset_class="crypto" if crypto else "equity", base=base, quote=quote or "USD",
        tick_size=decimal(asset.get("price_increment")) or Decimal("0.01"), lot_size=lot,
        min_quantity=decimal(asset.get("min_order_size")) or lot, min_notional=ZERO,
    )


def market_message(venue: str, frame: dict[str, Any], now: int) -> Quote | Trade:
    """A data stream frame (`T` "q" quote or "t" trade) as a shared message."""
    stamp: Any = frame.get("t")  # a msgpack Timestamp (the SDK's decoding), or text
    ts = stamp.to_unix_nano() if hasattr(stamp, "to_unix_nano") else nanos(stamp) or now
    if frame["T"] == "q":
        return Quote(venue=venue, symbol=frame["S"], seq=0, ts_event=ts, ts_recv=now,
                     bid=decimal(frame["bp"]) or ZERO, bid_size=decimal(frame.get("bs")) or ZERO,
                     ask=decimal(frame["ap"]) or ZERO, ask_size=decimal(frame.get("as")) or ZERO)
    return Trade(venue=venue, symbol=frame["S"], seq=0, ts_event=ts, ts_recv=now, price=decimal(frame["p"]) or ZERO,
                 size=decimal(frame.get("s")) or ZERO, aggressor=Aggressor.UNKNOWN, trade_id=str(frame.get("i") or ""))


# --- errors ------------------------------------------------------------------------------------
def venue_error(exc: Exception, *, changes_state: bool) -> VenueError:
    """The taxonomy error for an alpaca-py exception. `changes_state`: the request could
    have acted at Alpaca (place, replace, cancel), so a timeout leaves its outcome unknown."""
    if isinstance(exc, APIError):
        status, code, text = exc.status_code, _code(exc), _text(exc)
        rule = CODES.rule(code, text) or BY_STATUS.rule(str(status), text)
        if rule is None:  # a 5xx (it may have been done) or another 4xx (refused)
            rule = UNKNOWN if status is None or status >= 500 else refused(RejectReason.VENUE_REJECTED)
        retry_after = _retry_after(exc) if status == 429 else None
        return taxonomy_error(rule, f"APIError: {text or f'HTTP {status}'}"[:500], code=code,
                              changes_state=changes_state, retry_after=retry_after)
    # requests' timeouts and dropped connections (and anything unforeseen): the request may
    # have been carried out. Only the type is kept: requests' texts carry the URL.
    message = type(exc).__name__
    return OutcomeUnknown(message) if changes_state else VenueBusy(message)


def _code(exc: APIError) -> str | None:
    try:
        return str(exc.code)
    except (ValueError, KeyError, TypeError):
        return None


def _text(exc: APIError) -> str:
    try:
        return str(exc.message)
    except (ValueError, KeyError, TypeError):
        return ""


def _retry_after(exc: APIError) -> float | None:
    response = exc.response
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
