"""Fyers' JSON (fyers-apiv3 answers dicts) and data socket feeds (hsm.py) to the shared
types, and its error answers to the connector's taxonomy. Fyers dicts never leave this folder.

Symbology: Fyers names an instrument `EXCHANGE:SYMBOL-SERIES` (`NSE:SBIN-EQ`), already
exchange-qualified: it is our unified symbol as it is.

Client order ids: Fyers has none; an order carries an `orderTag` (alphanumeric, 1 to 30
characters, docs "Single Order"), which Fyers reports back prefixed with "1:" (a user's tag)
or "2:" (its own, "2:Untagged"). Our ids allow `_` and `-` and 36 characters, so the tag is
the id itself where it fits, else a digest of it (`order_tag`); the connector maps tags back
to the ids it sent. An order without one of our tags (placed by another tool) is known by its
Fyers order id, which is a valid client order id.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from tradebus.schemas.events import Balance
from tradebus.schemas.market import BookLevel, BookSnapshot, Quote, Trade
from tradebus.schemas.values import Aggressor, CancelReason, OrderStatus, OrderType, RejectReason, Side, TimeInForce

from ...accounts import ReportedPosition
from ...codes import UNKNOWN, refused, taxonomy_error
from ...errors import OutcomeUnknown, VenueBusy, VenueError
from ...tracking import OrderSnapshot, TradeReport
from .codes import BY_STATUS, CODES
from .hsm import Feed

ZERO = Decimal(0)
IST = timezone(timedelta(hours=5, minutes=30))  # Fyers' times are Indian Standard Time
CURRENCY = "INR"
# Fyers' order `type` (docs "Orders"): 1 limit, 2 market, 3 stop (SL-M), 4 stop-limit (SL-L).
ORDER_TYPES = {OrderType.LIMIT: 1, OrderType.MARKET: 2, OrderType.STOP: 3, OrderType.STOP_LIMIT: 4}
_ORDER_TYPES = {value: key for key, value in ORDER_TYPES.items()}
TIME_IN_FORCE = {TimeInForce.DAY: "DAY", TimeInForce.IOC: "IOC"}
_TIME_IN_FORCE = {value: key for key, value in TIME_IN_FORCE.items()}
SIDES = {Side.BUY: 1, Side.SELL: -1}
# Fyers' order `status`: 1 cancelled, 2 traded / filled, 4 transit, 5 rejected, 6 pending,
# 7 expired (3 is not used). Transit and pending are working orders.
_FINISHED = {1: OrderStatus.CANCELLED, 2: OrderStatus.FILLED, 5: OrderStatus.REJECTED, 7: OrderStatus.EXPIRED}
WORKING = frozenset({4, 6})
USER_TAG = "1:"  # the prefix Fyers puts before a tag the user gave
_TAG = re.compile(r"^[A-Za-z0-9]{1,30}\Z")
ACKNOWLEDGEMENT_PENDING = 201  # "order request has been made but no acknowledgement has been received"


def decimal(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def nanos(stamp: Any) -> int:
    """Fyers' `orderDateTime` ("09-Mar-2023 09:34:38", IST) in ns since the epoch."""
    if not stamp:
        return 0
    return int(datetime.strptime(str(stamp), "%d-%b-%Y %H:%M:%S").replace(tzinfo=IST).timestamp() * 1e9)


def order_tag(client_order_id: str) -> str:
    """The `orderTag` that carries our client order id: the id where Fyers allows it, else
    30 hex digits of its SHA-256 (Fyers allows neither `_` nor `-`, nor 36 characters)."""
    if _TAG.match(client_order_id):
        return client_order_id
    return hashlib.sha256(client_order_id.encode()).hexdigest()[:30]


def user_tag(order: dict[str, Any]) -> str | None:
    """The tag a user gave the order (without Fyers' "1:"), None for an untagged one."""
    tag = str(order.get("orderTag") or "")
    return tag[len(USER_TAG):] if tag.startswith(USER_TAG) else None


