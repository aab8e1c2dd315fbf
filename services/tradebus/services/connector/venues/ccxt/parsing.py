"""ccxt's unified structures (dicts of floats) to the shared types, and ccxt's exceptions
to the connector's error taxonomy. ccxt dicts never leave this folder.

Numbers: ccxt reports floats; each is converted through its shortest repr (`str`), which
gives back the decimal the exchange sent for every price and size an exchange quotes.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import msgspec

from tradebus.schemas.events import Balance
from tradebus.schemas.market import BookLevel, BookSnapshot, Instrument, Quote, Trade
from tradebus.schemas.values import (
    Aggressor,
    CancelReason,
    LiquiditySide,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

from ...codes import CodeTable, taxonomy_error
from ...errors import AuthFailed, OrderRefused, OutcomeUnknown, VenueBusy, VenueError
from ...tracking import OrderSnapshot, TradeReport
from . import binance_codes, binance_lists, bybit_codes, kraken_codes, kucoin_codes, okx_codes

ZERO = Decimal(0)
MS = 1_000_000
_TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "PO": TimeInForce.GTC}
_URL = re.compile(r"(?:https?|wss?)://\S+")
# Why a venue cancelled an order itself, by the venue's reason in the raw order (`info`).
# Bybit v5 (bybit-exchange/docs docs/v5/enum.mdx "rejectReason"; docs/v5/order/order-list.mdx
# shows a PostOnly order "Cancelled" with it): a crossing post-only is accepted, then
# cancelled with EC_PostOnlyWillTakeLiquidity.
VENUE_CANCEL_REASONS = {"EC_PostOnlyWillTakeLiquidity": CancelReason.POST_ONLY_WOULD_TAKE}
# The venues whose error codes have a table (code first, see connector/codes.py). Any other
# ccxt exchange is mapped by ccxt's exception class, its order refusals by their text.
CODE_TABLES: dict[str, CodeTable] = {
    table.venue: table for table in (binance_codes.CODES, bybit_codes.CODES, kraken_codes.CODES, kucoin_codes.CODES,
                                     okx_codes.CODES)
}


def decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def nanos(milliseconds: Any) -> int:
    return int(milliseconds) * MS if milliseconds else 0


# --- orders --------------------------------------------------------------------------------
def order_snapshot(order: dict[str, Any], requested: OrderSnapshot | None = None) -> OrderSnapshot:
    """`requested`: the terms just sent, for exchanges (Bybit) that answer a place or an
    amend with the order's ids only; the order's state then comes from later updates."""
    if requested is not None and order.get("side") is None:
        return msgspec.structs.replace(
            requested, venue_order_id=str(order["id"]), client_order_id=order.get("clientOrderId") or requested.client_order_id
        )
    filled = decimal(order.get("filled")) or ZERO
    quantity = decimal(order.get("amount")) or ZERO
    trigger = decimal(order.get("triggerPrice") or order.get("stopPrice"))
    price = decimal(order.get("price"))
    order_type = _order_type(order.get("type"), trigger, price)
    # ccxt's trades of the order: those it parsed from the order itself (Binance's `fills` of a
    # place answered FULL) or saw on the stream before; each becomes a fill of its own.
    trades = tuple(trade_report(trade) for trade in order.get("trades") or [])
    info = order.get("info") or {}
    last_trade = trades[-1] if trades else _binance_stream_trade(info)
    cum_fee, fee_currency = _cumulative_fee(order, info)
    status = _status(order.get("status"), filled, quantity)
    cancel_reason = VENUE_CANCEL_REASONS.get(str(info.get("rejectReason")))
    if status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) and binance_lists.ended_by_list(info):
        status, cancel_reason = OrderStatus.CANCELLED, CancelReason.CONTINGENT
    return OrderSnapshot(
        client_order_id=client_order_id(order),
        venue_order_id=str(order["id"]),
        symbol=order["symbol"],
        side=Side(order["side"]),
        order_type=order_type,
        quantity=quantity,
        status=status,
        # a market order's "price" is its average fill price in ccxt: not a limit
        price=price if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        stop_price=trigger,
        time_in_force=_TIME_IN_FORCE.get(order.get("timeInForce") or "GTC", TimeInForce.GTC),
        post_only=bool(order.get("postOnly")),
        reduce_only=bool(order.get("reduceOnly")),
        filled=filled,
        average_price=decimal(order.get("average")),
        last_trade=last_trade,
        trades=trades,
        cum_fee=cum_fee,
        fee_currency=fee_currency,
        ts=nanos(order.get("lastUpdateTimestamp") or order.get("lastTradeTimestamp") or order.get("timestamp")),
        cancel_reason=cancel_reason,
    )


def client_order_id(order: dict[str, Any]) -> str:
    """The order's own client id. A Binance cancel answer names the cancel request's id
    `clientOrderId` (which ccxt reports) and the order's `origClientOrderId` (rest-api.md
    "Cancel order"); ccxt's executionReport parsing already prefers `C` over `c`."""
    info = order.get("info")
    original = info.get("origClientOrderId") if isinstance(info, dict) else None
    return str(original or order.get("clientOrderId") or "")


