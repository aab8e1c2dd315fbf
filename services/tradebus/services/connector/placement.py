"""How a remote venue connector places an order; RemoteVenueConnector mixes this in.

- A place under a client order id the connector knows is recognized by its terms: the
  same terms are our own order delivered again (after a bus restart the delivery count
  starts over), answered with its latest event; other terms a `command_rejected`.
- The instrument's rules (tick, lot, min notional) are checked before sending: SDKs round
  prices and sizes to the venue's precision on their own.
- A venue refusing a duplicate client order id triggers a look-up by client order id with
  the same rule: an order of ours is never answered with a rejection. Another refusal
  becomes `rejected`; a busy venue is retried after its retry-after, else after the
  fleet's back-off (retry.py; the venue did nothing).
- An unknown outcome is resolved by looking the order up by client order id, repeatedly,
  and the place is re-sent only once the venue has confirmed it does not know the order;
  if it stays unknown the order is left pending for reconciliation, never re-sent blindly.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tradebus.schemas.commands import PLACE_TERMS, OrderCommand, PlaceOrder, PlaceOrderGroup, terms_differences
from tradebus.schemas.events import CommandAction, CommandRejected, group_unsupported
from tradebus.schemas.market import Instrument
from tradebus.schemas.values import RejectReason
from tradebus.shared.retry import Backoff

from .base import Capabilities, VenueEvent
from .errors import AuthFailed, OrderRefused, OutcomeUnknown, VenueBusy
from .tracking import OrderSnapshot, OrderTracker

log = logging.getLogger(__name__)

# The terms a venue's order report carries (OrderSnapshot, and OrderAccepted built from one).
VENUE_REPORTED_TERMS = tuple(name for name in PLACE_TERMS if name != "expire_time")


class Placement:
    # Provided by RemoteVenueConnector.
    venue: str
    tracker: OrderTracker
    settings: Any  # RemoteSettings
    instruments: Callable[[], list[Instrument]]
    capabilities: Capabilities
    submit: Callable[[PlaceOrder], Awaitable[OrderSnapshot]]
    lookup: Callable[[str, str], Awaitable[OrderSnapshot | None]]
    _call: Callable[..., Awaitable[Any]]
    _track: Callable[[OrderSnapshot], Awaitable[list[VenueEvent]]]
    _command_rejected: Callable[[OrderCommand, CommandAction, RejectReason, str, int], CommandRejected]

    async def _place(self, command: PlaceOrder) -> list[VenueEvent]:
        if self.tracker.knows(command.client_order_id):
            return self._placed_again(command, self.tracker.placed(command.client_order_id))
        violation = self._unsupported(command) or self._instrument_violation(command)
        if violation is not None:
            return list(self.tracker.rejected(command, violation[0], violation[1], time.time_ns()))
        self.tracker.submitting(command)
        try:
            snapshot = await self._call(lambda: self.submit(command))
        except OrderRefused as exc:
            if exc.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID:
                return await self._duplicate_at_venue(command)
            return list(self.tracker.rejected(command, exc.reason, exc.message, time.time_ns()))
        except AuthFailed as exc:
            return list(self.tracker.rejected(command, exc.reason, exc.message, time.time_ns()))
        except VenueBusy as exc:
            self.tracker.forget(command.client_order_id)
            return list(self.tracker.rejected(command, RejectReason.VENUE_UNAVAILABLE, exc.message, time.time_ns()))
        except OutcomeUnknown:
            return await self._resolve_unknown_place(command)
        return list(await self._track(snapshot))

    async def _place_group(self, group: PlaceOrderGroup) -> list[VenueEvent]:
        """A group of a kind the venue holds natively goes to `place_group`, unless every order
        of it is known already (a re-delivery: each order answered as a place under a known
        client order id is); another kind is answered `unsupported_order_group`."""
        if group.kind not in self.capabilities.order_groups:
            return list(group_unsupported(group, f"{self.venue} does not hold {group.kind.value} groups", time.time_ns()))
        orders = group.placed_orders()
        if all(self.tracker.knows(order.client_order_id) for order in orders):
            return [event for order in orders
                    for event in self._placed_again(order, self.tracker.placed(order.client_order_id))]
        return await self.place_group(group)

    async def place_group(self, group: PlaceOrderGroup) -> list[VenueEvent]:
        """Place a group of a kind the venue holds natively (`capabilities.order_groups`): every
        order's events; an order whose client order id is known is answered as a place is,
        never sent twice. A venue that declares no kinds is never asked."""
        raise OrderRefused(RejectReason.UNSUPPORTED_ORDER_GROUP, f"{self.venue} holds no order groups natively")

    def _placed_again(self, command: PlaceOrder, placed: object | None) -> list[VenueEvent]:
        """A place under a known client order id: with the terms it was `placed` with, the
        order's latest event (none before the venue answered); else a `command_rejected`."""
        differences = (
            ["its terms are not known"] if placed is None else terms_differences(placed, command, VENUE_REPORTED_TERMS)
        )
        if not differences:
            latest = self.tracker.latest(command.client_order_id)
            return [latest] if latest is not None else []
        return [
            self._command_rejected(
                command,
                CommandAction.PLACE,
                RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                f"client order id already used by another order: {', '.join(differences)}",
                time.time_ns(),
            )
        ]

    async def _duplicate_at_venue(self, command: PlaceOrder) -> list[VenueEvent]:
        """The venue holds an order under this client order id that the journal did not show:
        ours (same terms, e.g. sent before a crash) gets its events published; another, or
        none found, a refusal, the tracker forgetting the place it never made."""
        coid = command.client_order_id
        try:
            snapshot = await self._call(lambda: self.lookup(coid, command.symbol))
        except (VenueBusy, OutcomeUnknown):
            log.warning(
                "duplicate client order id; look-up failed, left for reconciliation", extra={"client_order_id": coid}
            )
            return []
        if snapshot is not None and not terms_differences(snapshot, command, VENUE_REPORTED_TERMS):
            return list(await self._track(snapshot))
        self.tracker.forget(coid)
        if snapshot is None:
            return [
                self._command_rejected(
                    command,
                    CommandAction.PLACE,
                    RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                    "client order id already used at the venue",
                    time.time_ns(),
                )
            ]
        return self._placed_again(command, snapshot)

    def _unsupported(self, command: PlaceOrder) -> tuple[RejectReason, str] | None:
        """An order type the venue does not take (a trailing stop where it has none) is
        refused here for every venue, before an adapter maps the type to the venue's."""
        if command.order_type not in self.capabilities.order_types:
            return RejectReason.UNSUPPORTED_ORDER_TYPE, f"{self.venue} takes no {command.order_type.value} orders"
        return None

    def _instrument_violation(self, command: PlaceOrder) -> tuple[RejectReason, str] | None:
        """The instrument's rules, checked before sending: SDKs round prices and sizes to
        the venue's precision on their own, which would trade other terms than requested."""
        instrument = next((i for i in self.instruments() if i.symbol == command.symbol), None)
        if instrument is None:
            return RejectReason.UNKNOWN_INSTRUMENT, f"{self.venue} does not list {command.symbol}"
        for name in ("price", "stop_price"):
            value = getattr(command, name)
            if value is not None and value % instrument.tick_size:
                return (
                    RejectReason.TICK_SIZE,
                    f"{name} {value} is not a multiple of the tick size {instrument.tick_size}",
                )
        if command.quantity % instrument.lot_size or command.quantity < instrument.min_quantity:
            return RejectReason.LOT_SIZE, (
                f"quantity {command.quantity} is not a multiple of {instrument.lot_size} of at least {instrument.min_quantity}"
            )
        reference = command.price or command.stop_price
        if reference is not None and reference * command.quantity < instrument.min_notional:
            return RejectReason.MIN_NOTIONAL, f"notional below the venue's minimum of {instrument.min_notional}"
        return None

    async def _resolve_unknown_place(self, command: PlaceOrder) -> list[VenueEvent]:
        """The place may or may not have reached the venue: ask, and re-send only after the
        venue has said it does not know the order (it refuses a duplicate client order id,
        so even a late arrival of the first request cannot make a second order)."""
        log.warning("place outcome unknown; looking the order up", extra={"client_order_id": command.client_order_id})
        backoff = Backoff(self.settings.lookup_interval)
        for _ in range(self.settings.lookup_attempts):
            await backoff.wait()
            with contextlib.suppress(VenueBusy, OutcomeUnknown):
                snapshot = await self._call(lambda: self.lookup(command.client_order_id, command.symbol))
                if snapshot is not None:
                    return list(await self._track(snapshot))
                try:
                    snapshot = await self._call(lambda: self.submit(command))
                except OrderRefused as exc:
                    if exc.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID:
                        continue  # the first request arrived meanwhile: look it up again
                    return list(self.tracker.rejected(command, exc.reason, exc.message, time.time_ns()))
                return list(await self._track(snapshot))
        log.error(
            "place outcome still unknown; left for reconciliation", extra={"client_order_id": command.client_order_id}
        )
        return []