def client_order_id(order: dict[str, Any], ours: dict[str, str]) -> str:
    """Our id for a Fyers order: the one whose tag it carries (`ours`: tag -> id), else the
    tag itself if it is one of ours in clear, else the Fyers order id."""
    tag = user_tag(order)
    return str(order["id"]) if tag is None else ours.get(tag, tag)


def order_snapshot(order: dict[str, Any], ours: dict[str, str]) -> OrderSnapshot:
    """An order of the order book (GET /orders) or of the order socket (parsed by the SDK
    into the same names)."""
    filled = decimal(order.get("filledQty")) or ZERO
    code = int(order.get("status") or 0)
    status = _FINISHED.get(code)
    if status is None:
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
    kind = _ORDER_TYPES.get(int(order.get("type") or 2), OrderType.MARKET)
    limit = decimal(order.get("limitPrice")) if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
    stop = decimal(order.get("stopPrice")) if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None
    return OrderSnapshot(
        client_order_id=client_order_id(order, ours), venue_order_id=str(order["id"]), symbol=order["symbol"],
        side=Side.BUY if int(order["side"]) == 1 else Side.SELL, order_type=kind,
        quantity=decimal(order.get("qty")) or ZERO, status=status, price=limit, stop_price=stop,
        time_in_force=_TIME_IN_FORCE.get(str(order.get("orderValidity") or ""), TimeInForce.DAY),
        filled=filled, average_price=decimal(order.get("tradedPrice")) if filled > 0 else None,
        ts=nanos(order.get("orderDateTime")),
        message=str(order.get("message") or "") if status is OrderStatus.REJECTED else "",
        # an IOC order cancelled is its unfilled remainder: Fyers cancels it at once
        cancel_reason=CancelReason.IOC_REMAINDER
        if status is OrderStatus.CANCELLED and order.get("orderValidity") == "IOC" else None,
    )


def trade_report(trade: dict[str, Any]) -> TradeReport:
    """A trade of the trade book (GET /tradebook) or of the order socket's trades channel.
    Fyers lists no brokerage or taxes on a trade: the fee is unknown (0, no currency)."""
    return TradeReport(trade_id=str(trade["tradeNumber"]), price=decimal(trade["tradePrice"]) or ZERO,
                       quantity=decimal(trade["tradedQty"]) or ZERO, ts=nanos(trade.get("orderDateTime")))


def balances(answer: dict[str, Any]) -> list[Balance]:
    """GET /funds: the capital ledger's "Total Balance" and "Available Balance", in rupees."""
    by_title = {row.get("title"): decimal(row.get("equityAmount")) or ZERO for row in answer.get("fund_limit") or []}
    total = by_title.get("Total Balance", ZERO)
    return [Balance(currency=CURRENCY, total=total, available=by_title.get("Available Balance", total))]


def positions(answer: dict[str, Any]) -> list[ReportedPosition]:
    """GET /positions: `netQty` is signed (negative when short), `netAvg` its average price.
    A symbol held under two product types (CNC and INTRADAY) is one position here."""
    held: dict[str, tuple[Decimal, Decimal]] = {}
    for row in answer.get("netPositions") or []:
        quantity, price = decimal(row.get("netQty")) or ZERO, decimal(row.get("netAvg")) or ZERO
        before, average = held.get(row["symbol"], (ZERO, ZERO))
        total = before + quantity
        held[row["symbol"]] = (total, (before * average + quantity * price) / total if total else ZERO)
    return [ReportedPosition(symbol=symbol, quantity=q, avg_price=p) for symbol, (q, p) in held.items()]


def _nanos(seconds: Decimal | int | None, now: int) -> int:
    return int(seconds) * 1_000_000_000 if seconds else now


def quote(venue: str, symbol: str, feed: Feed, now: int) -> Quote | None:
    """The best bid and ask of a SymbolUpdate feed; None while a side is empty."""
    v = feed.values
    bid, ask, bid_size, ask_size = (v.get(name) for name in ("bid_price", "ask_price", "bid_size", "ask_size"))
    if not bid or not ask or not bid_size or not ask_size:
        return None
    return Quote(venue=venue, symbol=symbol, seq=0, ts_event=_nanos(v.get("exch_feed_time"), now), ts_recv=now,
                 bid=Decimal(bid), bid_size=Decimal(bid_size), ask=Decimal(ask), ask_size=Decimal(ask_size))


