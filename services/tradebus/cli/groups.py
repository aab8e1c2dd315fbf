"""`tradebus order bracket|oco|oto`: order groups from the command line (GroupKind).

Each order of a group gets the group's id and a suffix as its client order id (`<group
id>-e`, `-tp`, `-sl` for a bracket; `-a`, `-b` for an OCO; `-1`, `-2` for an OTO), so a
retry with the same `--group-id` and terms is the same group, recognized as such.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tradebus.schemas.codecs import convert
from tradebus.schemas.commands import PlaceOrderGroup
from tradebus.schemas.values import GroupKind, OrderType, Side, TimeInForce

GROUP_VERBS = ("bracket", "oco", "oto")


def add_group_commands(order_commands: argparse._SubParsersAction[argparse.ArgumentParser],
                       target: argparse.ArgumentParser, decimal: Callable[[str], Decimal], ttl_help: str) -> None:
    group = argparse.ArgumentParser(add_help=False, parents=[target])
    group.add_argument("--symbol", required=True, help="instrument, in the venue's unified symbology")
    group.add_argument("--side", required=True, choices=[side.value for side in Side], help="%(choices)s")
    group.add_argument("--qty", required=True, type=decimal, help="quantity of each order")
    group.add_argument("--tif", default="GTC", choices=[tif.value for tif in TimeInForce],
                       help="time in force of every order: %(choices)s (default %(default)s)")
    group.add_argument("--group-id", help="default: a new random id; reuse one to retry safely")
    group.add_argument("--ttl-ms", type=int, help=ttl_help)

    bracket = order_commands.add_parser(
        "bracket", parents=[group], help="an entry with a take-profit and/or a stop-loss that work once it fills")
    bracket.add_argument("--type", default="market", choices=["market", "limit"], dest="order_type",
                         help="the entry's type: %(choices)s (default %(default)s)")
    bracket.add_argument("--price", type=decimal, help="the entry's limit price")
    bracket.add_argument("--take-profit", type=decimal, help="limit price of the take-profit exit")
    stop = bracket.add_mutually_exclusive_group()
    stop.add_argument("--stop-loss", type=decimal, help="stop price of a stop (market) exit")
    stop.add_argument("--stop-limit", type=decimal, help="stop price of a stop-limit exit (with --stop-limit-price)")
    stop.add_argument("--trail-amount", type=decimal, help="a trailing stop exit, this far (in price) behind the best price")
    stop.add_argument("--trail-percent", type=decimal, help="a trailing stop exit, this percentage behind the best price")
    bracket.add_argument("--stop-limit-price", type=decimal, help="limit price of the stop-limit exit")

    oco = order_commands.add_parser("oco", parents=[group],
                                    help="a limit and a stop on one side: the first fill of either cancels the other")
    oco.add_argument("--price", type=decimal, required=True, help="the limit order's price")
    oco.add_argument("--stop-price", type=decimal, required=True, help="the stop order's stop price")
    oco.add_argument("--stop-limit-price", type=decimal, help="make the stop a stop-limit at this price")

    oto = order_commands.add_parser("oto", parents=[group],
                                     help="an order, and a second one that works once the first has filled")
    oto.add_argument("--type", default="market", choices=["market", "limit"], dest="order_type",
                     help="the first order's type: %(choices)s (default %(default)s)")
    oto.add_argument("--price", type=decimal, help="the first order's limit price")
    oto.add_argument("--then-side", choices=[side.value for side in Side], help="the second's side (default: the other)")
    oto.add_argument("--then-qty", type=decimal, help="the second's quantity (default --qty)")
    oto.add_argument("--then-type", default="limit", choices=[kind.value for kind in OrderType],
                     help="the second's type: %(choices)s (default %(default)s)")
    oto.add_argument("--then-price", type=decimal, help="the second's limit price")
    oto.add_argument("--then-stop-price", type=decimal, help="the second's stop price")
    oto.add_argument("--then-trail-amount", type=decimal, help="the second's trail (a trailing stop), in price")
    oto.add_argument("--then-trail-percent", type=decimal, help="the second's trail (a trailing stop), in percent")


def build_group(args: argparse.Namespace, new_id: Callable[[], str]) -> PlaceOrderGroup:
    """The wire group for `tradebus order bracket|oco|oto`; raises msgspec.ValidationError if invalid."""
    group_id = args.group_id or new_id()
    scope = {"venue": args.venue, "account": args.account}
    common = {**scope, "symbol": args.symbol, "quantity": args.qty, "time_in_force": args.tif, "group_id": group_id}
    side = Side(args.side)
    other = Side.SELL if side is Side.BUY else Side.BUY
    if args.subcommand == "bracket":
        orders = [_order(common, f"{group_id}-e", side, args.order_type, price=args.price)]
        if args.take_profit is not None:
            orders.append(_order(common, f"{group_id}-tp", other, "limit", price=args.take_profit))
        if args.stop_loss is not None:
            orders.append(_order(common, f"{group_id}-sl", other, "stop", stop_price=args.stop_loss))
        elif args.stop_limit is not None:
            orders.append(_order(common, f"{group_id}-sl", other, "stop_limit", stop_price=args.stop_limit,
                                 price=args.stop_limit_price))
        elif args.trail_amount is not None or args.trail_percent is not None:
            orders.append(_order(common, f"{group_id}-sl", other, "trailing_stop", trail_amount=args.trail_amount,
                                 trail_percent=args.trail_percent))
    elif args.subcommand == "oco":
        stop_type = "stop" if args.stop_limit_price is None else "stop_limit"
        orders = [_order(common, f"{group_id}-a", side, "limit", price=args.price),
                  _order(common, f"{group_id}-b", side, stop_type, stop_price=args.stop_price,
                         price=args.stop_limit_price)]
    else:
        then = {**common, "quantity": args.then_qty or args.qty}
        orders = [_order(common, f"{group_id}-1", side, args.order_type, price=args.price),
                  _order(then, f"{group_id}-2", Side(args.then_side) if args.then_side else other, args.then_type,
                         price=args.then_price, stop_price=args.then_stop_price, trail_amount=args.then_trail_amount,
                         trail_percent=args.then_trail_percent)]
    return convert({**scope, "group_id": group_id, "kind": GroupKind(args.subcommand), "orders": orders,
                    "ttl_ms": args.ttl_ms, "ts_created": time.time_ns()}, PlaceOrderGroup)


def _order(common: dict[str, Any], client_order_id: str, side: Side, order_type: str, **prices: Decimal | None
           ) -> dict[str, Any]:
    return {**common, "client_order_id": client_order_id, "side": side, "order_type": order_type,
            **{name: value for name, value in prices.items() if value is not None}}
