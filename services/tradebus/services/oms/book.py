"""The order manager's state: one `OrderRecord` per order, the latest `PositionUpdate`
per venue account and symbol and the latest balances per venue account (one `BalanceUpdate`
holding every currency), fed by routed commands and events. Pure (no I/O): the service
and `tradebus oms rebuild` run exactly this code over the same messages.

The state is a function of the two streams, each in stream order, and of nothing else:
- every message comes with its stream sequence, and a record ignores a message at or below
  the last sequence it applied from that stream (`route_seq`, `event_seq`), so redelivery
  (after a crash, a failed bucket write, a nats-server restart) changes nothing;
- the service reads ROUTE and EVENTS with two independent consumers, so a record may hear
  of its place command before or after its events, and a rebuild reads all of ROUTE first.
  Applying a place command and an event commutes: the place decides only the terms no event
  stated, a refused command is noted only on a record order events made (see lifecycle),
  `created_at` is the earliest and `updated_at` the latest time seen;
- every change is stamped with `ts`, the JetStream time of the message that caused it, never
  the wall clock.

Keys are the keys of the KV bucket: `order.<venue>.<account>.<client order id>`,
`position.<venue>.<account>.<encoded symbol>` and `balance.<venue>.<account>`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import msgspec

from tradebus.schemas import provenance, subjects
from tradebus.schemas.codecs import DecodeError, decoder, encode
from tradebus.schemas.commands import OrderCommand, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.control import (
    AggregatePosition,
    GetBalances,
    GetOrder,
    GetPositions,
    ListOrders,
    OmsReply,
    OmsRequest,
    VenueBalance,
    VenuePosition,
)
from tradebus.schemas.events import BalanceUpdate, CommandRejected, OrderEventBase, PositionUpdate
from tradebus.schemas.lifecycle import (
    OPEN_STATUSES,
    OrderRecord,
    apply_event,
    grouping,
    new_record,
    record_key,
    undecided_terms,
)
from tradebus.schemas.subjects import Family, encode_token
from tradebus.schemas.values import OrderStatus
from tradebus.shared.tenants import Tenant

ORDER_PREFIX = "order."
POSITION_PREFIX = "position."
BALANCE_PREFIX = "balance."
DEFAULT_MAX_PAYLOAD = 1024 * 1024  # nats-server's default max_payload
REPLY_ENVELOPE = 1024  # bytes of an OmsReply besides its orders (tags, flags, the cursor), with room to spare

_route_decoder = decoder(Family.ROUTE)
# The rejection family is read with the order-event decoder: a fill there is refused for
# what it is (provenance), not merely unreadable.
_EVENT_DECODERS = {Family.ORDER_EVENT: decoder(Family.ORDER_EVENT), Family.REJECTION: decoder(Family.ORDER_EVENT),
                   Family.ACCOUNT_EVENT: decoder(Family.ACCOUNT_EVENT)}
_record_decoder = msgspec.json.Decoder(OrderRecord)
_position_decoder = msgspec.json.Decoder(PositionUpdate)
_balances_decoder = msgspec.json.Decoder(BalanceUpdate)


Owns = Callable[[str, str], bool]  # (venue, account) -> whether a tenant may read it


class Undecodable(ValueError):
    """A message or stored value the order manager cannot read."""


class Refused(Undecodable):
    """An event that reads well but cannot be true: its subject's publisher may not say it
    (provenance.py). Never applied; quarantined like what cannot be read, with its reason."""

    def __init__(self, reason: provenance.Refusal, scope: str, event_type: str | int | None) -> None:
        super().__init__(f"{reason.value}: a {event_type!r} event that {scope} may not publish")
        self.reason = reason


def order_key(venue: str, account: str, client_order_id: str) -> str:
    return ORDER_PREFIX + record_key(venue, account, client_order_id)


def position_key(venue: str, account: str, symbol: str) -> str:
    return f"{POSITION_PREFIX}{venue}.{account}.{encode_token(symbol)}"


def balance_key(venue: str, account: str) -> str:
    return f"{BALANCE_PREFIX}{venue}.{account}"


def decode_route(subject: str, data: bytes) -> OrderCommand:
    """A routed command, refused (like the connector refuses it) when its body names another
    venue or account than its subject: the connector never executes such a command."""
    try:
        command: OrderCommand = _route_decoder.decode(data)
        parsed = subjects.parse(subject)
    except (*DecodeError, ValueError) as exc:
        raise Undecodable(str(exc)) from exc
    if (command.venue, command.account) != (parsed.venue, parsed.account):
        raise Undecodable("venue/account in the body differ from the subject")
    return command


def decode_event(subject: str, data: bytes) -> object | None:
    """An order, rejection or account event its subject's publisher may state; None for the
    other events of the stream (trading states). Raises Refused for one it may not state."""
    try:
        parsed = subjects.parse(subject)
        event_decoder = _EVENT_DECODERS.get(parsed.family)
        if event_decoder is None:
            return None
        event: msgspec.Struct = event_decoder.decode(data)
    except (*DecodeError, ValueError) as exc:
        raise Undecodable(str(exc)) from exc
    reason = provenance.refusal(parsed, event)
    if reason is not None:
        raise Refused(reason, provenance.scope(parsed), event.__struct_config__.tag)
    return event


class OmsState:
    def __init__(self) -> None:
        self.orders: dict[str, OrderRecord] = {}
        self.positions: dict[str, PositionUpdate] = {}
        self.anomalies = 0  # illegal transitions applied to this state (not those loaded)
        self._pending: set[str] = set()  # keys of orders in pending_new: stuck-order candidates
        # EVENTS sequence of each position's update, as far as this process applied it: the
        # bucket holds the venue's PositionUpdate as published. After a restart, the
        # service's catch-up re-applies in order whatever could be redelivered.
        self._position_seqs: dict[str, int] = {}
        # Per venue account: every currency's latest balance, merged into one BalanceUpdate
        # (the last update's id and time), and the EVENTS sequence it was applied at.
        self.balances: dict[str, BalanceUpdate] = {}
        self._balance_seqs: dict[str, int] = {}

    # --- feeding: each message comes with its stream sequence and time; the keys it changed
    # --- are returned
    def apply_route_message(self, subject: str, data: bytes, seq: int, ts: int) -> list[str]:
        """Raises Undecodable. Only a place command makes news (a group: one record per
        order): the others reach the order manager through the events the venue answers them with."""
        command = decode_route(subject, data)
        if isinstance(command, PlaceOrderGroup):
            return [key for order in command.placed_orders()
                    if (key := self.apply_routed(order, seq, ts, command.contingent_on(order))) is not None]
        key = self.apply_routed(command, seq, ts) if isinstance(command, PlaceOrder) else None
        return [] if key is None else [key]

    def apply_event_message(self, subject: str, data: bytes, seq: int, ts: int) -> list[str]:
        """Raises Undecodable."""
        key = self.apply_event(decode_event(subject, data), seq, ts)
        return [] if key is None else [key]

    def apply_routed(self, place: PlaceOrder, seq: int, ts: int, contingent_on: str | None = None) -> str | None:
        """Create the order's record; a record that events already created keeps its status
        and the terms they stated, and learns the rest and an earlier creation time.
        `contingent_on`: the order of its group it waits for."""
        key = order_key(place.venue, place.account, place.client_order_id)
        previous = self.orders.get(key)
        if previous is None:
            record = new_record(place, ts, contingent_on)
            return self._store_order(key, None, msgspec.structs.replace(record, route_seq=seq))
        if seq <= previous.route_seq:
            return None
        terms = {name: getattr(place, name) for name in undecided_terms(previous)}
        record = msgspec.structs.replace(previous, symbol=place.symbol, route_seq=seq, **terms,
                                         **grouping(previous, place, contingent_on))
        return self._store_order(key, previous, _stamped(record, previous, ts))

    def apply_event(self, event: object, seq: int, ts: int) -> str | None:
        """Order events go through the state machine, position updates replace the venue's
        previous one; anything else (balances, risk events) is not the order manager's."""
        if isinstance(event, PositionUpdate):
            return self._store_position(event, seq)
        if isinstance(event, BalanceUpdate):
            return self._store_balances(event, seq)
        if not isinstance(event, (OrderEventBase, CommandRejected)) or event.client_order_id is None:
            return None
        key = order_key(event.venue, event.account, event.client_order_id)
        previous = self.orders.get(key)
        if previous is None and isinstance(event, CommandRejected):
            return None  # names an order no order event made: nothing to annotate
        if previous is not None and seq <= previous.event_seq:
            return None
        updated = apply_event(previous, event, ts)
        if updated is previous:  # an event the record already saw, or a refusal it does not note
            return None
        return self._store_order(key, previous, _stamped(msgspec.structs.replace(updated, event_seq=seq), previous, ts))

    def _store_order(self, key: str, previous: OrderRecord | None, record: OrderRecord) -> str | None:
        if record == previous:
            return None
        if record.anomalies[-1:] != (previous.anomalies[-1:] if previous else []):
            self.anomalies += 1  # anomaly texts name their event, so a new last one is a new anomaly
        self._put_order(key, record)
        return key

    def _put_order(self, key: str, record: OrderRecord) -> None:
        self.orders[key] = record
        if record.status is OrderStatus.PENDING_NEW:
            self._pending.add(key)
        else:
            self._pending.discard(key)

    def _store_position(self, update: PositionUpdate, seq: int) -> str | None:
        key = position_key(update.venue, update.account, update.symbol)
        current = self.positions.get(key)
        # A re-published older update (reconciliation) must never replace a newer one, nor
        # a redelivered one a later one of the same time.
        if current is not None and (update == current or update.ts_event < current.ts_event
                                    or seq <= self._position_seqs.get(key, 0)):
            return None
        self.positions[key] = update
        self._position_seqs[key] = seq
        return key

    def _store_balances(self, update: BalanceUpdate, seq: int) -> str | None:
        """A snapshot replaces the account's balances, an update the currencies it names."""
        key = balance_key(update.venue, update.account)
        current = self.balances.get(key)
        if current is not None and (update.ts_event < current.ts_event or seq <= self._balance_seqs.get(key, 0)):
            return None
        merged = {} if update.snapshot or current is None else {b.currency: b for b in current.balances}
        merged.update((balance.currency, balance) for balance in update.balances)
        self.balances[key] = msgspec.structs.replace(update, balances=[merged[c] for c in sorted(merged)], snapshot=True)
        self._balance_seqs[key] = seq
        return key if self.balances[key] != current else None

    # --- the bucket ----------------------------------------------------------------------
    def load(self, key: str, value: bytes) -> None:
        """Take one stored entry as it is. Raises Undecodable."""
        try:
            if key.startswith(ORDER_PREFIX):
                self._put_order(key, _record_decoder.decode(value))
                return
            if key.startswith(POSITION_PREFIX):
                self.positions[key] = _position_decoder.decode(value)
                return
            if key.startswith(BALANCE_PREFIX):
                self.balances[key] = _balances_decoder.decode(value)
                return
        except DecodeError as exc:
            raise Undecodable(f"{key}: {exc}") from exc
        raise Undecodable(f"{key}: not an order manager key")

    def encoded(self, key: str) -> bytes:
        if key.startswith(BALANCE_PREFIX):
            return encode(self.balances[key])
        return encode(self.positions[key] if key.startswith(POSITION_PREFIX) else self.orders[key])

    def entries(self) -> dict[str, OrderRecord | PositionUpdate | BalanceUpdate]:
        """Everything the bucket should hold, by key."""
        return {**self.orders, **self.positions, **self.balances}

    # --- queries -------------------------------------------------------------------------
    def answer(self, request: OmsRequest, max_bytes: int = DEFAULT_MAX_PAYLOAD, tenant: Tenant | None = None) -> OmsReply:
        """`max_bytes`: the bus's limit on one message; a page of orders stops short of it.
        `tenant`: answer as that tenant sees the fleet, its own venue accounts only; a query
        that names none of them is refused."""
        if tenant is not None and not _names_own_account(tenant, request):
            return OmsReply(ok=False, error=f"tenant {tenant.name!r} may read only its accounts "
                                            f"({', '.join(map(str, tenant.accounts))}), none of which this query names")
        owns = None if tenant is None else tenant.owns
        match request:
            case GetOrder():
                record = self.orders.get(order_key(request.venue, request.account, request.client_order_id))
                return OmsReply(ok=True, orders=[] if record is None else [record])
            case ListOrders():
                return self._page_of_orders(request, max_bytes, owns)
            case GetPositions():
                return OmsReply(ok=True, positions=self.aggregate_positions(request.account, owns))
            case GetBalances():
                return OmsReply(ok=True, balances=self.venue_balances(venue=request.venue, account=request.account,
                                                                      owns=owns))

    def _page_of_orders(self, request: ListOrders, max_bytes: int, owns: Owns | None) -> OmsReply:
        matching = self.list_orders(venue=request.venue, account=request.account, open_only=request.open_only,
                                    owns=owns, group_id=request.group_id)
        following = matching
        if request.after is not None:
            after = _cursor_position(request.after)
            following = [record for record in matching if _listing_position(record) < after]
        page: list[OrderRecord] = []
        size = REPLY_ENVELOPE
        for record in following[: request.limit]:
            size += len(encode(record)) + 1  # and a comma
            if size > max_bytes and page:
                break
            page.append(record)
        more = len(page) < len(following)
        return OmsReply(ok=True, orders=page, total=len(matching), more=more,
                        next_cursor=_cursor(page[-1]) if more and page else None)

    def list_orders(self, *, venue: str | None = None, account: str | None = None, open_only: bool = False,
                    owns: Owns | None = None, group_id: str | None = None) -> list[OrderRecord]:
        """Newest first (by creation time, then key). `owns`: only the venue accounts it owns;
        `group_id`: only the orders of that group."""
        selected = [
            record for record in self.orders.values()
            if (venue is None or record.venue == venue) and (account is None or record.account == account)
            and (not open_only or record.status in OPEN_STATUSES)
            and (group_id is None or record.group_id == group_id)
            and (owns is None or owns(record.venue, record.account))
        ]
        return sorted(selected, key=_listing_position, reverse=True)

    def aggregate_positions(self, account: str | None = None, owns: Owns | None = None) -> list[AggregatePosition]:
        """One net position per account and symbol, summed over the venues that hold it
        (`owns`: the venue accounts it owns only)."""
        groups: dict[tuple[str, str], list[PositionUpdate]] = {}
        for update in self.positions.values():
            if (account is None or update.account == account) and (owns is None or owns(update.venue, update.account)):
                groups.setdefault((update.account, update.symbol), []).append(update)
        return [_aggregate(held_account, symbol, updates) for (held_account, symbol), updates in sorted(groups.items())]

    def venue_balances(self, *, venue: str | None = None, account: str | None = None,
                       owns: Owns | None = None) -> list[VenueBalance]:
        """Every currency of every venue account, by venue, account and currency (`owns`: the
        venue accounts it owns only)."""
        return [
            VenueBalance(venue=update.venue, account=update.account, currency=balance.currency, total=balance.total,
                         available=balance.available, ts_event=update.ts_event)
            for update in sorted(self.balances.values(), key=lambda u: (u.venue, u.account))
            if venue in (None, update.venue) and account in (None, update.account)
            and (owns is None or owns(update.venue, update.account))
            for balance in update.balances
        ]

    def stuck_orders(self, last_update_before: int) -> dict[str, OrderRecord]:
        """Orders still in pending_new whose last news is older than `last_update_before`, by key."""
        return {key: record for key in self._pending if (record := self.orders[key]).updated_at < last_update_before}


