"""`tradebus order place|modify|cancel|cancel-all`, `tradebus orders`, `tradebus positions`.

Built on the Python client (`tradebus.client`): a command is published durably with its
dedupe id as `Nats-Msg-Id`, and its events are read from the event subject. Sending the
same command again (same client order id) creates nothing: JetStream reports the duplicate
and the CLI shows the order's current state from the order manager instead.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from decimal import Decimal, InvalidOperation

import msgspec

from tradebus.client import Client, OrderTicket, QueryError
from tradebus.schemas.codecs import convert, encode
from tradebus.schemas.commands import (
    CancelAllOrders,
    CancelOrder,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
)
from tradebus.schemas.events import (
    CancelAllDone,
    CommandRejected,
    FillEventBase,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderModified,
    OrderRejected,
)
from tradebus.schemas.lifecycle import OrderRecord
from tradebus.schemas.values import OrderType, Side, TimeInForce

from .main import connect_client

RESTING_GRACE = 0.5  # seconds to wait for immediate fills after a limit order rests


def add_order_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    order = commands.add_parser("order", help="place, modify and cancel orders")
    order_commands = order.add_subparsers(dest="order_command", required=True)
    target = argparse.ArgumentParser(add_help=False, parents=[common])
    target.add_argument("--venue", default="paper")
    target.add_argument("--account", default="demo")
    target.add_argument("--json", action="store_true", help="print each event as its wire JSON")
    target.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the venue (default 10)")

    place = order_commands.add_parser("place", parents=[target], help="place an order and follow it")
    place.add_argument("--symbol", required=True)
    place.add_argument("--side", required=True, choices=[side.value for side in Side])
    place.add_argument("--qty", required=True, type=_decimal)
    place.add_argument("--type", default="market", choices=[kind.value for kind in OrderType], dest="order_type")
    place.add_argument("--price", type=_decimal)
    place.add_argument("--stop-price", type=_decimal)
    place.add_argument("--tif", default="GTC", choices=[tif.value for tif in TimeInForce])
    place.add_argument("--expire-time", type=int, help="GTD expiry, Unix nanoseconds")
    place.add_argument("--post-only", action="store_true")
    place.add_argument("--reduce-only", action="store_true")
    place.add_argument("--client-order-id", help="default: a new random id; reuse one to retry safely")

    modify = order_commands.add_parser("modify", parents=[target], help="change an open order")
    modify.add_argument("client_order_id")
    modify.add_argument("--qty", type=_decimal)
    modify.add_argument("--price", type=_decimal)
    modify.add_argument("--stop-price", type=_decimal)
    modify.add_argument("--modify-id", help="default: a new random id")

    cancel = order_commands.add_parser("cancel", parents=[target], help="cancel an open order")
    cancel.add_argument("client_order_id")

    cancel_all = order_commands.add_parser("cancel-all", parents=[target], help="cancel every open order of the account")
    cancel_all.add_argument("--symbol")
    cancel_all.add_argument("--side", choices=[side.value for side in Side])

    orders = commands.add_parser("orders", parents=[common], help="orders known to the order manager")
    orders.add_argument("--open", action="store_true", help="only open orders")
    orders.add_argument("--venue")
    orders.add_argument("--account")
    orders.add_argument("--json", action="store_true")

    positions = commands.add_parser("positions", parents=[common], help="positions aggregated across venues")
    positions.add_argument("--account")
    positions.add_argument("--json", action="store_true")


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None


def _new_id() -> str:
    return uuid.uuid4().hex[:24]


def build_command(args: argparse.Namespace) -> OrderCommand:
    """The wire command for `tradebus order ...`; raises msgspec.ValidationError if invalid."""
    common = {"venue": args.venue, "account": args.account, "ts_created": time.time_ns()}
    if args.order_command == "place":
        fields = dict(
            client_order_id=args.client_order_id or _new_id(), symbol=args.symbol, side=args.side,
            order_type=args.order_type, quantity=str(args.qty), time_in_force=args.tif, post_only=args.post_only,
            reduce_only=args.reduce_only, price=_text(args.price), stop_price=_text(args.stop_price),
            expire_time=args.expire_time, **common,
        )
        return convert(fields, PlaceOrder)
    if args.order_command == "modify":
        fields = dict(client_order_id=args.client_order_id, modify_id=args.modify_id or _new_id(),
                      quantity=_text(args.qty), price=_text(args.price), stop_price=_text(args.stop_price), **common)
        return convert(fields, ModifyOrder)
    if args.order_command == "cancel":
        return convert(dict(client_order_id=args.client_order_id, **common), CancelOrder)
    return convert(dict(request_id=_new_id(), symbol=args.symbol, side=args.side, **common), CancelAllOrders)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def describe(event: OrderEvent) -> str:
    tag = event.__struct_config__.tag
    if isinstance(event, CommandRejected):
        return f"{tag:<17} {event.action.value} refused: {event.reason.value} {event.message}"
    if isinstance(event, CancelAllDone):
        return f"{tag:<17} {event.cancelled} order(s) cancelled"
    head = f"{tag:<17} {event.client_order_id}"
    if isinstance(event, OrderAccepted):
        price = f" @ {event.price}" if event.price is not None else ""
        return f"{head} {event.side.value} {event.quantity} {event.symbol} {event.order_type.value}{price} (venue id {event.venue_order_id})"
    if isinstance(event, OrderRejected):
        return f"{head} {event.reason.value}: {event.message}"
    if isinstance(event, FillEventBase):
        fill = event.fill
        return (f"{head} {fill.quantity} @ {fill.price} ({fill.liquidity.value}, fee {fill.fee} {fill.fee_currency}); "
                f"filled {event.cum_quantity}, left {event.leaves_quantity}, avg {event.avg_price}")
    if isinstance(event, OrderModified):
        return f"{head} now {event.quantity} @ {event.price}"
    if isinstance(event, OrderCancelled):
        return f"{head} {event.reason.value}, filled {event.cum_quantity}"
    return head


async def order(args: argparse.Namespace) -> int:
    try:
        command = build_command(args)
    except msgspec.ValidationError as exc:
        print(f"tradebus: invalid order: {exc}", file=sys.stderr)
        return 2
    client = Client(await connect_client(args, "tradebus-order"))
    try:
        return await _follow(client, await client.send(command), args)
    finally:
        await client.close()


async def _follow(client: Client, ticket: OrderTicket, args: argparse.Namespace) -> int:
    """Print the command's events until it is answered (a working limit or stop order counts
    as answered once it rests and its immediate fills, if any, are shown)."""
    command = ticket.command
    if ticket.duplicate:
        print("tradebus: this command was already received; nothing new was sent", file=sys.stderr)
        return await _show_record(client, ticket, args)
    rested = False
    while True:
        try:
            event = await ticket.next_event(RESTING_GRACE if rested else args.timeout)
        except TimeoutError:
            if rested:
                return 0
            print(f"tradebus: no answer from venue {command.venue!r} within {args.timeout:g}s", file=sys.stderr)
            if isinstance(command, CancelAllOrders):
                return 1  # no single order to look up
            return await _show_record(client, ticket, args) or 1
        print(encode(event).decode() if args.json else describe(event), flush=True)
        if ticket.is_answer(event):
            return 1 if isinstance(event, (OrderRejected, CommandRejected)) else 0
        if isinstance(command, PlaceOrder) and isinstance(event, OrderAccepted) and command.order_type is not OrderType.MARKET:
            rested = True


async def _show_record(client: Client, ticket: OrderTicket, args: argparse.Namespace) -> int:
    """Print the order manager's record of the order the command is about."""
    try:
        record = await ticket.record()
    except QueryError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 1
    if record is None:
        print("tradebus: the order manager has no record of it (yet)", file=sys.stderr)
        return 1
    print(encode(record).decode() if args.json else _record_line(record), flush=True)
    return 0


