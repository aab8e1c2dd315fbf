"""Binance spot OCO order lists (POST /api/v3/orderList/oco), held by the emulator over the engine.

From binance/binance-spot-api-docs (commit a5e0bc3d): rest-api.md "New Order list - OCO"
(above / below legs, one `quantity`, `listClientOrderId`, `orderReports` in the answer;
sell: LIMIT_MAKER price > last traded price > stop price, buy mirrored), "Cancel Order list"
("Canceling an individual order from an order list will cancel the entire order list"),
user-data-stream.md ("If the order is an order list, an event named ListStatus will be sent
in addition to the executionReport event"; `eR` OCO_TRIGGER on the leg the other's execution
expired), enums.md (listStatusType EXEC_STARTED / ALL_DONE, listOrderStatus EXECUTING /
ALL_DONE), errors.md (-1165 / -1166 / -1196 / -1197 leg placement, -2010 with "The
relationship of the prices for the orders is not correct." and "Duplicate order sent.").

The legs: a fill of the LIMIT_MAKER leg (even partial) expires the stop leg; the stop leg's
trigger ("the other order of the pair started working") expires the LIMIT_MAKER leg. The
expiry follows the change on the loop, as Binance's engine reports it after the execution.
Not emulated: TAKE_PROFIT / TAKE_PROFIT_LIMIT legs, trailing deltas, icebergs, OTO / OTOCO,
DELETE /api/v3/orderList and the order list queries.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradebus.schemas.values import OrderType, Side, TimeInForce

from ..venue import EmulatedFill, EmulatedOrder, EmulatedVenue, Refused
from . import render

NO_LIST = -1
STOPS = {"STOP_LOSS": OrderType.STOP, "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT}
# errors.md: where the limit leg goes, by side (the stop leg is the other one)
LIMIT_MUST_BE = {Side.BUY: (400, -1165, "A limit order in a buy OCO must be below."),
                 Side.SELL: (400, -1166, "A limit order in a sell OCO must be above.")}
BOTH_LIMITS = (400, -1168, "At least one OCO order must be contingent.")
TYPE_REJECTED = (400, -1158, "Order type not supported in OCO.")
BAD_PRICES = (400, -2010, "The relationship of the prices for the orders is not correct.")
DUPLICATE = (400, -2010, "Duplicate order sent.")
Publish = Callable[[str, dict[str, Any]], None]  # (account, user data stream event)


class ListRefusal(Exception):
    """A refusal with Binance's own code and text (HTTP status, code, msg)."""

    def __init__(self, answer: tuple[int, int, str]) -> None:
        super().__init__(answer[2])
        self.answer = answer


@dataclass
class OrderList:
    list_id: int
    client_id: str
    limit: EmulatedOrder  # the LIMIT_MAKER leg
    stop: EmulatedOrder
    above_first: bool  # `orders` / `orderReports` list the legs as Binance does: below, then above
    done: bool = False

    @property
    def legs(self) -> list[EmulatedOrder]:
        return [self.stop, self.limit] if self.above_first else [self.limit, self.stop]

    def other(self, leg: EmulatedOrder) -> EmulatedOrder:
        return self.stop if leg is self.limit else self.limit