def _names_own_account(tenant: Tenant, request: OmsRequest) -> bool:
    """Whether the query's venue and account filters (None: any) match one of the tenant's
    venue accounts: a query about someone else's account is refused, not answered empty."""
    venue = getattr(request, "venue", None)
    account = request.account
    return any((venue is None or owned.venue == venue) and (account is None or owned.account == account)
               for owned in tenant.accounts)


def _listing_position(record: OrderRecord) -> tuple[int, str, str, str]:
    return record.created_at, record.venue, record.account, record.client_order_id


def _cursor(record: OrderRecord) -> str:
    """The `OrderCursor` after `record`: its listing position (all four parts are token-safe)."""
    return ".".join(map(str, _listing_position(record)))


def _cursor_position(cursor: str) -> tuple[int, str, str, str]:
    created_at, venue, account, client_order_id = cursor.split(".", 3)  # the contract checked its form
    return int(created_at), venue, account, client_order_id


def _stamped(record: OrderRecord, previous: OrderRecord | None, ts: int) -> OrderRecord:
    """`record` with the earliest and latest times seen, whatever order they arrived in."""
    if previous is None:
        return record
    created_at, updated_at = min(previous.created_at, ts), max(previous.updated_at, ts)
    if (record.created_at, record.updated_at) == (created_at, updated_at):
        return record
    return msgspec.structs.replace(record, created_at=created_at, updated_at=updated_at)


def _aggregate(account: str, symbol: str, updates: list[PositionUpdate]) -> AggregatePosition:
    venues = sorted(
        (VenuePosition(venue=u.venue, quantity=u.quantity, avg_price=u.avg_price, realized_pnl=u.realized_pnl)
         for u in updates),
        key=lambda position: position.venue,
    )
    return AggregatePosition(
        account=account, symbol=symbol, venues=venues,
        quantity=sum((v.quantity for v in venues), Decimal(0)),
        realized_pnl=sum((v.realized_pnl for v in venues), Decimal(0)),
    )