def _order_type(kind: str | None, trigger: Decimal | None, price: Decimal | None) -> OrderType:
    if trigger is not None:
        return OrderType.STOP_LIMIT if price is not None and kind != "market" else OrderType.STOP
    return OrderType.MARKET if kind == "market" else OrderType.LIMIT


def _status(status: str | None, filled: Decimal, quantity: Decimal) -> OrderStatus:
    if status == "closed":
        # ccxt also says "closed" for an order cancelled after a partial fill (Bybit's
        # PartiallyFilledCanceled): only a complete fill is FILLED
        return OrderStatus.FILLED if filled >= quantity else OrderStatus.CANCELLED
    if status == "canceled":
        return OrderStatus.CANCELLED
    if status == "expired":
        return OrderStatus.EXPIRED
    if status == "rejected":
        return OrderStatus.REJECTED
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED


def _binance_stream_trade(info: dict[str, Any]) -> TradeReport | None:
    """The trade a Binance executionReport of execution type TRADE carries in its own fields
    (`t` trade id, `l`/`L` last quantity and price, `n`/`N` commission and its asset, `m`
    maker). ccxt attaches the trade to the order only when it saw the order before (its
    cache); after a restart the order arrives without `trades`, and this is the fill."""
    if info.get("e") != "executionReport" or info.get("x") != "TRADE":
        return None
    return TradeReport(
        trade_id=str(info["t"]), price=decimal(info["L"]) or ZERO, quantity=decimal(info["l"]) or ZERO,
        fee=decimal(info.get("n")) or ZERO, fee_currency=info.get("N") or "",
        liquidity=LiquiditySide.MAKER if info.get("m") else LiquiditySide.TAKER,
    )


def _cumulative_fee(order: dict[str, Any], info: dict[str, Any]) -> tuple[Decimal | None, str]:
    """The order's fees so far and their currency; (None, "") when the order states none.

    Bybit v5: `cumFeeDetail` ({coin: amount}; spot and linear, where `cumExecFee` and
    `feeCurrency` are deprecated), else `cumExecFee` with `feeCurrency` when Bybit names the
    currency. Other exchanges: ccxt's unified order `fee`, which ccxt parses from the order's
    own cumulative fee (Kraken `fee`, OKX `fee`/`feeCcy`, KuCoin `fee`/`feeCurrency`), when it
    names its currency. Not a Binance executionReport: its `n`/`N` are the last trade's
    commission (read with that trade), not the order's total."""
    detail = info.get("cumFeeDetail")
    if isinstance(detail, dict) and len(detail) == 1:
        ((currency, amount),) = detail.items()
        return decimal(amount), str(currency)
    if "cumExecFee" in info and info.get("feeCurrency"):
        return decimal(info["cumExecFee"]) or ZERO, str(info["feeCurrency"])
    fee = order.get("fee")
    if info.get("e") == "executionReport" or not isinstance(fee, dict) or fee.get("cost") is None or not fee.get("currency"):
        return None, ""
    return decimal(fee["cost"]) or ZERO, str(fee["currency"])


def trade_report(trade: dict[str, Any]) -> TradeReport:
    """ccxt's trade. Its fee currency is the venue's where the record names one: ccxt's Bybit
    parser ignores Bybit's `feeCurrency` and infers the coin from the side (spot) or the
    market's settle coin, which the venue's own field overrides."""
    fee = trade.get("fee") or {}
    stated = (trade.get("info") or {}).get("feeCurrency")
    return TradeReport(
        trade_id=str(trade.get("id")),
        price=decimal(trade["price"]) or ZERO,
        quantity=decimal(trade["amount"]) or ZERO,
        fee=decimal(fee.get("cost")) or ZERO,
        fee_currency=stated if isinstance(stated, str) and stated else fee.get("currency") or "",
        liquidity=LiquiditySide.MAKER if trade.get("takerOrMaker") == "maker" else LiquiditySide.TAKER,
        ts=nanos(trade.get("timestamp")),
    )


