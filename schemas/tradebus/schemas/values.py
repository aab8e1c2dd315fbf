"""Domain values shared by every message: identifiers, enums and exact decimals.

Prices and quantities are `decimal.Decimal` and travel as JSON strings of `DECIMAL_PATTERN`.
In commands they are `PositiveDecimal`: a JSON number, white space, `_` or a non-ASCII digit
there is refused on decoding, exactly as the exported JSON Schema refuses it (see
`decode_hook`).

Patterns end in `\\Z` (end of text): Python's `$` also matches before a final newline, so
`"abc\\n"` would pass `^...$` here while it fails the same pattern in a JSON Schema validator
(ECMA-262 `$`). The exported schemas say `$` (jsonschema.py translates).
"""

from __future__ import annotations

import abc
import enum
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

# Identifiers travel inside NATS subject tokens and JetStream KV keys unencoded, so their
# alphabet is restricted to characters that are safe in both. 36 characters is the tightest
# client-order-id limit among supported venues (Binance), and fits a UUID.
ClientOrderId = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,36}\Z", description="Client order id, unique per venue account.")
]
RequestId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,36}\Z")]
VenueName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]{1,32}\Z", description="Venue name, e.g. `paper`, `binance`.")]
AccountName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,32}\Z")]
Symbol = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="Unified symbol: ccxt style for crypto (`BTC/USDT`, `BTC/USDT:USDT`), "
        "ticker for equities, exchange-qualified for Indian venues (`NSE:RELIANCE`).",
    ),
]
Text = Annotated[str, msgspec.Meta(max_length=1024)]
Nanos = Annotated[int, msgspec.Meta(ge=0, description="Unix time in integer nanoseconds.")]

# Bounds that keep a hostile value from becoming an expensive or absurd Decimal.
MAX_MAGNITUDE = Decimal("1e15")
MAX_DECIMAL_PLACES = 18


# What a decimal string looks like on the wire: what `str(Decimal)` writes for a finite
# value, and what Python's Decimal reads minus white space, `_`, non-ASCII digits, NaN and
# Infinity. JSON Schema (and so every client) can check it; magnitude and decimal places
# (check_decimal) are beyond a pattern.
DECIMAL_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\Z"
# The same, greater than zero: no minus sign, and a non-zero digit before any exponent.
# Written so that every character has one way to match: a backtracking engine (Python's,
# most validators') stays linear on a hostile megabyte of digits.
POSITIVE_DECIMAL_PATTERN = r"^\+?0*([1-9][0-9]*(\.[0-9]*)?|\.0*[1-9][0-9]*)([eE][+-]?[0-9]+)?\Z"
_DECIMAL = re.compile(DECIMAL_PATTERN)
_POSITIVE_DECIMAL = re.compile(POSITIVE_DECIMAL_PATTERN)

if TYPE_CHECKING:
    PositiveDecimal = Decimal
else:

    class PositiveDecimal(abc.ABC):  # noqa: B024 (no methods: Decimal is registered, never a subclass)
        """A price or quantity of a command: a plain `Decimal` in Python, a JSON string of
        POSITIVE_DECIMAL_PATTERN on the wire. msgspec reads a `Decimal` field from a JSON
        number too, so command fields use this type instead: msgspec hands the raw JSON value
        to `decode_hook`, which takes only strings. (An ABC with Decimal registered, so a
        Decimal passes msgspec's type check and everything else sees a Decimal.)"""

    PositiveDecimal.register(Decimal)


def decode_hook(kind: type, value: Any) -> Any:
    """msgspec `dec_hook` of every decoder of messages holding a PositiveDecimal."""
    if kind is not PositiveDecimal:
        raise NotImplementedError(kind)
    if isinstance(value, str) and _POSITIVE_DECIMAL.match(value):
        return Decimal(value)
    if isinstance(value, Decimal):  # msgspec.convert of a value built in Python
        return value
    # Named without echoing a hostile value into logs and answers.
    if not isinstance(value, str):
        raise ValueError(f"expected a decimal string like \"0.5\", got {_JSON_KINDS.get(type(value), 'another type')} "
                         "(decimals travel as JSON strings)")
    if _DECIMAL.match(value):
        raise ValueError("must be greater than zero")
    raise ValueError("expected a decimal string like \"0.5\", got a string that is not a finite decimal "
                     "(no white space, `_`, non-ASCII digits, NaN or Infinity)")


_JSON_KINDS = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object",
               type(None): "null"}


