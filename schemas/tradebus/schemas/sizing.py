"""Position sizing (request/reply on `tradebus.ctl.sizing`): "how much of this instrument
for this account", answered with a quantity that fits the instrument's rules and the steps
that led to it."""

from __future__ import annotations

import enum
from decimal import Decimal

from .market import Instrument
from .values import (
    AccountName,
    Message,
    PositiveDecimal,
    Side,
    StrictMessage,
    Symbol,
    Text,
    VenueName,
    check_decimal,
)


class SizingMethod(enum.Enum):
    # risk `risk_fraction` of equity between `entry_price` and `stop_price`
    FIXED_FRACTIONAL = "fixed_fractional"
    # allocate a capped fraction of Kelly's f* = p - (1 - p) / b of equity at `entry_price`
    KELLY = "kelly"
    # risk `risk_fraction` of equity over a stop `atr_multiplier` x `atr` away from the entry
    ATR = "atr"


class SizingRefusal(enum.Enum):
    """Why no size could be computed (a size computed and found below the instrument's
    minimum is not a refusal: it is quantity 0 with its reason)."""

    INVALID_REQUEST = "invalid_request"  # a parameter the method needs is missing or contradicts another
    UNKNOWN_INSTRUMENT = "unknown_instrument"  # the venue's connector does not list the symbol
    UNKNOWN_ACCOUNT = "unknown_account"  # the order manager holds no balance of this venue account
    NO_EQUITY = "no_equity"  # no positive balance in the instrument's quote currency
    VENUE_UNAVAILABLE = "venue_unavailable"  # the venue's connector did not answer
    OMS_UNAVAILABLE = "oms_unavailable"  # the order manager did not answer


class SizePosition(StrictMessage, frozen=True, kw_only=True, tag="size_position"):
    """Ask for a quantity. Every method needs `entry_price` (the price the notional and
    the minimum notional are reckoned at); the rest depends on `method`:

    - fixed_fractional: `risk_fraction`, `stop_price` (below the entry for a buy, above for a sell);
    - kelly: `win_probability`, `win_loss_ratio`; `kelly_fraction` scales f* (0.5: half Kelly),
      `max_fraction` caps the fraction of equity allocated;
    - atr: `risk_fraction`, `atr` (the average true range, in price units: the fleet has no
      historical bars to compute it from), `atr_multiplier`."""

    venue: VenueName
    account: AccountName
    symbol: Symbol
    side: Side
    method: SizingMethod
    entry_price: PositiveDecimal
    risk_fraction: PositiveDecimal | None = None
    stop_price: PositiveDecimal | None = None
    win_probability: PositiveDecimal | None = None
    win_loss_ratio: PositiveDecimal | None = None
    kelly_fraction: PositiveDecimal = Decimal("0.5")
    max_fraction: PositiveDecimal = Decimal("0.25")
    atr: PositiveDecimal | None = None
    atr_multiplier: PositiveDecimal = Decimal(2)

    def __post_init__(self) -> None:
        for name in ("entry_price", "risk_fraction", "stop_price", "win_probability", "win_loss_ratio",
                     "kelly_fraction", "max_fraction", "atr", "atr_multiplier"):
            value = getattr(self, name)
            if value is not None:
                check_decimal(name, value)
        for name in ("risk_fraction", "win_probability", "kelly_fraction", "max_fraction"):
            value = getattr(self, name)
            if value is not None and value > 1:
                raise ValueError(f"{name} must not exceed 1, got {value}")


class SizeReply(Message, frozen=True, kw_only=True, tag="size_reply"):
    """The size. `ok` false: a refusal, `refusal` says why in a word and `error` in plain
    words. `quantity` is rounded down to the instrument's lot size; 0 with `zero_reason`
    when the size falls below its minimum quantity or notional, or the method sees no edge.
    `equity` (in `currency`, the quote currency) and `instrument` are what it was computed
    from; `reasoning` the steps, with their numbers."""

    ok: bool
    quantity: Decimal = Decimal(0)
    zero_reason: Text = ""
    equity: Decimal | None = None
    currency: str = ""
    instrument: Instrument | None = None
    reasoning: list[Text] = []
    refusal: SizingRefusal | None = None
    error: Text = ""
