"""One valid example of every wire message type (tests fail if a type has none)."""

from __future__ import annotations

from decimal import Decimal as D

from tradebus.schemas.commands import CancelAllOrders, CancelOrder, ModifyOrder, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.control import (
    AggregatePosition, GetInstruments, GetBalances, GetOrder, GetPositions, GetRiskLimits, GetTradingState, InstrumentsReply,
    ListInstruments, ListOrders, OmsReply, Reconcile, ReconcileReply, RiskLimitLevel, RiskLimitsReply, RiskRateLimits,
    ServiceStatus, SetTradingState, StreamSubscription, Subscribe, SubscriptionReply, TradingStateReply, Unsubscribe,
    VenueBalance,
    VenuePosition,
    VenueSession,
)
from tradebus.schemas.events import (
    Balance, BalanceUpdate, CancelAllDone, CommandAction, CommandRejected, Fill, OrderAccepted, OrderCancelled, OrderExpired,
    OrderFilled, OrderModified, OrderPartiallyFilled, OrderRejected, OrderSubmitted, OrderTriggered, PositionUpdate,
    TradingStateChanged,
)
from tradebus.schemas.lifecycle import OrderRecord
from tradebus.schemas.market import (
    Bar, BookChange, BookDelta, BookLevel, BookSnapshot, Instrument, Quote, StreamGap, StreamReconnected, Trade,
)
from tradebus.schemas.sizing import SizePosition, SizeReply, SizingMethod, SizingRefusal
from tradebus.schemas.values import (
    Aggressor, CancelReason, GroupKind, LiquiditySide, MarketDataKind, OrderStatus, OrderType, RejectReason, ServiceState,
    SessionState, Side, TimeInForce, TradingState,
)

T = 1_700_000_000_000_000_000
ORDER = dict(event_id="paper.demo.c1.1", client_order_id="c1", venue="paper", account="demo", symbol="BRK.B",
             venue_order_id="P1", ts_event=T, ts_recv=T + 5)
MD = dict(venue="paper", symbol="BTC/USDT:USDT", seq=7, ts_event=T, ts_recv=T + 1)
FILL = Fill(trade_id="F1", side=Side.BUY, price=D("420.10"), quantity=D("2"), fee=D("0.084"), fee_currency="USD",
            liquidity=LiquiditySide.TAKER)

