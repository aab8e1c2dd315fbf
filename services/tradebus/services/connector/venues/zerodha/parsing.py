"""Kite Connect's answers (pykiteconnect's dicts) to the shared types, and its exceptions to
the taxonomy. Kite dicts never leave this folder.

Symbology: an instrument is named as Kite names it in its quote APIs, `EXCHANGE:TRADINGSYMBOL`
(`NSE:INFY`, `NFO:NIFTY24DECFUT`); the ticker names it by its numeric instrument token,
which the instrument master (`instruments()` CSV) maps both ways (`Listing`).

Client order ids: Kite keeps no client order id, only an order `tag` (alphanumeric, at most
20 characters: kite.trade/docs/connect/v3/orders). `order_tag` derives the tag from our id
(the id itself where it fits, else a digest of it), and the connector maps tags back.

Times: Kite's timestamps are exchange time (IST, UTC+05:30) without a zone, as pykiteconnect
parses them (naive datetimes) or as the order stream sends them (strings).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgspec

from tradebus.schemas.events import Balance
from tradebus.schemas.market import Instrument
from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side, TimeInForce

from ...accounts import ReportedPosition
from ...codes import UNKNOWN, refused, taxonomy_error
from ...errors import OutcomeUnknown, VenueBusy, VenueError
from ...tracking import OrderSnapshot, TradeReport
from .codes import BY_STATUS, CODES, REJECTIONS

ZERO = Decimal(0)
IST = timezone(timedelta(hours=5, minutes=30))
CURRENCY = "INR"
ORDER_TYPES = {OrderType.MARKET: "MARKET", OrderType.LIMIT: "LIMIT", OrderType.STOP: "SL-M",
               OrderType.STOP_LIMIT: "SL"}
_ORDER_TYPES = {value: key for key, value in ORDER_TYPES.items()}
VALIDITY = {TimeInForce.DAY: "DAY", TimeInForce.IOC: "IOC"}
# TTL (minutes) is a day order that ends sooner: still a DAY order to the order manager.
_VALIDITY = {"DAY": TimeInForce.DAY, "IOC": TimeInForce.IOC, "TTL": TimeInForce.DAY}
# Kite's final states (kite.trade/docs/connect/v3/orders "Order statuses"); every other one
# (PUT ORDER REQ RECEIVED, VALIDATION PENDING, OPEN PENDING, MODIFY ..., CANCEL PENDING,
# TRIGGER PENDING, AMO REQ RECEIVED, OPEN) is an order still working.
_FINISHED = {"COMPLETE": OrderStatus.FILLED, "CANCELLED": OrderStatus.CANCELLED, "REJECTED": OrderStatus.REJECTED,
             "CANCELLED AMO": OrderStatus.CANCELLED}
TAG = re.compile(r"^[A-Za-z0-9]{1,20}\Z")
# Cash segments take `product_equity` (CNC / MIS); the others are derivatives (NRML / MIS).
EQUITY_SEGMENTS = frozenset({"NSE", "BSE"})


def decimal(value: Any) -> Decimal | None:
    """Kite's JSON numbers (floats to pykiteconnect) as the decimals they were written as."""
    return None if value is None or value == "" else Decimal(str(value))


def nanos(stamp: Any) -> int:
    if not stamp:
        return 0
    moment = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(str(stamp))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=IST)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def symbol_of(exchange: str, tradingsymbol: str) -> str:
    return f"{exchange}:{tradingsymbol}"


def order_tag(client_order_id: str) -> str:
    """The Kite tag that carries `client_order_id`: itself where Kite takes it, else the
    first 20 hex digits of its SHA-256 (80 bits: no two ids of an account meet)."""
    if TAG.match(client_order_id):
        return client_order_id
    return hashlib.sha256(client_order_id.encode()).hexdigest()[:20]


