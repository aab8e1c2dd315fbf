"""The contracts the emulated TWS knows, and finding one from the contract a request names.

AAPL's and TSLA's conIds are IB's, as recorded (rust-ibapi's tws_interactions.yaml and
src/orders/sync.rs, tests/venues/ibkr/corpus); EUR.USD's is IB's well-known one. The future
and the option are the emulator's own (IB's ids for those contracts are not recorded anywhere
public we use), shaped as IB shapes them: a future's local symbol is root + month code +
year digit (ESH7), an option's the OCC symbol padded to 21 characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradebus.simulator.rules import InstrumentSpec

ZERO = Decimal(0)


@dataclass(frozen=True)
class Listing:
    symbol: str  # the unified id the engine trades it under
    con_id: int
    ib_symbol: str
    sec_type: str  # STK, CASH, FUT, OPT
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    min_tick: Decimal
    long_name: str
    initial_price: Decimal
    multiplier: str = ""
    last_trade: str = ""  # YYYYMMDD (futures, options)
    strike: Decimal = ZERO
    right: str = ""  # C / P (options)
    size_increment: Decimal = Decimal(1)
    industry: str = ""

    @property
    def execution_exchange(self) -> str:
        """Where an execution reports it traded: ISLAND (Nasdaq's IB code) for Nasdaq stocks,
        as the recorded TSLA execution does, else the listing's exchange."""
        return "ISLAND" if self.primary_exchange == "NASDAQ" else self.exchange

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0] if self.sec_type in ("CASH", "STK") else self.ib_symbol

    @property
    def asset_class(self) -> str:
        return {"STK": "equity", "CASH": "fx", "FUT": "future", "OPT": "option"}[self.sec_type]

    def spec(self) -> InstrumentSpec:
        return InstrumentSpec(symbol=self.symbol, base=self.base, quote=self.currency, tick_size=self.min_tick,
                              lot_size=self.size_increment, min_quantity=self.size_increment, min_notional=ZERO,
                              initial_price=self.initial_price, asset_class=self.asset_class)


LISTINGS = (
    Listing(symbol="AAPL", con_id=265598, ib_symbol="AAPL", sec_type="STK", exchange="SMART", primary_exchange="NASDAQ",
            currency="USD", local_symbol="AAPL", trading_class="NMS", min_tick=Decimal("0.01"), long_name="APPLE INC",
            initial_price=Decimal("230.00"), industry="Technology"),
    Listing(symbol="TSLA", con_id=76792991, ib_symbol="TSLA", sec_type="STK", exchange="SMART",
            primary_exchange="NASDAQ", currency="USD", local_symbol="TSLA", trading_class="NMS",
            min_tick=Decimal("0.01"), long_name="TESLA INC", initial_price=Decimal("400.00"),
            industry="Consumer, Cyclical"),
    # IB names a share class with a space (BRK B); the bus with a dot. The conId is the emulator's own.
    Listing(symbol="BRK.B", con_id=730283300, ib_symbol="BRK B", sec_type="STK", exchange="SMART",
            primary_exchange="NYSE", currency="USD", local_symbol="BRK B", trading_class="BRK B",
            min_tick=Decimal("0.01"), long_name="BERKSHIRE HATHAWAY INC-CL B", initial_price=Decimal("470.00"),
            industry="Financial"),
    Listing(symbol="EUR/USD", con_id=12087792, ib_symbol="EUR", sec_type="CASH", exchange="IDEALPRO",
            primary_exchange="", currency="USD", local_symbol="EUR.USD", trading_class="EUR.USD",
            min_tick=Decimal("0.00005"), long_name="European Monetary Union Euro", initial_price=Decimal("1.08500")),
    Listing(symbol="FUT:ES:202703:CME", con_id=730283085, ib_symbol="ES", sec_type="FUT", exchange="CME",
            primary_exchange="", currency="USD", local_symbol="ESH7", trading_class="ES", min_tick=Decimal("0.25"),
            long_name="E-mini S&P 500", initial_price=Decimal("6100.00"), multiplier="50", last_trade="20270319"),
    Listing(symbol="OPT:AAPL:20270115:C:250", con_id=730283190, ib_symbol="AAPL", sec_type="OPT", exchange="SMART",
            primary_exchange="", currency="USD", local_symbol="AAPL  270115C00250000", trading_class="AAPL",
            min_tick=Decimal("0.01"), long_name="APPLE INC", initial_price=Decimal("12.50"), multiplier="100",
            last_trade="20270115", strike=Decimal(250), right="C"),
)


def find(con_id: str, ib_symbol: str, sec_type: str, last_trade: str, strike: str, right: str,
         currency: str) -> list[Listing]:
    """The listings a request's contract names: by conId when it gives one, else every listing
    its given fields match (empty fields match anything, as TWS treats them)."""
    if con_id not in ("", "0"):
        return [listing for listing in LISTINGS if str(listing.con_id) == con_id]
    strike_value = Decimal(strike) if strike not in ("", "0", "0.0") else None
    return [
        listing for listing in LISTINGS
        if listing.ib_symbol == ib_symbol and sec_type in ("", listing.sec_type)
        and listing.last_trade.startswith(last_trade) and (strike_value is None or listing.strike == strike_value)
        and right in ("", "?", listing.right, listing.right[:1]) and currency in ("", listing.currency)
    ]