def check_decimal(name: str, value: Decimal, *, positive: bool = True) -> None:
    """Raise ValueError unless `value` is a finite, bounded decimal (positive if asked).

    Raised from `__post_init__`, msgspec turns it into a ValidationError naming the field.
    """
    if not value.is_finite():
        raise ValueError(f"{name} must be a finite decimal, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be greater than zero, got {value}")
    if not positive and value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"{name} exceeds {MAX_MAGNITUDE}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise ValueError(f"{name} has more than {MAX_DECIMAL_PLACES} decimal places")


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(enum.Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    # A stop whose stop price follows the market at `trail_amount` or `trail_percent` behind
    # its best price since placement (above it for a buy); reaching it sends a market order.
    TRAILING_STOP = "trailing_stop"


class GroupKind(enum.Enum):
    """How the orders of a `place_group` depend on each other (commands.py PlaceOrderGroup)."""

    # An entry and its exits (a take-profit limit and/or a stop-loss): the exits work once
    # the entry is done with a fill, for the quantity filled, and one exit's fill cancels the other.
    BRACKET = "bracket"
    OCO = "oco"  # one cancels the other: both work at once; the first fill of either cancels the other
    OTO = "oto"  # one triggers the other: the second works once the first is done with a fill


class TimeInForce(enum.Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    DAY = "DAY"
    GTD = "GTD"


class LiquiditySide(enum.Enum):
    MAKER = "maker"
    TAKER = "taker"


class Aggressor(enum.Enum):
    BUY = "buy"
    SELL = "sell"
    UNKNOWN = "unknown"


class RejectReason(enum.Enum):
    """Why a command was refused. Every producer (risk, connector, venue) maps onto these."""

    MALFORMED = "malformed"  # undecodable or invalid command
    UNKNOWN_VENUE = "unknown_venue"
    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    UNKNOWN_ORDER = "unknown_order"
    ORDER_NOT_OPEN = "order_not_open"
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    UNSUPPORTED_ORDER_TYPE = "unsupported_order_type"
    UNSUPPORTED_TIME_IN_FORCE = "unsupported_time_in_force"
    UNSUPPORTED_ORDER_GROUP = "unsupported_order_group"  # the venue cannot hold this kind of group, nor the fleet for it
    INVALID_ORDER_GROUP = "invalid_order_group"  # a group's orders break a rule between them (commands.py group_violation)
    TICK_SIZE = "tick_size"
    LOT_SIZE = "lot_size"
    MIN_NOTIONAL = "min_notional"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    REDUCE_ONLY_VIOLATION = "reduce_only_violation"
    FOK_UNFILLABLE = "fok_unfillable"
    NO_LIQUIDITY = "no_liquidity"
    EXPIRED_ON_ARRIVAL = "expired_on_arrival"
    DEADLINE_EXCEEDED = "deadline_exceeded"  # a place/modify older than its time to live (risk or connector)
    # Exchange rules checked before sending (Indian exchanges: tradebus.markets.india)
    FREEZE_QUANTITY = "freeze_quantity"  # above the exchange's most units per order
    MARKET_CLOSED = "market_closed"  # outside the segment's sessions (weekend, holiday, hours)
    AMO_WINDOW_CLOSED = "amo_window_closed"  # an after-market order outside the venue's AMO window
    MARKET_CALENDAR_UNKNOWN = "market_calendar_unknown"  # no trading calendar for the date: not guessed
    # Risk gate
    INSTRUMENT_NOT_ALLOWED = "instrument_not_allowed"
    MAX_QUANTITY = "max_quantity"
    MAX_NOTIONAL = "max_notional"
    MAX_POSITION = "max_position"
    MAX_OPEN_ORDERS = "max_open_orders"
    RATE_LIMITED = "rate_limited"
    PRICE_COLLAR = "price_collar"
    NO_REFERENCE_PRICE = "no_reference_price"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    ACCOUNT_REDUCING_ONLY = "account_reducing_only"
    ACCOUNT_HALTED = "account_halted"
    FLEET_HALTED = "fleet_halted"
    # Venue side
    VENUE_REJECTED = "venue_rejected"
    VENUE_UNAVAILABLE = "venue_unavailable"
    NOT_RECONCILED = "not_reconciled"
    AUTH_FAILED = "auth_failed"
    # The venue session's access token expired (Indian venues' tokens last a day): nothing
    # reaches the venue until a new token is supplied (docs/venues.md, "Session lifecycle").
    SESSION_EXPIRED = "session_expired"


class CancelReason(enum.Enum):
    REQUESTED = "requested"  # a cancel or cancel-all command
    IOC_REMAINDER = "ioc_remainder"  # the unfilled part of an IOC / market order
    FOK_UNFILLABLE = "fok_unfillable"
    NO_LIQUIDITY = "no_liquidity"
    VENUE = "venue"  # cancelled by the venue on its own initiative
    # a post-only order the venue accepted, then cancelled because it would have taken
    # liquidity (Bybit: orderStatus Cancelled, rejectReason EC_PostOnlyWillTakeLiquidity)
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    # cancelled by its group: another leg of an OCO or a bracket's exits filled, or the
    # order it waited for (a bracket's entry, an OTO's first) ended without a fill
    CONTINGENT = "contingent"


class MarketDataKind(enum.Enum):
    QUOTE = "quote"
    TRADE = "trade"
    BAR = "bar"
    BOOK = "book"
    INSTRUMENT = "instrument"


# Streams a `ticks` subscriber reads by default; instrument definitions are reference data.
TICK_KINDS = (MarketDataKind.QUOTE, MarketDataKind.TRADE, MarketDataKind.BAR, MarketDataKind.BOOK)


class OrderStatus(enum.Enum):
    """An order's state in the order manager (see lifecycle.py for the legal transitions)."""

    PENDING_NEW = "pending_new"  # approved by risk, no venue answer yet
    ACCEPTED = "accepted"
    TRIGGERED = "triggered"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class TradingState(enum.Enum):
    """What the risk gate lets through for an account, or for the whole fleet."""

    ACTIVE = "active"
    REDUCING_ONLY = "reducing_only"  # only orders that shrink a position; cancels always pass
    HALTED = "halted"  # nothing but cancels


class ServiceState(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DEGRADED = "degraded"
    STOPPING = "stopping"


class SessionState(enum.Enum):
    """A venue session whose access token lasts a day (Zerodha, Fyers)."""

    LOGGED_IN = "logged_in"  # the venue takes the token
    EXPIRING = "expiring"  # still taken, but its documented expiry is near: log in again
    EXPIRED = "expired"  # the venue refuses the token: commands are refused, streams wait
    REAUTHENTICATED = "reauthenticated"  # a new token was supplied: reconciling before trading again


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every wire message: tagged with `type`, tolerant of unknown fields.

    Tolerating unknown fields lets an older consumer read a newer producer's messages.
    """


class StrictMessage(Message, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of inbound commands and requests: an unknown field is an error.

    A misspelt `price` on an order must be refused, never silently ignored.
    """
