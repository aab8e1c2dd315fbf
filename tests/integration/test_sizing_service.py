"""Position sizing through the bus: the sizing service (real, in-process) asks the paper
connector for the instrument's rules and the order manager for the account's balances; a
client asks on `tradebus.ctl.sizing`, `tradebus size` (a real subprocess) prints the answer.

The paper venue reports a balance only after a fill moved it, so the account's balance is
published here as its venue would report it (a fill would leave an equity that is not a round
number to work sizes out by hand from)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal

from tradebus.client import Client
from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.events import Balance, BalanceUpdate
from tradebus.schemas.sizing import SizePosition, SizingMethod, SizingRefusal
from tradebus.schemas.values import Side
from tradebus.services.oms.service import OmsService
from tradebus.services.sizing.service import SizingService
from tradebus.shared.natsserver import NatsServer

from .helpers import paper_settings, running_connector, running_service, wait_until

EQUITY = Decimal(100_000)


def ask(symbol: str = "BTC/USDT", account: str = "demo", stop: int = 58_000) -> SizePosition:
    return SizePosition(venue="paper", account=account, symbol=symbol, side=Side.BUY,
                        method=SizingMethod.FIXED_FRACTIONAL, risk_fraction=Decimal("0.01"),
                        entry_price=Decimal(60_000), stop_price=Decimal(stop))


async def test_sizing_answers_from_the_fleets_balances_and_instruments(nats_server: NatsServer,
                                                                        cli_env: dict[str, str]) -> None:
    settings = paper_settings(nats_server.url, accounts={"demo": {"USDT": str(EQUITY)}})
    async with (running_connector(settings), running_service(OmsService(settings)) as oms,
                running_service(SizingService(settings))):
        client = await Client.connect(nats_server.url)
        try:
            report = BalanceUpdate(event_id="paper.demo.balance.1", venue="paper", account="demo", ts_event=1,
                                   ts_recv=1, balances=[Balance(currency="USDT", total=EQUITY, available=EQUITY)])
            await client.js.publish(subjects.account_events("paper", "demo"), encode(report))
            await wait_until(lambda: bool(oms.book.balances), "the balance reaches the order manager")
            # 100,000 USDT x 1 % = 1,000 at risk; 60,000 - 58,000 = 2,000 per BTC -> 0.5 BTC,
            # already a multiple of the lot 0.00001
            reply = await client.size(ask())
            assert reply.ok and reply.quantity == Decimal("0.5") and reply.equity == EQUITY
            assert reply.currency == "USDT" and reply.instrument is not None
            assert reply.instrument.lot_size == Decimal("0.00001")
            refusals = [(await client.size(request)).refusal for request in (
                ask(symbol="NOPE/USDT"), ask(account="ghost"), ask(symbol="AAPL"),  # AAPL: quoted in USD, none held
                ask(stop=61_000))]  # a buy's stop above its entry
            assert refusals == [SizingRefusal.UNKNOWN_INSTRUMENT, SizingRefusal.UNKNOWN_ACCOUNT,
                                SizingRefusal.NO_EQUITY, SizingRefusal.INVALID_REQUEST]
            undecodable = await client.nc.request(subjects.SIZING, b'{"type":"size_position"}', timeout=5)
            assert b'"refusal":"invalid_request"' in undecodable.data
        finally:
            await client.close()
        shown = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "tradebus.cli.main", "size", "--venue", "paper", "--account", "demo",
            "--symbol", "SOL/USDT", "--side", "buy", "--method", "kelly", "--win-probability", "0.55",
            "--win-loss-ratio", "1.5", "--entry", "150"], env=cli_env, capture_output=True, text=True, timeout=30)
    # f* = 0.55 - 0.45 / 1.5 = 0.25, half Kelly 0.125 x 100,000 = 12,500 / 150 = 83.333...
    # -> 83.333 in lots of 0.001
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "quantity 83.333 SOL/USDT"
    assert "  Kelly f* = p - (1 - p) / b = 0.55 - 0.45 / 1.5 = 0.25" in shown.stdout.splitlines()
