"""IBKR's recorded TWS traffic (tests/venues/ibkr/corpus, sources in each file) through the real
SDK and the connector, and the emulator's frames against the same recordings:

- every recorded frame decodes through ib_async's own decoder (at the recording's server
  version) into what the file expects, and the order frames, through the connector's
  parsing and the order tracker, give the expected events (the fill with its commission);
- the emulator renders the same order, contract and account answers field for field as
  TWS did (its server version is the recordings' 164);
- every recorded error text maps through codes.py onto the expected outcome.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ib_async import IB

from tradebus.emulators.ibkr import listings, render, wire
from tradebus.emulators.ibkr.trailing import Trail
from tradebus.emulators.venue import EmulatedFill, EmulatedOrder
from tradebus.schemas.values import CancelReason, OrderStatus, OrderType, Side, TimeInForce
from tradebus.services.connector.errors import AuthFailed, OrderRefused, OutcomeUnknown, VenueBusy
from tradebus.services.connector.tracking import OrderTracker
from tradebus.services.connector.venues.ibkr import codes, groups, parsing

from .corpus import check_events, errors

CORPUS = Path(__file__).parent / "ibkr" / "corpus" / "frames"
COMMISSION_REPORT_FIELDS = 8  # ib_async unpacks commissionReport exactly


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / f"{name}.json").read_text())
    assert data["venue"] == "ibkr" and data["source"]
    return data


def replayed(data: dict[str, Any]) -> IB:
    """An ib_async IB whose wrapper has read the recorded frames, as from a TWS socket."""
    ib = IB()
    decoder = ib.client.decoder
    decoder.serverVersion = data["server_version"]
    for fields in data["frames"]:
        if fields[0] == "59":
            assert not any(fields[COMMISSION_REPORT_FIELDS:])
            fields = fields[:COMMISSION_REPORT_FIELDS]
        decoder.interpret(list(fields))
    return ib


def test_a_recorded_market_order_gives_one_fill_with_its_commission() -> None:
    data = recording("market-order-filled")
    ib = replayed(data)
    (trade,) = ib.trades()
    tracker = OrderTracker(venue="ibkr", account="main")
    snapshot = parsing.snapshot(trade, "TSLA")
    assert snapshot is not None and snapshot.venue_order_id == "1376327563"
    check_events(tracker.update(snapshot, 1), data["expect"])


def test_recorded_contract_details_give_the_instruments_rules() -> None:
    data = recording("contract-details")
    ib = IB()
    ib.client.decoder.serverVersion = data["server_version"]
    details: list[Any] = []
    ib.wrapper.contractDetails = lambda req_id, found: details.append(found)  # type: ignore[method-assign]
    for fields in data["frames"]:
        ib.client.decoder.interpret(list(fields))
    for found, expected in zip(details, data["expect"], strict=True):
        instrument = parsing.instrument("ibkr", expected["symbol"], found, 1)
        assert found.contract.conId == expected["con_id"] and found.contract.secType == expected["sec_type"]
        assert instrument.venue_symbol == str(expected["con_id"])
        assert (instrument.tick_size, instrument.lot_size, instrument.min_quantity) == (
            Decimal(expected["min_tick"]), Decimal(expected["size_increment"]), Decimal(expected["min_size"]))
        if "multiplier" in expected:
            assert found.contract.multiplier == expected["multiplier"]
            assert found.contract.lastTradeDateOrContractMonth == expected["last_trade"]
            assert instrument.expiry == f"{expected['last_trade'][:4]}-{expected['last_trade'][4:6]}-{expected['last_trade'][6:]}"


def test_recorded_positions_and_summary_give_the_accounts_state() -> None:
    data = recording("account")
    ib = replayed(data)
    positions = [parsing.position(p, parsing.unified(p.contract)) for p in ib.positions()]
    assert [(p.symbol, p.quantity, p.avg_price) for p in positions] == [
        (e["symbol"], Decimal(e["quantity"]), Decimal(e["avg_price"])) for e in data["expect"]["positions"]]
    summary = {value.tag: value.value for value in ib.wrapper.acctSummary.values()}
    assert summary == data["expect"]["summary"]


def _recorded_order() -> tuple[render.IbOrder, EmulatedOrder]:
    """The recorded TSLA order as the emulator would hold it."""
    tsla = next(listing for listing in listings.LISTINGS if listing.con_id == 76792991)
    ib = render.IbOrder(order_id=13, client_id=100, perm_id=1376327563, account="DU1234567", listing=tsla, tif="DAY",
                        order_ref="")
    order = EmulatedOrder(order_id=1, client_order_id="x", account="DU1234567", symbol="TSLA", side=Side.BUY,
                          order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY, quantity=Decimal(100))
    return ib, order


def _as_sent(fields: list[wire.Field]) -> list[str]:
    return [wire.text(field) for field in fields]


def test_the_emulator_renders_an_order_and_its_fill_as_tws_did() -> None:
    frames = recording("market-order-filled")["frames"]
    ib, order = _recorded_order()
    assert wire.SERVER_VERSION == 164
    fill = EmulatedFill(trade_id=1, price=Decimal("196.52"), quantity=Decimal(100), fee=Decimal(0), fee_currency="USD",
                        fee_rate=Decimal(0), maker=False, ts=1_677_240_296_000_000_000)
    order.fills.append(fill)
    order.filled, order.cost, order.status = Decimal(100), Decimal("19652"), OrderStatus.FILLED
    # the recorded strings carry one empty field beyond what TWS's decoders read at 164
    assert _as_sent(render.open_order(ib, order)) + [""] == frames[3]
    assert _as_sent(render.order_status(ib, order)) + [""] == frames[4]
    assert _as_sent(render.open_order(ib, order, commission=Decimal("1.00"))) + [""] == frames[5]
    assert _as_sent(render.commission_report("00025b46.63f8f39c.01.01", Decimal("1.00"), "USD")) + [""] == frames[6]
    executed = _as_sent(render.exec_details(-1, ib, order, fill, "00025b46.63f8f39c.01.01"))
    recorded = frames[2]
    assert executed[:15] + executed[16:] + [""] == recorded[:15] + recorded[16:]  # the time is the fill's own
    assert executed[15] == "20230224  12:04:56"


def test_the_emulator_answers_positions_as_tws_did() -> None:
    frames = recording("account")["frames"]
    aapl = next(listing for listing in listings.LISTINGS if listing.con_id == 265598)
    sent = _as_sent(render.position("ACCOUNT_ID", aapl, Decimal(-110), Decimal("201.8829709")))
    assert sent == frames[1]


@pytest.mark.parametrize("recorded", errors("ibkr"), ids=lambda r: r.name)
def test_every_recorded_tws_error_maps_to_its_outcome(recorded: Any) -> None:
    code = int(recorded.body["code"])
    if recorded.outcome == "notice":
        assert code in codes.NOTICES
        return
    if recorded.outcome == "connectivity":
        assert code in codes.LOST
        return
    error = codes.venue_error(str(code), recorded.body["message"], changes_state=recorded.operation in ("place", "cancel"))
    expected = {"refused": OrderRefused, "retryable": VenueBusy, "outcome_unknown": OutcomeUnknown, "auth": AuthFailed}
    assert isinstance(error, expected[recorded.outcome]), error
    if isinstance(error, OrderRefused):
        assert error.reason.value == recorded.reason and error.venue_code == str(code)


def _decoded(frames: list[list[wire.Field]]) -> IB:
    """An ib_async IB that has read the emulator's frames, as from its socket (completedOrder
    frames answer a reqCompletedOrders, whose future needs a running loop)."""
    ib = IB()
    ib.client.decoder.serverVersion = wire.SERVER_VERSION
    ib.wrapper.startReq("completedOrders")
    for fields in frames:
        ib.client.decoder.interpret(_as_sent(fields))
    return ib


async def test_a_brackets_trailing_exit_reads_back_through_ib_async_as_its_group() -> None:
    """No public recording shows a bracket or a TRAIL (rust-ibapi's tests hold a market order
    only): the emulator's frames for them go through ib_async's decoder, and the connector
    reads the group back from parentId / ocaGroup (and, once finished, parentPermId)."""
    entry, entry_order = _recorded_order()
    entry.order_ref, entry_order.order_type, entry_order.price = "in", OrderType.LIMIT, Decimal(190)
    exit_ = render.IbOrder(order_id=14, client_id=100, perm_id=1376327564, account="DU1234567", listing=entry.listing,
                           tif="GTC", order_ref="sl", oca_group="g1", oca_type=1, parent_id=13, held=True,
                           parent_perm_id=entry.perm_id,
                           trail=Trail(amount=Decimal("0.5"), percent=None, stop=Decimal("189.5")))
    exit_order = EmulatedOrder(order_id=0, client_order_id="sl", account="DU1234567", symbol="TSLA", side=Side.SELL,
                               order_type=OrderType.TRAILING_STOP, time_in_force=TimeInForce.GTC, quantity=Decimal(100))
    ib = _decoded([render.open_order(entry, entry_order), render.order_status(entry, entry_order),
                   render.open_order(exit_, exit_order), render.order_status(exit_, exit_order)])
    trades = ib.trades()
    trade = next(t for t in trades if t.order.orderRef == "sl")
    assert (trade.order.orderType, trade.order.auxPrice, trade.order.trailStopPrice, trade.order.ocaGroup,
            trade.order.ocaType, trade.order.parentId, trade.orderStatus.status) == (
        "TRAIL", 0.5, 189.5, "g1", 1, 13, "PreSubmitted")
    snapshot = parsing.snapshot(trade, "TSLA", groups.links(trade, trades))
    assert snapshot is not None and (snapshot.order_type, snapshot.trail_amount, snapshot.stop_price) == (
        OrderType.TRAILING_STOP, Decimal("0.5"), None)
    assert (snapshot.group_id, snapshot.contingent_on, snapshot.status) == ("g1", "in", OrderStatus.ACCEPTED)
    entry_snapshot = parsing.snapshot(trades[0], "TSLA", groups.links(trades[0], trades))
    assert entry_snapshot is not None and (entry_snapshot.group_id, entry_snapshot.contingent_on) == ("g1", None)
    # both cancelled at IB, as reqCompletedOrders lists them: the exit because its entry ended unfilled
    entry_order.status = exit_order.status = OrderStatus.CANCELLED
    finished = _decoded([render.completed_order(entry, entry_order), render.completed_order(exit_, exit_order)])
    done = {t.order.orderRef: t for t in finished.trades()}
    found = parsing.snapshot(done["sl"], "TSLA", groups.links(done["sl"], finished.trades()))
    assert found is not None and (found.status, found.cancel_reason, found.contingent_on) == (
        OrderStatus.CANCELLED, CancelReason.CONTINGENT, "in")