# --- account ------------------------------------------------------------------------------------
def balances(balance: dict[str, Any]) -> list[Balance]:
    """ccxt's fetchBalance: `total` and `free` per currency."""
    total, free = balance.get("total") or {}, balance.get("free") or {}
    return [Balance(currency=currency, total=decimal(amount) or ZERO, available=decimal(free.get(currency)) or ZERO)
            for currency, amount in sorted(total.items())]


# --- market data ---------------------------------------------------------------------------------
def instrument(venue: str, market: dict[str, Any], precision_mode: int) -> Instrument:
    precision, limits = market.get("precision", {}), market.get("limits", {})
    return Instrument(
        venue=venue, symbol=market["symbol"], seq=0, ts_event=0, ts_recv=0, venue_symbol=market["id"],
        asset_class="crypto", base=market["base"], quote=market["quote"],
        tick_size=_step(precision.get("price"), precision_mode),
        lot_size=_step(precision.get("amount"), precision_mode),
        min_quantity=decimal((limits.get("amount") or {}).get("min")) or ZERO,
        min_notional=decimal((limits.get("cost") or {}).get("min")) or ZERO,
    )


def _step(precision: Any, precision_mode: int) -> Decimal:
    """ccxt gives a step either as a tick size or as a number of decimal places."""
    if precision is None:
        return Decimal("1e-8")
    if precision_mode == ccxt.TICK_SIZE:
        return Decimal(str(precision))
    return Decimal(1).scaleb(-int(precision))


def quote(venue: str, symbol: str, ticker: dict[str, Any], now: int) -> Quote | None:
    bid, ask = decimal(ticker.get("bid")), decimal(ticker.get("ask"))
    if bid is None or ask is None:
        return None
    return Quote(
        venue=venue, symbol=symbol, seq=0, ts_event=nanos(ticker.get("timestamp")) or now, ts_recv=now,
        bid=bid, bid_size=decimal(ticker.get("bidVolume")) or ZERO, ask=ask, ask_size=decimal(ticker.get("askVolume")) or ZERO,
    )


def trade(venue: str, symbol: str, raw: dict[str, Any], now: int) -> Trade:
    side = raw.get("side")
    return Trade(
        venue=venue, symbol=symbol, seq=0, ts_event=nanos(raw.get("timestamp")) or now, ts_recv=now,
        price=decimal(raw["price"]) or ZERO, size=decimal(raw["amount"]) or ZERO,
        aggressor=Aggressor(side) if side in ("buy", "sell") else Aggressor.UNKNOWN, trade_id=str(raw.get("id") or ""),
    )


def book(venue: str, symbol: str, raw: dict[str, Any], depth: int, now: int) -> BookSnapshot:
    return BookSnapshot(
        venue=venue, symbol=symbol, seq=0, ts_event=nanos(raw.get("timestamp")) or now, ts_recv=now,
        bids=[BookLevel(price=Decimal(str(p)), size=Decimal(str(s))) for p, s, *_ in raw["bids"][:depth]],
        asks=[BookLevel(price=Decimal(str(p)), size=Decimal(str(s))) for p, s, *_ in raw["asks"][:depth]],
    )


# --- errors ------------------------------------------------------------------------------------------
def venue_error(exc: Exception, *, changes_state: bool, retry_after: float | None = None,
                exchange_id: str = "", last_body: str | None = None) -> VenueError:
    """The taxonomy error for a ccxt exception. `changes_state`: the request could have
    acted at the venue (a place or cancel), so a timeout leaves its outcome unknown.
    `retry_after`: the venue's Retry-After, when its response carried one. `last_body`: the
    exchange's last HTTP answer (ccxt keeps it), for the exceptions ccxt raises from a
    message alone, whose text lacks the venue's code."""
    payload = venue_payload(exc, last_body)
    code, venue_text = venue_answer(payload)
    message = f"{type(exc).__name__}: {venue_text}"[:500] if venue_text else safe_message(exc)[0]
    table = CODE_TABLES.get(exchange_id)
    rule = table.rule(code, venue_text) if table is not None else None
    if rule is not None:
        return taxonomy_error(rule, message, code=code, changes_state=changes_state, retry_after=retry_after)
    return _by_class(exc, message, code, changes_state=changes_state, retry_after=retry_after,
                     read_text=table is None)