def order_snapshot(order: dict[str, Any], client_order_id: Callable[[dict[str, Any]], str]) -> OrderSnapshot:
    """A Kite order (order book, order history entry or order stream update); the
    `client_order_id` function names it by its tag (the connector's map)."""
    filled = decimal(order.get("filled_quantity")) or ZERO
    state = str(order.get("status") or "")
    kind = _ORDER_TYPES.get(str(order.get("order_type")), OrderType.LIMIT)
    status = _FINISHED.get(state)
    if status is None:
        stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
        if filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        elif stop and state == "OPEN":  # past TRIGGER PENDING: the stop became a working order
            status = OrderStatus.TRIGGERED
        else:
            status = OrderStatus.ACCEPTED
    average = decimal(order.get("average_price"))
    message = str(order.get("status_message") or "") if status is OrderStatus.REJECTED else ""
    rejection = REJECTIONS.rule("REJECTED", message) if message else None
    return OrderSnapshot(
        client_order_id=client_order_id(order), venue_order_id=str(order["order_id"]),
        symbol=symbol_of(order["exchange"], order["tradingsymbol"]), side=Side(str(order["transaction_type"]).lower()),
        order_type=kind, quantity=decimal(order.get("quantity")) or ZERO, status=status,
        price=decimal(order.get("price")) if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        stop_price=decimal(order.get("trigger_price")) if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        time_in_force=_VALIDITY.get(str(order.get("validity")), TimeInForce.DAY), filled=filled,
        average_price=average if filled > 0 else None,
        ts=nanos(order.get("exchange_update_timestamp") or order.get("exchange_timestamp") or order.get("order_timestamp")),
        message=message, reject_reason=rejection.reason if rejection is not None else None,
    )


def trade_report(trade: dict[str, Any]) -> TradeReport:
    """One entry of GET /orders/{id}/trades or /trades. Kite's trades carry no charges (they
    are on the contract note): the fee is unknown, left at 0 with no currency."""
    return TradeReport(trade_id=str(trade["trade_id"]), price=decimal(trade["average_price"]) or ZERO,
                       quantity=decimal(trade["quantity"]) or ZERO,
                       ts=nanos(trade.get("fill_timestamp") or trade.get("exchange_timestamp")))


def balances(margins: dict[str, Any]) -> list[Balance]:
    """GET /user/margins: one INR balance over the segments (equity, commodity). `total` is
    the segments' cash (`available.cash`), `available` what Kite says can be used for new
    orders (`net`: cash and collateral less what open positions and orders use)."""
    segments = [margins[name] for name in ("equity", "commodity") if isinstance(margins.get(name), dict)]
    total = sum((decimal(s.get("available", {}).get("cash")) or ZERO for s in segments), ZERO)
    available = sum((decimal(s.get("net")) or ZERO for s in segments), ZERO)
    return [Balance(currency=CURRENCY, total=total, available=available)]


def positions(net: list[dict[str, Any]], holdings: list[dict[str, Any]]) -> list[ReportedPosition]:
    """What the account holds per instrument: its demat holdings (settled `quantity` plus
    T+1 `t1_quantity`) and its net positions of the day and carried (signed `quantity`; a
    sale from holdings shows there as a negative CNC position). The average price is the
    holdings' where there are some, else the net position's."""
    held: dict[str, tuple[Decimal, Decimal]] = {}
    for holding in holdings:
        quantity = (decimal(holding.get("quantity")) or ZERO) + (decimal(holding.get("t1_quantity")) or ZERO)
        held[symbol_of(holding["exchange"], holding["tradingsymbol"])] = (quantity, decimal(holding.get("average_price")) or ZERO)
    for position in net:
        symbol = symbol_of(position["exchange"], position["tradingsymbol"])
        quantity, average = held.get(symbol, (ZERO, ZERO))
        held[symbol] = (quantity + (decimal(position.get("quantity")) or ZERO),
                        average or decimal(position.get("average_price")) or ZERO)
    return [ReportedPosition(symbol=symbol, quantity=quantity, avg_price=average)
            for symbol, (quantity, average) in sorted(held.items())]