EXAMPLES = [
    PlaceOrder(client_order_id="c1", venue="paper", account="demo", symbol="BTC/USDT", side=Side.BUY,
               order_type=OrderType.STOP_LIMIT, quantity=D("0.5"), price=D("60000.10"), stop_price=D("59990"),
               time_in_force=TimeInForce.GTD, expire_time=T, ttl_ms=5000),
    PlaceOrderGroup(group_id="g1", venue="paper", account="demo", kind=GroupKind.BRACKET, ttl_ms=5000, orders=[
        PlaceOrder(client_order_id="e1", venue="paper", account="demo", symbol="BTC/USDT", side=Side.BUY,
                   order_type=OrderType.LIMIT, quantity=D("0.5"), price=D("60000")),
        PlaceOrder(client_order_id="tp1", venue="paper", account="demo", symbol="BTC/USDT", side=Side.SELL,
                   order_type=OrderType.LIMIT, quantity=D("0.5"), price=D("61000")),
        PlaceOrder(client_order_id="sl1", venue="paper", account="demo", symbol="BTC/USDT", side=Side.SELL,
                   order_type=OrderType.TRAILING_STOP, quantity=D("0.5"), trail_percent=D("1.5")),
    ]),
    ModifyOrder(client_order_id="c1", modify_id="m1", venue="paper", account="demo", price=D("1.5"), ttl_ms=2000),
    CancelOrder(client_order_id="c1", venue="paper", account="demo"),
    CancelAllOrders(request_id="r1", venue="paper", account="demo", symbol="M&M", side=Side.SELL),
    OrderSubmitted(**ORDER),
    OrderAccepted(**ORDER, side=Side.SELL, order_type=OrderType.LIMIT, quantity=D("3"), price=D("420.1"),
                  time_in_force=TimeInForce.DAY, group_id="g1", contingent_on="e1"),
    OrderRejected(**ORDER, reason=RejectReason.TICK_SIZE, message="price 1.001 is not a multiple of 0.01"),
    OrderTriggered(**ORDER),
    OrderPartiallyFilled(**ORDER, fill=FILL, cum_quantity=D("2"), leaves_quantity=D("1"), avg_price=D("420.10")),
    OrderFilled(**ORDER, fill=FILL, cum_quantity=D("3"), leaves_quantity=D("0"), avg_price=D("420.10")),
    OrderModified(**ORDER, modify_id="m1", quantity=D("4"), price=D("421")),
    OrderCancelled(**ORDER, reason=CancelReason.REQUESTED, cum_quantity=D("0")),
    OrderExpired(**ORDER, cum_quantity=D("1")),
    CommandRejected(event_id="e", action=CommandAction.CANCEL, venue="paper", account="demo", client_order_id="c1",
                    reason=RejectReason.UNKNOWN_ORDER, ts_event=T, ts_recv=T),
    CancelAllDone(event_id="e4", venue="paper", account="demo", request_id="r1", cancelled=2, ts_event=T, ts_recv=T),
    BalanceUpdate(event_id="e2", venue="paper", account="demo", ts_event=T, ts_recv=T,
                  balances=[Balance(currency="USD", total=D("100"), available=D("90"))]),
    PositionUpdate(event_id="e3", venue="paper", account="demo", symbol="AAPL", quantity=D("-5"), avg_price=D("190"),
                   realized_pnl=D("-1.5"), ts_event=T, ts_recv=T),
    Quote(**MD, bid=D("1.1"), bid_size=D("2"), ask=D("1.2"), ask_size=D("3")),
    Trade(**MD, price=D("1.15"), size=D("0.001"), aggressor=Aggressor.SELL, trade_id="T1"),
    Bar(**MD, interval=60, start=T - 60 * 10**9, open=D("1"), high=D("2"), low=D("0.5"), close=D("1.5"),
        volume=D("10"), trades=4),
    BookSnapshot(**MD, bids=[BookLevel(price=D("1"), size=D("2"))], asks=[BookLevel(price=D("1.1"), size=D("1"))]),
    BookDelta(**MD, changes=[BookChange(side=Side.BUY, price=D("1"), size=D("0"))]),
    Instrument(**MD, venue_symbol="BTCUSDT", asset_class="crypto", base="BTC", quote="USDT", tick_size=D("0.01"),
               lot_size=D("0.00001"), min_quantity=D("0.00001"), min_notional=D("5")),
    StreamGap(**MD, kind=MarketDataKind.BOOK, gap_start=T - 10**9, reason="feed dropped"),
    StreamReconnected(**MD, kind=MarketDataKind.TRADE, reason="feed back"),
    ServiceStatus(service="connector", instance="paper", state=ServiceState.READY, version="1", pid=1, started_at=T,
                  ts_event=T, heartbeat_ms=1000, counters={"received": 1}),
    ServiceStatus(service="connector", instance="zerodha", state=ServiceState.DEGRADED, version="1", pid=1, started_at=T,
                  ts_event=T, heartbeat_ms=1000, detail="session expired",
                  session=VenueSession(venue="zerodha", account="main", state=SessionState.EXPIRED, since=T,
                                       expires_at=T, detail="zerodha refused the access token",
                                       action="tradebus login zerodha --request-token <request_token>")),
    Subscribe(symbols=["*"]),
    Subscribe(symbols=["BRK.B"], kinds=[MarketDataKind.INSTRUMENT], subscriber="5f0c2b7e-strategy-1"),
    Unsubscribe(symbols=["AAPL"], kinds=[MarketDataKind.QUOTE], subscriber="5f0c2b7e-strategy-1"),
    ListInstruments(),
    SubscriptionReply(ok=False, subscriptions=[StreamSubscription(symbol="AAPL", kinds=[MarketDataKind.BAR])],
                      unknown_symbols=["NOPE"], lease_ms=60_000),
    GetInstruments(symbols=["BTC/USDT"]),
    GetInstruments(),
    InstrumentsReply(ok=True, instruments=[
        Instrument(**MD, venue_symbol="BTCUSDT", asset_class="crypto", base="BTC", quote="USDT", tick_size=D("0.01"),
                   lot_size=D("0.00001"), min_quantity=D("0.00001"), min_notional=D("5"))]),
    InstrumentsReply(ok=False, unknown_symbols=["NOPE"]),
    TradingStateChanged(event_id="risk.1", account=None, state=TradingState.HALTED, reason="fat finger", ts_event=T),
    GetOrder(venue="paper", account="demo", client_order_id="c1"),
    ListOrders(open_only=True),
    GetPositions(account="demo"),
    GetBalances(venue="binance", account="main"),
    OmsReply(ok=True, orders=[OrderRecord(client_order_id="c1", venue="paper", account="demo", symbol="AAPL",
                                          status=OrderStatus.PARTIALLY_FILLED, side=Side.BUY, quantity=D("3"),
                                          cum_quantity=D("1"), created_at=T, updated_at=T)],
             positions=[AggregatePosition(account="demo", symbol="AAPL", quantity=D("1"), realized_pnl=D("0"),
                                          venues=[VenuePosition(venue="paper", quantity=D("1"), avg_price=D("190"),
                                                                realized_pnl=D("0"))])],
             balances=[VenueBalance(venue="binance", account="main", currency="USDT", total=D("1000"),
                                    available=D("900"), ts_event=T)]),
    Reconcile(account="demo", client_order_ids=["c1", "c2"]),
    ReconcileReply(known=["c1"], unknown=["c2"]),
    SetTradingState(account="demo", state=TradingState.REDUCING_ONLY, reason="drawdown"),
    GetTradingState(),
    TradingStateReply(ok=True, fleet=TradingState.ACTIVE, accounts={"demo": TradingState.HALTED}),
    GetRiskLimits(),
    RiskLimitsReply(ok=True, source="limits file /etc/tradebus/limits.toml",
                    defaults=RiskLimitLevel(allowed_symbols=["*"], max_quantity=D("5"), max_open_orders=1000),
                    instruments={"paper:AAPL": RiskLimitLevel(max_position=D("10"))},
                    account_states={"demo": TradingState.REDUCING_ONLY}, rate=RiskRateLimits(per_account=D("10"))),
    SizePosition(venue="paper", account="demo", symbol="BTC/USDT", side=Side.BUY, method=SizingMethod.FIXED_FRACTIONAL,
                 entry_price=D("60000"), stop_price=D("58000"), risk_fraction=D("0.01")),
    SizeReply(ok=True, quantity=D("0.05"), equity=D("10000"), currency="USDT",
              instrument=Instrument(**MD, venue_symbol="BTCUSDT", asset_class="crypto", base="BTC", quote="USDT",
                                    tick_size=D("0.01"), lot_size=D("0.00001"), min_quantity=D("0.00001"),
                                    min_notional=D("5")),
              reasoning=["equity 10000 USDT", "risk budget = risk fraction 0.01 x equity 10000 = 100"]),
    SizeReply(ok=False, refusal=SizingRefusal.NO_EQUITY, error="paper/demo holds no USDT (it holds USD)"),
]
