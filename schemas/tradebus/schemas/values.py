"""Domain values shared by every message: identifiers, enums and exact decimals.

Prices and quantities are `decimal.Decimal` and travel as JSON strings. A JSON number is
also accepted on input: msgspec parses it from its text, so it never passes through a binary
float, but strings are the canonical form and what the exported JSON Schema documents.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Annotated

import msgspec

# Identifiers travel inside NATS subject tokens and JetStream KV keys unencoded, so their
# alphabet is restricted to characters that are safe in both. 36 characters is the tightest
# client-order-id limit among supported venues (Binance), and fits a UUID.
ClientOrderId = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,36}$", description="Client order id, unique per venue account.")
]
RequestId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,36}$")]
VenueName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]{1,32}$", description="Venue name, e.g. `paper`, `binance`.")]
AccountName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
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


class CancelReason(enum.Enum):
    REQUESTED = "requested"  # a cancel or cancel-all command
    IOC_REMAINDER = "ioc_remainder"  # the unfilled part of an IOC / market order
    FOK_UNFILLABLE = "fok_unfillable"
    NO_LIQUIDITY = "no_liquidity"
    VENUE = "venue"  # cancelled by the venue on its own initiative


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


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every wire message: tagged with `type`, tolerant of unknown fields.

    Tolerating unknown fields lets an older consumer read a newer producer's messages.
    """


class StrictMessage(Message, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of inbound commands and requests: an unknown field is an error.

    A misspelt `price` on an order must be refused, never silently ignored.
    """