class KiteInstrument(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the instrument master (GET /instruments[/{exchange}], CSV)."""

    instrument_token: int
    exchange: str
    tradingsymbol: str
    name: str
    instrument_type: str  # EQ, FUT, CE, PE
    segment: str  # NSE, NFO-FUT, NFO-OPT, INDICES, ...
    tick_size: Decimal
    lot_size: Decimal
    expiry: date | None = None
    strike: Decimal | None = None

    @property
    def symbol(self) -> str:
        return symbol_of(self.exchange, self.tradingsymbol)

    @property
    def tradable(self) -> bool:
        return self.segment != "INDICES"


ASSET_CLASSES = {"EQ": "equity", "FUT": "future", "CE": "option", "PE": "option"}


def instrument_rows(dump: str | list[dict[str, Any]]) -> list[KiteInstrument]:
    """The instrument master as Kite serves it (CSV text) or as pykiteconnect parses it."""
    rows = list(csv.DictReader(io.StringIO(dump))) if isinstance(dump, str) else dump
    listed = []
    for row in rows:
        expiry = row.get("expiry")
        strike = decimal(row.get("strike"))
        listed.append(KiteInstrument(
            instrument_token=int(row["instrument_token"]), exchange=str(row["exchange"]),
            tradingsymbol=str(row["tradingsymbol"]), name=str(row.get("name") or ""),
            instrument_type=str(row.get("instrument_type") or ""), segment=str(row.get("segment") or ""),
            tick_size=decimal(row.get("tick_size")) or Decimal("0.05"), lot_size=decimal(row.get("lot_size")) or Decimal(1),
            expiry=expiry if isinstance(expiry, date) else (date.fromisoformat(expiry) if expiry else None),
            strike=strike if strike else None,
        ))
    return listed


def instrument(venue: str, row: KiteInstrument) -> Instrument:
    """The bus's instrument (`NFO:NIFTY24DEC24000CE`, as Kite names it), with a derivative's
    expiry and strike. Quantities are in units, multiples of the lot."""
    equity = row.instrument_type == "EQ"
    return Instrument(
        venue=venue, symbol=row.symbol, seq=0, ts_event=0, ts_recv=0, venue_symbol=str(row.instrument_token),
        asset_class=ASSET_CLASSES.get(row.instrument_type, row.instrument_type.lower() or "equity"),
        base=row.tradingsymbol if equity or not row.name else row.name, quote=CURRENCY, tick_size=row.tick_size,
        lot_size=row.lot_size, min_quantity=row.lot_size, min_notional=ZERO,
        expiry=row.expiry.isoformat() if row.expiry else None, strike=row.strike,
    )


# --- errors ------------------------------------------------------------------------------------
class ErrorTypes:
    """The `error_type` of the last answer, per thread: a `requests` response hook on the
    SDK's session reads it, since pykiteconnect raises GeneralException for a name it does
    not define (MarginException, HoldingException) and so loses it."""

    def __init__(self) -> None:
        self._answers = threading.local()

    def install(self, session: Any) -> None:
        session.hooks["response"].append(self._remember)

    def reset(self) -> None:
        self._answers.error_type = None

    @property
    def last(self) -> str | None:
        return getattr(self._answers, "error_type", None)

    def _remember(self, response: Any, *args: Any, **kwargs: Any) -> None:
        error_type = None
        if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("error_type"), str):
                error_type = body["error_type"]
        self._answers.error_type = error_type


def venue_error(exc: Exception, error_type: str | None, *, changes_state: bool) -> VenueError:
    """The taxonomy error for a pykiteconnect exception. `error_type`: the answer's own
    exception name where it was read (pykiteconnect raises GeneralException for a name it
    does not define, e.g. MarginException); else the raised class's name."""
    from kiteconnect.exceptions import KiteException

    if isinstance(exc, KiteException):
        status = int(getattr(exc, "code", 500) or 500)
        name = error_type or type(exc).__name__
        text = str(exc)
        rule = BY_STATUS.rule(str(status), text) or CODES.rule(name, text)
        if rule is None:
            rule = UNKNOWN if status >= 500 else refused(RejectReason.VENUE_REJECTED)
        return taxonomy_error(rule, f"{name}: {text}"[:500], code=name, changes_state=changes_state)
    # requests' timeouts and dropped connections: the request may have been carried out.
    # Only the type is kept: requests' texts carry the URL, and the URL the access token.
    message = type(exc).__name__
    return OutcomeUnknown(message) if changes_state else VenueBusy(message)
