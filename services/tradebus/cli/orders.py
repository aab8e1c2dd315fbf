"""`tradebus order place|modify|cancel|cancel-all`, `tradebus orders`, `tradebus positions`.

A command is published exactly as any client would: durably, to the command subject, with
its dedupe id as `Nats-Msg-Id`. The order's events are read from the event subject, which
the CLI subscribes to before publishing so it cannot miss the answer. Sending the same
command again (same client order id) creates nothing: JetStream reports the duplicate and
the CLI shows the order's current state from the order manager instead.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from decimal import Decimal, InvalidOperation

import msgspec
import nats

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, decoder, encode, reply_decoder
from tradebus.schemas.commands import (
    CancelAllOrders,
    CancelOrder,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
    command_dedupe_id,
)
from tradebus.schemas.control import GetOrder, GetPositions, ListOrders, OmsReply
from tradebus.schemas.events import (
    CommandRejected,
    FillEventBase,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderModified,
    OrderRejected,
)
from tradebus.schemas.lifecycle import OrderRecord
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import OrderType, Side, TimeInForce
from tradebus.shared.bus import MSG_ID

from .main import connect_client

_event_decoder = decoder(Family.ORDER_EVENT)
_oms_reply = reply_decoder(Family.OMS_QUERY)
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
        return msgspec.convert(fields, PlaceOrder)
    if args.order_command == "modify":
        fields = dict(client_order_id=args.client_order_id, modify_id=args.modify_id or _new_id(),
                      quantity=_text(args.qty), price=_text(args.price), stop_price=_text(args.stop_price), **common)
        return msgspec.convert(fields, ModifyOrder)
    if args.order_command == "cancel":
        return msgspec.convert(dict(client_order_id=args.client_order_id, **common), CancelOrder)
    return msgspec.convert(dict(request_id=_new_id(), symbol=args.symbol, side=args.side, **common), CancelAllOrders)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _answers(command: OrderCommand, event: OrderEvent) -> bool:
    """Whether an event on the account's subject belongs to this command."""
    if isinstance(command, CancelAllOrders):
        return isinstance(event, OrderCancelled) or (isinstance(event, CommandRejected) and event.request_id == command.request_id)
    return getattr(event, "client_order_id", None) == command.client_order_id


def _finished(command: OrderCommand, event: OrderEvent) -> bool:
    """Whether `event` ends what the command asked for (resting counts as an end for place)."""
    if isinstance(event, CommandRejected):
        return True
    if isinstance(command, PlaceOrder):
        return isinstance(event, (OrderRejected, OrderCancelled)) or event.__struct_config__.tag in ("filled", "expired")
    if isinstance(command, ModifyOrder):
        return isinstance(event, OrderModified) and event.modify_id == command.modify_id
    if isinstance(command, CancelOrder):
        return isinstance(event, OrderCancelled)
    return False  # cancel-all: as many cancellations as there were open orders


def describe(event: OrderEvent) -> str:
    tag = event.__struct_config__.tag
    if isinstance(event, CommandRejected):
        return f"{tag:<17} {event.action.value} refused: {event.reason.value} {event.message}"
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
    nc = await connect_client(args, "tradebus-order")
    try:
        return await _send_and_follow(nc, command, args)
    finally:
        await nc.close()


async def _send_and_follow(nc: nats.NATS, command: OrderCommand, args: argparse.Namespace) -> int:
    events: asyncio.Queue[tuple[bytes, OrderEvent]] = asyncio.Queue()

    async def on_event(msg: nats.aio.msg.Msg) -> None:
        try:
            event = _event_decoder.decode(msg.data)
        except DecodeError:
            return
        if _answers(command, event):
            events.put_nowait((msg.data, event))

    await nc.subscribe(subjects.order_events(command.venue, command.account), cb=on_event)
    ack = await nc.jetstream().publish(subjects.command(command.venue, command.account), encode(command),
                                       headers={MSG_ID: command_dedupe_id(command)})
    if ack.duplicate:
        print("tradebus: this command was already received; nothing new was sent", file=sys.stderr)
        return await _show_current(nc, command, args)
    deadline = time.monotonic() + args.timeout
    rested = False
    while True:
        remaining = min(deadline - time.monotonic(), RESTING_GRACE if rested else args.timeout)
        try:
            raw, event = await asyncio.wait_for(events.get(), max(remaining, 0.001))
        except TimeoutError:
            if rested or isinstance(command, CancelAllOrders):
                return 0
            print(f"tradebus: no answer from venue {command.venue!r} within {args.timeout:g}s", file=sys.stderr)
            return await _show_current(nc, command, args) or 1
        print(raw.decode() if args.json else describe(event), flush=True)
        if _finished(command, event):
            return 1 if isinstance(event, (OrderRejected, CommandRejected)) else 0
        if isinstance(command, PlaceOrder) and isinstance(event, OrderAccepted) and command.order_type is not OrderType.MARKET:
            rested = True  # a working limit/stop order: show immediate fills, then return


async def _show_current(nc: nats.NATS, command: OrderCommand, args: argparse.Namespace) -> int:
    """Print the order manager's record of the order the command is about."""
    if isinstance(command, CancelAllOrders):
        return 0
    reply = await _query(nc, GetOrder(venue=command.venue, account=command.account, client_order_id=command.client_order_id))
    if reply is None or not reply.orders:
        print("tradebus: the order manager has no record of it (yet)", file=sys.stderr)
        return 1
    record = reply.orders[0]
    print(encode(record).decode() if args.json else _record_line(record), flush=True)
    return 0


async def _query(nc: nats.NATS, request: msgspec.Struct) -> OmsReply | None:
    try:
        return _oms_reply.decode((await nc.request(subjects.OMS_QUERY, encode(request), timeout=5)).data)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        print("tradebus: the order manager did not answer (is `oms` running?)", file=sys.stderr)
        return None


def _record_line(record: OrderRecord) -> str:
    terms = f"{record.side.value if record.side else '?'} {record.quantity or '?'} {record.symbol}"
    price = f" @ {record.price}" if record.price is not None else ""
    reason = f" ({record.reject_reason.value})" if record.reject_reason else ""
    return (f"{record.venue:<8} {record.account:<10} {record.client_order_id:<26} {record.status.value:<17}{reason} "
            f"{terms}{price}, filled {record.cum_quantity}")


async def orders(args: argparse.Namespace) -> int:
    nc = await connect_client(args, "tradebus-orders")
    try:
        reply = await _query(nc, ListOrders(venue=args.venue, account=args.account, open_only=args.open))
    finally:
        await nc.close()
    if reply is None or not reply.ok:
        return 1
    for record in reply.orders:
        print(encode(record).decode() if args.json else _record_line(record))
    return 0


async def positions(args: argparse.Namespace) -> int:
    nc = await connect_client(args, "tradebus-positions")
    try:
        reply = await _query(nc, GetPositions(account=args.account))
    finally:
        await nc.close()
    if reply is None or not reply.ok:
        return 1
    for position in reply.positions:
        if args.json:
            print(encode(position).decode())
            continue
        venues = ", ".join(f"{v.venue} {v.quantity} @ {v.avg_price}" for v in position.venues)
        print(f"{position.account:<10} {position.symbol:<14} {position.quantity:>14}  pnl {position.realized_pnl}  ({venues})")
    return 0