def _by_class(exc: Exception, message: str, code: str | None, *, changes_state: bool, retry_after: float | None,
              read_text: bool) -> VenueError:
    """ccxt's exception class decides: a code no table knows, or an answer without a code.
    `read_text`: an exchange without a code table, whose refusals are told apart by text."""
    if isinstance(exc, ccxt.AuthenticationError):
        return AuthFailed(message, venue_code=code)
    if isinstance(exc, ccxt.InsufficientFunds):
        return OrderRefused(RejectReason.INSUFFICIENT_FUNDS, message, venue_code=code)
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderRefused(RejectReason.UNKNOWN_ORDER, message, venue_code=code)
    if isinstance(exc, ccxt.DuplicateOrderId):
        return OrderRefused(RejectReason.DUPLICATE_CLIENT_ORDER_ID, message, venue_code=code)
    if isinstance(exc, ccxt.BadSymbol):
        return OrderRefused(RejectReason.UNKNOWN_INSTRUMENT, message, venue_code=code)
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):  # refused for its rate: nothing done
        return VenueBusy(message, retry_after=retry_after, venue_code=code)
    if isinstance(exc, ccxt.NetworkError):
        # Timeouts, dropped connections and 5xx answers alike: the request may have been
        # carried out (Binance documents its 503 as "execution status unknown").
        return OutcomeUnknown(message, venue_code=code) if changes_state else VenueBusy(message, venue_code=code)
    if isinstance(exc, ccxt.NotSupported):
        return OrderRefused(RejectReason.UNSUPPORTED_ORDER_TYPE, message, venue_code=code)
    if isinstance(exc, ccxt.ExchangeError):  # InvalidOrder, BadRequest, ...: the venue refused
        reason = _order_rule(message) if read_text else RejectReason.VENUE_REJECTED
        return OrderRefused(reason, message, venue_code=code)
    return OutcomeUnknown(message) if changes_state else VenueBusy(message)


def _order_rule(message: str) -> RejectReason:
    """For exchanges without a code table only: a guess from words in the venue's text."""
    text = message.lower()
    if "price_filter" in text or "tick" in text or "price precision" in text:
        return RejectReason.TICK_SIZE
    if "lot_size" in text or "amount precision" in text or "minimum amount" in text or "step" in text:
        return RejectReason.LOT_SIZE
    if "notional" in text or "minimum cost" in text:
        return RejectReason.MIN_NOTIONAL
    if "would immediately match" in text or "post only" in text or "postonly" in text:
        return RejectReason.POST_ONLY_WOULD_TAKE
    return RejectReason.VENUE_REJECTED


def venue_payload(exc: Exception, last_body: str | None = None) -> dict[str, Any]:
    """The venue's JSON error body: from the exception's text (ccxt appends the body when
    it decides by code), else the last HTTP answer when the exception carries its message
    (ccxt raises "binance Duplicate order sent." without the body when it decides by
    message); {} when neither holds one."""
    text = str(exc)
    payload = _json_object(text[text.find("{"):]) if "{" in text else {}
    if payload:
        return payload
    answer = _json_object(last_body or "")
    said = venue_answer(answer)[1]
    return answer if said and said in text else {}


def _json_object(text: str) -> dict[str, Any]:
    try:
        payload = json.loads(text) if text else {}
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def venue_answer(payload: dict[str, Any]) -> tuple[str | None, str]:
    """(the venue's error code, its text) in an error body: `code`/`msg` (Binance, KuCoin),
    `retCode`/`retMsg` (Bybit); OKX answers a refused order with code "1" ("Operation
    failed") and the order's own code in `data[].sCode` / `sMsg`, which is the one that says
    what happened; Kraken names its errors instead of numbering them (`{"error":
    ["EOrder:Insufficient funds"]}`), so the name is its code."""
    failed = [item for item in payload.get("data") or [] if isinstance(item, dict) and item.get("sCode") not in (None, "0")]
    if failed:
        return str(failed[0]["sCode"]), str(failed[0].get("sMsg") or "")
    errors = payload.get("error")
    if isinstance(errors, list) and errors and isinstance(errors[0], str):
        return errors[0], errors[0]
    code = payload.get("code", payload.get("retCode"))
    text = payload.get("msg") or payload.get("retMsg") or payload.get("message")
    return (None if code is None else str(code)), text if isinstance(text, str) else ""


def safe_message(exc: Exception) -> tuple[str, str | None]:
    """(a message fit for logs, the venue's code): the venue's own error text when the
    exception carries its JSON body, never the URL (its query holds the signature)."""
    code, venue_text = venue_answer(venue_payload(exc))
    if venue_text:
        return f"{type(exc).__name__}: {venue_text}"[:500], code
    return f"{type(exc).__name__}: {_URL.sub('<url>', str(exc))}"[:500], code
