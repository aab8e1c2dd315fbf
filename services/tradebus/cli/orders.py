"""`tradebus order place|modify|cancel|cancel-all|bracket|oco|oto`, `tradebus orders`,
`tradebus positions`, `tradebus balances`.

Built on the Python client (`tradebus.client`): a command is published durably with its
dedupe id as `Nats-Msg-Id`, and its events are read from the event subject. Sending the
same command again (same client order id and terms) creates nothing: JetStream reports the
duplicate and the CLI shows the order's current state from the order manager instead. A
place whose client order id is already used (other terms, or the same after JetStream's
de-duplication window) is refused by risk with `duplicate_client_order_id`; the CLI prints
the refusal, then the state of the order under that id.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import TypeVar

import msgspec

from tradebus.client import Client, OrderTicket, QueryError
from tradebus.schemas.codecs import convert, encode
from tradebus.schemas.commands import (
    CancelAllOrders,
    CancelOrder,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
    PlaceOrderGroup,
)
from tradebus.schemas.events import (
    TERMINAL_EVENTS,
    CancelAllDone,
    CommandRejected,
    Fill,
    FillEventBase,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderModified,
    OrderRejected,
)
from tradebus.schemas.lifecycle import OrderRecord
from tradebus.schemas.values import OrderType, RejectReason, Side, TimeInForce
from tradebus.services.connector.venuespecs import DEFAULT_VENUE

from .busclient import connect_client
from .groups import GROUP_VERBS, add_group_commands, build_group
from .numbers import derived, plain

T = TypeVar("T")

RESTING_GRACE = 0.5  # seconds to wait for immediate fills after a limit order rests
TTL_HELP = "refuse it if the venue cannot get it within this many ms (default: the fleet's risk.command_ttl)"
DEFAULT_LISTING = 1000  # orders `tradebus orders` shows without --limit / --all


def add_order_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    order = commands.add_parser("order", help="place, modify and cancel orders")
    order_commands = order.add_subparsers(dest="subcommand", required=True)
    target = argparse.ArgumentParser(add_help=False, parents=[common])
    target.add_argument("--venue", default=DEFAULT_VENUE, help="venue whose connector executes it (default %(default)s)")
    target.add_argument("--account", default="demo", help="account at the venue (default %(default)s)")
    target.add_argument("--json", action="store_true", help="print each event as its wire JSON")
    target.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the venue (default 10)")

    place = order_commands.add_parser("place", parents=[target], help="place an order and follow it")
    place.add_argument("--symbol", required=True, help="instrument, in the venue's unified symbology (BTC/USDT, AAPL)")
    place.add_argument("--side", required=True, choices=[side.value for side in Side], help="%(choices)s")
    place.add_argument("--qty", required=True, type=_decimal, help="quantity, in units of the instrument")
    place.add_argument("--type", default="market", choices=[kind.value for kind in OrderType], dest="order_type",
                       help="%(choices)s (default %(default)s)")
    place.add_argument("--price", type=_decimal, help="limit price (limit and stop-limit orders)")
    place.add_argument("--stop-price", type=_decimal, help="trigger price (stop and stop-limit orders)")
    trail = place.add_mutually_exclusive_group()
    trail.add_argument("--trail-amount", type=_decimal, help="a trailing stop's distance from the best price, in price")
    trail.add_argument("--trail-percent", type=_decimal, help="a trailing stop's distance from the best price, in percent")
    place.add_argument("--tif", default="GTC", choices=[tif.value for tif in TimeInForce],
                       help="time in force: %(choices)s (default %(default)s)")
    place.add_argument("--expire-time", type=int, help="GTD expiry, Unix nanoseconds")
    place.add_argument("--post-only", action="store_true", help="refuse the order rather than take liquidity")
    place.add_argument("--reduce-only", action="store_true", help="refuse the order if it would grow the position")
    place.add_argument("--client-order-id", help="default: a new random id; reuse one to retry safely")
    place.add_argument("--ttl-ms", type=int, help=TTL_HELP)

    modify = order_commands.add_parser("modify", parents=[target], help="change an open order")
    modify.add_argument("client_order_id", help="the order to change")
    modify.add_argument("--qty", type=_decimal, help="new total quantity")
    modify.add_argument("--price", type=_decimal, help="new limit price")
    modify.add_argument("--stop-price", type=_decimal, help="new trigger price")
    modify.add_argument("--modify-id", help="default: a new random id")
    modify.add_argument("--ttl-ms", type=int, help=TTL_HELP)

    cancel = order_commands.add_parser("cancel", parents=[target], help="cancel an open order")
    cancel.add_argument("client_order_id", help="the order to cancel")
    cancel.add_argument("--cancel-id", help="default: a new random id; reuse one to retry that cancel safely")

    cancel_all = order_commands.add_parser("cancel-all", parents=[target], help="cancel every open order of the account")
    cancel_all.add_argument("--symbol", help="only orders in this instrument")
    cancel_all.add_argument("--side", choices=[side.value for side in Side], help="only orders on this side")
    add_group_commands(order_commands, target, _decimal, TTL_HELP)

    orders = commands.add_parser("orders", parents=[common], help="orders known to the order manager")
    orders.add_argument("--open", action="store_true", help="only open orders")
    orders.add_argument("--venue", help="only this venue's orders")
    orders.add_argument("--account", help="only this account's orders")
    orders.add_argument("--group", help="only the orders of this order group (its group id)")
    orders.add_argument("--json", action="store_true", help="one order record per line, as wire JSON")
    size = orders.add_mutually_exclusive_group()
    size.add_argument("--limit", type=_positive, default=DEFAULT_LISTING,
                      help=f"the newest N orders (default {DEFAULT_LISTING:,})")
    size.add_argument("--all", action="store_true", help="every order (paged through)")

    positions = commands.add_parser("positions", parents=[common], help="positions aggregated across venues")
    positions.add_argument("--account", help="only this account")
    positions.add_argument("--json", action="store_true", help="one position per line, as wire JSON")

    balances = commands.add_parser("balances", parents=[common], help="balances of every venue account")
    balances.add_argument("--venue", help="only this venue")
    balances.add_argument("--account", help="only this account")
    balances.add_argument("--json", action="store_true", help="one balance per line, as wire JSON")


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def _new_id() -> str:
    return uuid.uuid4().hex[:24]


def build_command(args: argparse.Namespace) -> OrderCommand:
    """The wire command for `tradebus order ...`; raises msgspec.ValidationError if invalid."""
    common = {"venue": args.venue, "account": args.account, "ts_created": time.time_ns()}
    if args.subcommand == "place":
        fields = dict(
            client_order_id=args.client_order_id or _new_id(), symbol=args.symbol, side=args.side,
            order_type=args.order_type, quantity=str(args.qty), time_in_force=args.tif, post_only=args.post_only,
            reduce_only=args.reduce_only, price=_text(args.price), stop_price=_text(args.stop_price),
            trail_amount=_text(args.trail_amount), trail_percent=_text(args.trail_percent),
            expire_time=args.expire_time, ttl_ms=args.ttl_ms, **common,
        )
        return convert(fields, PlaceOrder)
    if args.subcommand in GROUP_VERBS:
        return build_group(args, _new_id)
    if args.subcommand == "modify":
        fields = dict(client_order_id=args.client_order_id, modify_id=args.modify_id or _new_id(),
                      quantity=_text(args.qty), price=_text(args.price), stop_price=_text(args.stop_price),
                      ttl_ms=args.ttl_ms, **common)
        return convert(fields, ModifyOrder)
    if args.subcommand == "cancel":
        return convert(dict(client_order_id=args.client_order_id, cancel_id=args.cancel_id or _new_id(), **common),
                       CancelOrder)
    return convert(dict(request_id=_new_id(), symbol=args.symbol, side=args.side, **common), CancelAllOrders)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def describe(event: OrderEvent) -> str:
    """One readable line."""
    tag = event.__struct_config__.tag
    if isinstance(event, CommandRejected):
        return f"{tag:<17} {event.action.value} refused: {event.reason.value} {event.message}"
    if isinstance(event, CancelAllDone):
        return f"{tag:<17} {event.cancelled} order(s) cancelled"
    head = f"{tag:<17} {event.client_order_id}"
    if isinstance(event, OrderAccepted):
        waits = f", works once {event.contingent_on} has filled" if event.contingent_on else ""
        return f"{head} {_terms(event)} (venue id {event.venue_order_id}{waits})"
    if isinstance(event, OrderRejected):
        return f"{head} {_terms(event)} {event.reason.value}: {event.message}"
    if isinstance(event, FillEventBase):
        fill = event.fill
        return (f"{head} {plain(fill.quantity)} @ {plain(fill.price)} ({fill.liquidity.value}, fee {_fee(fill)}); "
                f"filled {plain(event.cum_quantity)}, left {plain(event.leaves_quantity)}, avg {derived(event.avg_price)}")
    if isinstance(event, OrderModified):
        at = f" @ {plain(event.price)}" if event.price is not None else ""
        stop = f" trigger {plain(event.stop_price)}" if event.stop_price is not None else ""
        return f"{head} now {plain(event.quantity)}{at}{stop}"
    if isinstance(event, OrderCancelled):
        return f"{head} {event.reason.value}, filled {plain(event.cum_quantity)}"
    return head


def _terms(order: OrderAccepted | OrderRejected | OrderRecord) -> str:
    """`buy 0.5 BTC/USDT limit @ 58000`, `sell 10 AAPL stop_limit @ 219 trigger 220`, `sell 1 X
    trailing_stop trail 2%`; `?` for what nobody knows (a rejection carries no stop or trail)."""
    side, quantity, order_type = order.side, order.quantity, order.order_type
    kind = f" {order_type.value}" if order_type else ""
    at = f" @ {plain(order.price)}" if order.price is not None else ""
    stop_price = getattr(order, "stop_price", None)
    trail_amount, trail_percent = getattr(order, "trail_amount", None), getattr(order, "trail_percent", None)
    stop = f" trigger {plain(stop_price)}" if stop_price is not None else ""
    trail = (f" trail {plain(trail_amount)}" if trail_amount is not None
             else f" trail {plain(trail_percent)}%" if trail_percent is not None else "")
    return (f"{side.value if side else '?'} {plain(quantity) if quantity is not None else '?'} "
            f"{order.symbol}{kind}{at}{stop}{trail}")


def _fee(fill: Fill) -> str:
    return f"{plain(fill.fee)} {fill.fee_currency}" if fill.fee_currency else f"{plain(fill.fee)} (currency not reported)"


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
    settled: set[str] = set()  # a group's orders accepted (working or waiting) or done
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
            if _reused_order_id(command, event):  # the order under that id is what the user needs to see
                await _show_record(client, ticket, args)
            return 1 if isinstance(event, (OrderRejected, CommandRejected)) else 0
        if isinstance(command, PlaceOrder) and isinstance(event, OrderAccepted) and command.order_type is not OrderType.MARKET:
            rested = True
        if isinstance(command, PlaceOrderGroup) and isinstance(event, (OrderAccepted, *TERMINAL_EVENTS)):
            settled.add(event.client_order_id)
            rested = len(settled) == len(command.orders)


def _reused_order_id(command: OrderCommand, event: OrderEvent) -> bool:
    """Whether `event` refuses the place because its client order id names an order already."""
    return (isinstance(command, PlaceOrder) and isinstance(event, CommandRejected)
            and event.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID)


async def _show_record(client: Client, ticket: OrderTicket, args: argparse.Namespace) -> int:
    """Print the order manager's record of the order the command is about (a group's: of each of its orders)."""
    command = ticket.command
    try:
        if isinstance(command, PlaceOrderGroup):
            records = await client.orders(venue=command.venue, account=command.account, group_id=command.group_id)
        else:
            records = [record] if (record := await ticket.record()) is not None else []
    except QueryError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 1
    if not records:
        print("tradebus: the order manager has no record of it (yet)", file=sys.stderr)
        return 1
    for record in records:
        print(encode(record).decode() if args.json else _record_line(record), flush=True)
    return 0


def _record_line(record: OrderRecord) -> str:
    reason = f" ({record.reject_reason.value})" if record.reject_reason else ""
    return (f"{record.venue:<8} {record.account:<10} {record.client_order_id:<26} {record.status.value:<17}{reason} "
            f"{_terms(record)}, "
            f"filled {plain(record.cum_quantity)}{_fees(record)}{_grouping(record)}")


def _grouping(record: OrderRecord) -> str:
    """`, group g1 after g1-e`: the order group it belongs to and the order it waits for."""
    if record.group_id is None:
        return ""
    return f", group {record.group_id}" + (f" after {record.contingent_on}" if record.contingent_on else "")


def _fees(record: OrderRecord) -> str:
    """`, fee 0.00001 BTC` (each currency the fills were charged in); nothing before a fill."""
    if not record.fees:
        return ""
    return ", fee " + " + ".join(f"{plain(fee)} {currency or '(currency not reported)'}"
                                 for currency, fee in sorted(record.fees.items()))


async def orders(args: argparse.Namespace) -> int:
    """Print page by page as the order manager answers; say on stderr when --limit cut the
    listing (stdout stays one order per line, also with --json)."""
    client = Client(await connect_client(args, "tradebus-orders"))
    shown, total = 0, 0
    try:
        async for page in client.order_pages(venue=args.venue, account=args.account, open_only=args.open,
                                             group_id=args.group, page_size=1000 if args.all else min(args.limit, 10_000)):
            total = page.total or 0
            for record in page.orders if args.all else page.orders[: args.limit - shown]:
                print(encode(record).decode() if args.json else _record_line(record))
                shown += 1
            if not args.all and shown >= args.limit:
                break
    except QueryError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    if not args.all and shown < total:
        print(f"tradebus: showing {shown:,} of {total:,}; --all for everything", file=sys.stderr)
    return 0


async def _ask(args: argparse.Namespace, name: str, query: Callable[[Client], Awaitable[list[T]]]) -> list[T] | None:
    """One order-manager query as `name`: its answer, or None once a refusal is printed."""
    client = Client(await connect_client(args, name))
    try:
        return await query(client)
    except QueryError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return None
    finally:
        await client.close()


async def positions(args: argparse.Namespace) -> int:
    held = await _ask(args, "tradebus-positions", lambda client: client.positions(account=args.account))
    if held is None:
        return 1
    for position in held:
        if args.json:
            print(encode(position).decode())
            continue
        venues = ", ".join(f"{v.venue} {plain(v.quantity)} @ {derived(v.avg_price)}" for v in position.venues)
        print(f"{position.account:<10} {position.symbol:<14} {plain(position.quantity):>14}  "
              f"pnl {derived(position.realized_pnl)}  ({venues})")
    return 0


async def balances(args: argparse.Namespace) -> int:
    held = await _ask(args, "tradebus-balances", lambda client: client.balances(venue=args.venue, account=args.account))
    if held is None:
        return 1
    for balance in held:
        if args.json:
            print(encode(balance).decode())
            continue
        print(f"{balance.venue:<10} {balance.account:<10} {balance.currency:<8} {plain(balance.total):>20}  "
              f"available {plain(balance.available)}")
    return 0