def _record_line(record: OrderRecord) -> str:
    terms = f"{record.side.value if record.side else '?'} {record.quantity or '?'} {record.symbol}"
    price = f" @ {record.price}" if record.price is not None else ""
    reason = f" ({record.reject_reason.value})" if record.reject_reason else ""
    return (f"{record.venue:<8} {record.account:<10} {record.client_order_id:<26} {record.status.value:<17}{reason} "
            f"{terms}{price}, filled {record.cum_quantity}")


async def orders(args: argparse.Namespace) -> int:
    client = Client(await connect_client(args, "tradebus-orders"))
    try:
        records = await client.orders(venue=args.venue, account=args.account, open_only=args.open)
    except QueryError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    for record in records:
        print(encode(record).decode() if args.json else _record_line(record))
    return 0


async def positions(args: argparse.Namespace) -> int:
    client = Client(await connect_client(args, "tradebus-positions"))
    try:
        held = await client.positions(account=args.account)
    except QueryError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    for position in held:
        if args.json:
            print(encode(position).decode())
            continue
        venues = ", ".join(f"{v.venue} {v.quantity} @ {v.avg_price}" for v in position.venues)
        print(f"{position.account:<10} {position.symbol:<14} {position.quantity:>14}  pnl {position.realized_pnl}  ({venues})")
    return 0