def volume(feed: Feed, before: int | None) -> int | None:
    """The day's traded volume a SymbolUpdate feed reports (`before` where it reports none)."""
    traded = feed.values.get("vol_traded_today")
    return int(traded) if traded is not None else before


def trade(venue: str, symbol: str, feed: Feed, before: int | None, now: int) -> Trade | None:
    """A trade: what the day's volume grew by since the last feed, at the last price (the
    first feed after subscribing is the baseline). Fyers' feed names no aggressor."""
    traded, price = volume(feed, None), feed.values.get("ltp")
    if traded is None or before is None or traded <= before or not price:
        return None
    return Trade(venue=venue, symbol=symbol, seq=0, ts_event=_nanos(feed.values.get("last_traded_time"), now),
                 ts_recv=now, price=Decimal(price), size=Decimal(traded - before), aggressor=Aggressor.UNKNOWN,
                 trade_id=str(traded))


def book(venue: str, symbol: str, feed: Feed, now: int, depth: int) -> BookSnapshot:
    """A DepthUpdate feed: five levels each side (`bid_price1`, `bid_size1`, ...); a level
    without quantity is left out."""
    v = feed.values

    def side(name: str) -> list[BookLevel]:
        levels = [(v.get(f"{name}_price{i}"), v.get(f"{name}_size{i}")) for i in range(1, 6)]
        return [BookLevel(price=Decimal(price), size=Decimal(size)) for price, size in levels if price and size][:depth]

    return BookSnapshot(venue=venue, symbol=symbol, seq=0, ts_event=now, ts_recv=now, bids=side("bid"),
                        asks=side("ask"))


# --- errors ------------------------------------------------------------------------------------
def checked(answer: Any, *, sdk_failure: bool, changes_state: bool) -> dict[str, Any]:
    """The answer if Fyers did what was asked; else the taxonomy error, raised.

    `sdk_failure`: the answer is fyers-apiv3's own error dict (no answer came, or the body
    was not JSON; its `code` is then the HTTP status or -99): the request may have acted.
    A place, modify or cancel answered `s: ok` with code 201 was made without the exchange's
    acknowledgement (docs "Single Order"): its outcome is looked up, never assumed."""
    if sdk_failure:
        status = int(answer.get("code") or -99)
        message = f"no answer from Fyers (HTTP {status})" if status > 0 else "no answer from Fyers"
        if 400 <= status < 500:
            rule = BY_STATUS.rule(str(status), "") or refused(RejectReason.VENUE_REJECTED)
            raise taxonomy_error(rule, message, code=str(status), changes_state=changes_state)
        raise OutcomeUnknown(message) if changes_state else VenueBusy(message)
    if not isinstance(answer, dict):
        raise OutcomeUnknown("unreadable answer") if changes_state else VenueBusy("unreadable answer")
    if answer.get("s") == "ok":
        if changes_state and answer.get("code") == ACKNOWLEDGEMENT_PENDING:
            raise OutcomeUnknown(str(answer.get("message") or "no acknowledgement from the exchange"), venue_code="201")
        return answer
    raise error(answer, changes_state=changes_state)


def error(answer: dict[str, Any], *, changes_state: bool) -> VenueError:
    code = str(answer.get("code")) if answer.get("code") is not None else None
    text = str(answer.get("message") or "")
    rule = CODES.rule(code, text) or BY_STATUS.rule(code, text)
    if rule is None:  # a code no table knows: Fyers' negative codes are refusals
        rule = UNKNOWN if code is not None and code.isdigit() and int(code) >= 500 else refused(RejectReason.VENUE_REJECTED)
    return taxonomy_error(rule, f"Fyers {code}: {text}"[:500], code=code, changes_state=changes_state)

