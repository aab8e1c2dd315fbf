"""Order groups the venue holds natively: brackets, OCO and OTO (commands.py places them).

Every order of a group is accepted at once and carries the group's id. An order that waits
for another (a bracket's exits wait for the entry, an OTO's second for the first: its
OrderAccepted names it in `contingent_on`) is held: open, cancellable, expiring with its
time in force, but not working (it neither fills nor triggers, nor locks cash) until the
order it waits for is done:
- done with a fill (filled; or cancelled or expired after a partial fill): it starts to
  work, against the book as it is then. On the other side of that order (a bracket's exits)
  it works for at most the quantity that order filled: an OrderModified (modify id
  `contingent`) cuts its quantity. Its funds (or, without short selling, its sellable
  quantity) are checked then, as a placement's are, its peers not counted twice: an order
  the account cannot carry then is cancelled (reason `venue`); a post-only order that would
  take is cancelled (`post_only_would_take`). A trailing stop starts following the market
  there: its first stop comes in the same OrderModified (from the book; where the side it
  follows is empty, from the average fill price of the order it waited for).
- done with no fill (rejected, cancelled, expired): it is cancelled (reason `contingent`).
Orders of one group waiting for the same order (a bracket's exits), or for none (an OCO's
two), are peers: the first fill of one, even partial, cancels the others at once (reason
`contingent`), within the same market update, before they can fill.

Cancelling an order by command cancels that order only; cancelling a bracket's entry or an
OTO's first before any fill thereby ends the group (its waiting orders are cancelled,
`contingent`). The venue keeps no group state outside its orders: `group_id`,
`contingent_on` and the trail terms come back from OrderAccepted, released quantities and
trailing stops from OrderModified (journal.py).
"""

from __future__ import annotations

from tradebus.schemas.events import OrderModified
from tradebus.schemas.values import CancelReason, OrderType

from .book import OrderBook
from .state import Core, Event, Order
from .trailing import followed_price, improves, trailing_stop

RELEASE_MODIFY_ID = "contingent"  # OrderModified.modify_id of a waiting order's release


class Groups:
    def __init__(self, core: Core, book: OrderBook) -> None:
        self._core = core
        self._book = book

    def legs(self, order: Order) -> list[Order]:
        """The orders of `order`'s group, in placement order (only itself if it has none)."""
        if order.group_id is None:
            return [order]
        account = self._core.state.accounts[order.account]
        return [account.orders[client_order_id] for client_order_id in account.groups[order.group_id]]

    def peers(self, order: Order) -> list[Order]:
        """The other orders of its group that wait for the same order (or for none)."""
        return [o for o in self.legs(order) if o is not order and o.contingent_on == order.contingent_on]

    def waiting_for(self, first: Order) -> list[Order]:
        return [o for o in self.legs(first) if o.contingent_on == first.client_order_id]

    def cancel_peers(self, order: Order) -> list[Event]:
        """What a fill of `order` does to its group: its open peers are cancelled."""
        if order.group_id is None:
            return []
        return [self._book.cancel(peer, CancelReason.CONTINGENT) for peer in self.peers(order) if peer.is_open]

    def release(self, order: Order, first: Order) -> list[Event]:
        """Let a held `order` work now that `first` is done with a fill: its quantity cut to
        what `first` filled (on the other side of it), a trailing stop's first stop set. Only
        what still has to change is reported, so releasing again reports nothing."""
        order.held = False
        quantity = order.quantity
        if order.side is not first.side and first.cum_quantity < quantity:
            quantity = first.cum_quantity
        stop = order.stop_price
        if order.order_type is OrderType.TRAILING_STOP:
            best = followed_price(order, self._book.book(order.symbol), None)
            if best is None:
                best = first.cum_notional / first.cum_quantity
            trailed = trailing_stop(order, best, self._core.instruments[order.symbol].tick_size)
            if trailed is not None and improves(order, trailed):
                stop = trailed
        if quantity == order.quantity and stop == order.stop_price:
            return []
        modified: OrderModified = self._book.amend(order, RELEASE_MODIFY_ID, quantity, stop)
        return [modified]