class OrderLists:
    def __init__(self, venue: EmulatedVenue, publish: Publish) -> None:
        self.venue = venue
        self.publish = publish
        self._ids = itertools.count(1)  # order list ids (and the names of lists sent without a client id)
        self._by_order: dict[int, OrderList] = {}  # a leg's order id -> its list
        # (account, a leg's client order id) -> its list's id, known before the leg is placed:
        # the leg's first executionReport already carries it
        self._list_ids: dict[tuple[str, str], int] = {}
        self._open: dict[tuple[str, str], OrderList] = {}  # (account, listClientOrderId) -> a list still executing
        self.expiry_reasons: dict[int, str] = {}  # order id -> `eR` of an expired leg

    def list_id(self, order: EmulatedOrder) -> int:
        return self._list_ids.get((order.account, order.client_order_id), NO_LIST)

    # --- POST /api/v3/orderList/oco ------------------------------------------------------------
    def place(self, account: str, params: dict[str, str], symbol: str) -> dict[str, Any]:
        side = render.side(params.get("side", ""))
        above, below = params.get("aboveType", ""), params.get("belowType", "")
        for kind in (above, below):
            if kind != "LIMIT_MAKER" and kind not in STOPS:
                raise ListRefusal(TYPE_REJECTED)
        if above == below == "LIMIT_MAKER":
            raise ListRefusal(BOTH_LIMITS)
        if "LIMIT_MAKER" not in (above, below):
            raise ListRefusal(TYPE_REJECTED)
        limit_at, stop_at = ("above", "below") if above == "LIMIT_MAKER" else ("below", "above")
        if (limit_at == "above") != (side is Side.SELL):
            raise ListRefusal(LIMIT_MUST_BE[side])
        quantity, limit_price = render.decimal_param(params, "quantity"), render.decimal_param(params, f"{limit_at}Price")
        stop_type = params[f"{stop_at}Type"]
        stop_price = render.decimal_param(params, f"{stop_at}StopPrice")
        stop_limit = render.decimal_param(params, f"{stop_at}Price") if stop_type == "STOP_LOSS_LIMIT" else None
        last = self._last_price(symbol)
        if not (limit_price > last > stop_price if side is Side.SELL else limit_price < last < stop_price):
            raise ListRefusal(BAD_PRICES)
        list_client_id = params.get("listClientOrderId") or f"emulist{next(self._ids)}"
        ids = [params.get(f"{at}ClientOrderId") or f"emu{at}{list_client_id}" for at in (limit_at, stop_at)]
        if (account, list_client_id) in self._open or len(set(ids)) < 2 or any(self._known(account, i) for i in ids):
            raise ListRefusal(DUPLICATE)
        list_id = next(self._ids)
        self._list_ids.update({(account, client_order_id): list_id for client_order_id in ids})
        try:
            limit = self.venue.place(account, client_order_id=ids[0], symbol=symbol, side=side,
                                     order_type=OrderType.LIMIT, quantity=quantity, price=limit_price, post_only=True)
        except Refused:
            self._list_ids.pop((account, ids[0]))
            self._list_ids.pop((account, ids[1]))
            raise
        try:
            stop = self.venue.place(account, client_order_id=ids[1], symbol=symbol, side=side,
                                    order_type=STOPS[stop_type], quantity=quantity, price=stop_limit,
                                    stop_price=stop_price, time_in_force=TimeInForce.GTC)
        except Refused:
            self._list_ids.pop((account, ids[1]))
            self.venue.cancel(limit)  # a list is placed whole or not at all
            raise
        order_list = OrderList(list_id=list_id, client_id=list_client_id, limit=limit, stop=stop,
                               above_first=limit_at == "below")
        self._open[account, list_client_id] = order_list
        for leg in order_list.legs:
            self._by_order[leg.order_id] = order_list
        status = self.status(order_list, "EXEC_STARTED", "EXECUTING")
        self.publish(account, self._event(status))
        return {**status, "orderReports": [{**render.order_result(leg), "orderListId": order_list.list_id}
                                           for leg in order_list.legs]}

    def _known(self, account: str, client_order_id: str) -> bool:
        try:
            self.venue.find(account, client_order_id=client_order_id)
        except Refused:
            return False
        return True

    def _last_price(self, symbol: str) -> Decimal:
        market = self.venue.last_market[symbol]
        if market.trade is not None:
            return market.trade.price
        assert market.bids and market.asks  # the engine's walk quotes every symbol from the start
        return (market.bids[0][0] + market.asks[0][0]) / 2

    # --- the list at work -------------------------------------------------------------------
    def changed(self, order: EmulatedOrder, fill: EmulatedFill | None) -> None:
        """After each reported change of a leg: the other's expiry follows on the loop."""
        order_list = self._by_order.get(order.order_id)
        if order_list is not None and not order_list.done:
            asyncio.get_running_loop().call_soon(self._react, order_list, order, fill)

    def cancel_with(self, order: EmulatedOrder) -> None:
        """A leg cancelled by request: the entire list is cancelled."""
        order_list = self._by_order.get(order.order_id)
        if order_list is not None and order_list.other(order).is_open:
            self.venue.cancel(order_list.other(order))

    def _react(self, order_list: OrderList, leg: EmulatedOrder, fill: EmulatedFill | None) -> None:
        other = order_list.other(leg)
        executed = fill is not None or (leg is order_list.stop and leg.triggered)
        if other.is_open and executed:
            self.expiry_reasons[other.order_id] = "OCO_TRIGGER"
            self.venue.expire(other)
        if not order_list.done and not any(o.is_open for o in order_list.legs):
            order_list.done = True
            del self._open[leg.account, order_list.client_id]
            self.publish(leg.account, self._event(self.status(order_list, "ALL_DONE", "ALL_DONE")))

    # --- rendering --------------------------------------------------------------------------
    def status(self, order_list: OrderList, status_type: str, order_status: str) -> dict[str, Any]:
        """The order list as the REST answers give it (without `orderReports`)."""
        first = order_list.limit
        return {
            "orderListId": order_list.list_id, "contingencyType": "OCO", "listStatusType": status_type,
            "listOrderStatus": order_status, "listClientOrderId": order_list.client_id,
            "transactionTime": max(o.updated_ns for o in order_list.legs) // 1_000_000,
            "symbol": render.venue_symbol(first.symbol),
            "orders": [{"symbol": render.venue_symbol(o.symbol), "orderId": o.order_id, "clientOrderId": o.client_order_id}
                       for o in order_list.legs],
        }

    @staticmethod
    def _event(status: dict[str, Any]) -> dict[str, Any]:
        """user-data-stream.md's `listStatus` event of a list's state."""
        return {
            "e": "listStatus", "E": status["transactionTime"], "s": status["symbol"], "g": status["orderListId"],
            "c": "OCO", "l": status["listStatusType"], "L": status["listOrderStatus"], "r": "NONE",
            "C": status["listClientOrderId"], "T": status["transactionTime"],
            "O": [{"s": o["symbol"], "i": o["orderId"], "c": o["clientOrderId"]} for o in status["orders"]],
        }

