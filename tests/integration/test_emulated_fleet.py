"""An emulated venue as a new user tries it: `tradebus up --venue binance --emulate`, then
the CLI; and `tradebus emulate` / `tradebus run connector` for a venue of one's own."""

from __future__ import annotations

import json
import subprocess
import time
import tomllib
from decimal import Decimal
from pathlib import Path

import psutil

from tradebus.schemas.codecs import decoder
from tradebus.schemas.events import FillEventBase
from tradebus.schemas.subjects import Family
from tradebus.shared.config import EXIT_CONFIG

from .test_cli import TRADEBUS, Fleet, clean_env, tradebus

EMULATED_SPOT = ("binance", "bybit")
BUY_FEE = Decimal("0.00001")  # 0.1% of the 0.01 BTC bought, in BTC
HELD = "0.00999"  # what the buy holds: 0.01 BTC less its fee


def connector_environment(fleet: Fleet, venue: str) -> dict[str, str]:
    row = next(line for line in tradebus("status", env=fleet.env).stdout.splitlines() if line.startswith(f"connector.{venue}"))
    return psutil.Process(int(row.split()[2])).environ()


def test_up_emulate_streams_ticks_and_fills_orders_without_writing_credentials(tmp_path: Path) -> None:
    """As a new user tries it: a market buy on each emulated spot exchange fills with the
    venue's fee in the asset bought (Binance and Bybit charge a spot buy's fee in the base
    asset, 0.1%), `tradebus orders` shows that fee, and `tradebus positions` and `tradebus
    balances` the BTC bought, less that fee. Alpaca charges no commission on US equities
    (docs.alpaca.markets, "Crypto Spot Trading Fees": "stock trading remains commission-free"):
    its fill says so, 0 USD, and the shares show as a position."""
    fleet = Fleet(tmp_path, "--venue", "binance", "--venue", "bybit", "--venue", "alpaca", "--emulate")
    try:
        fleet.wait_ready()
        fleet.wait_services(("risk", "oms", "audit", "connector.binance", "connector.bybit", "connector.alpaca"))
        ticks = tradebus("ticks", "--venue", "binance", "--count", "5", "--json", env=fleet.env)
        assert ticks.returncode == 0, ticks.stderr
        assert [json.loads(line)["venue"] for line in ticks.stdout.splitlines()] == ["binance"] * 5

        for venue in EMULATED_SPOT:
            placed = tradebus("order", "place", "--venue", venue, "--account", "demo", "--symbol", "BTC/USDT",
                              "--side", "buy", "--type", "market", "--qty", "0.01", "--json", env=fleet.env)
            assert placed.returncode == 0, placed.stdout + placed.stderr
            events = [decoder(Family.ORDER_EVENT).decode(line) for line in placed.stdout.splitlines()]
            assert [e.__struct_config__.tag for e in events][-1] == "filled" and events[-1].leaves_quantity == 0
            fills = [e.fill for e in events if isinstance(e, FillEventBase)]
            assert {f.fee_currency for f in fills} == {"BTC"} and sum(f.fee for f in fills) == BUY_FEE, fills

            listed = tradebus("orders", "--venue", venue, env=fleet.env)
            assert listed.returncode == 0 and "filled 0.01, fee 0.00001 BTC" in listed.stdout, listed.stdout
            assert shown(fleet, ("balances", "--venue", venue), f"{venue} demo BTC {HELD} available {HELD}")
            assert shown(fleet, ("positions",), f"{venue} {HELD} @")

        placed = tradebus("order", "place", "--venue", "alpaca", "--account", "demo", "--symbol", "AAPL",
                          "--side", "buy", "--type", "market", "--qty", "2", env=fleet.env)
        assert placed.returncode == 0 and "fee 0 USD" in placed.stdout, placed.stdout + placed.stderr
        assert shown(fleet, ("positions",), "alpaca 2 @")

        secret = connector_environment(fleet, "binance")["BINANCE_API_SECRET"]
        assert secret
        written = [fleet.output, *(tmp_path / "data").rglob("*.log"), *(tmp_path / "data").glob("*.toml")]
        assert not [path for path in written if secret in path.read_text(errors="replace")]
    finally:
        if fleet.process.poll() is None:
            fleet.stop()


def test_up_emulate_ibkr_streams_a_stocks_ticks_and_fills_an_order_with_ibs_commission(tmp_path: Path) -> None:
    """Interactive Brokers as a new user tries it: the emulated TWS behind ib_async, quotes of
    AAPL on demand, a market buy of 10 shares filled with IB's fixed commission (USD 0.005 a
    share, at least 1.00 an order: 1 USD), the shares as a position and the cash less both."""
    fleet = Fleet(tmp_path, "--venue", "ibkr", "--emulate")
    try:
        fleet.wait_ready()
        fleet.wait_services(("risk", "oms", "audit", "connector.ibkr"))
        ticks = tradebus("ticks", "--venue", "ibkr", "--symbol", "AAPL", "--count", "3", "--json", env=fleet.env)
        assert ticks.returncode == 0, ticks.stderr
        assert {json.loads(line)["symbol"] for line in ticks.stdout.splitlines()} == {"AAPL"}
        placed = tradebus("order", "place", "--venue", "ibkr", "--account", "demo", "--symbol", "AAPL",
                          "--side", "buy", "--type", "market", "--qty", "10", "--json", env=fleet.env)
        assert placed.returncode == 0, placed.stdout + placed.stderr
        events = [decoder(Family.ORDER_EVENT).decode(line) for line in placed.stdout.splitlines()]
        (fill,) = [e.fill for e in events if isinstance(e, FillEventBase)]
        assert (fill.quantity, fill.fee, fill.fee_currency) == (Decimal(10), Decimal(1), "USD")
        assert shown(fleet, ("positions",), "ibkr 10 @")
        cash = Decimal(1_000_000) - 10 * fill.price - 1
        assert shown(fleet, ("balances", "--venue", "ibkr"), f"ibkr demo USD {cash.normalize():f}")
    finally:
        if fleet.process.poll() is None:
            fleet.stop()


def shown(fleet: Fleet, command: tuple[str, ...], words: str, timeout: float = 15) -> bool:
    """Whether a line `tradebus <command>` prints holds `words` (compared word by word) within
    `timeout`: account events reach the order manager just after the fill they follow."""
    wanted = words.split()
    deadline = time.monotonic() + timeout
    while True:
        output = tradebus(*command, env=fleet.env).stdout
        for line in output.splitlines():
            said = line.replace("(", " ").replace(",", " ").split()
            if any(said[i:i + len(wanted)] == wanted for i in range(len(said))):
                return True
        if time.monotonic() > deadline:
            print(f"tradebus {' '.join(command)}:\n{output}")
            return False
        time.sleep(0.3)


def test_emulate_prints_its_url_and_the_connector_settings(tmp_path: Path) -> None:
    output = tmp_path / "emulate.log"
    process = subprocess.Popen([*TRADEBUS, "emulate", "binance"], env=clean_env(tmp_path), stdout=output.open("w"),
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "subscribe" not in output.read_text():
            assert process.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.1)
        text = output.read_text()
        table = tomllib.loads(text[text.index("[venues.binance]"):])["venues"]["binance"]
        assert table["rebase"]["rest"].startswith("http://127.0.0.1:") and table["rebase"]["rest"] in text
        assert "api_secret" not in table
    finally:
        process.terminate()
        assert process.wait(30) == 0


def test_run_connector_explains_bad_venue_settings(tmp_path: Path) -> None:
    config = tmp_path / "tradebus.toml"
    config.write_text('[venues.binance]\nexchange = "binance"\nsymbolz = ["BTC/USDT"]\n')
    result = tradebus("run", "connector", "--venue", "binance", "--config", str(config), env=clean_env(tmp_path), timeout=60)
    assert result.returncode == EXIT_CONFIG and "symbolz" in result.stderr and "Traceback" not in result.stderr

    config.write_text('[venues.binance]\nexchange = "binance"\n')
    result = tradebus("run", "connector", "--venue", "binance", "--config", str(config), env=clean_env(tmp_path), timeout=60)
    assert result.returncode == EXIT_CONFIG and "BINANCE_API_KEY" in result.stderr and "Traceback" not in result.stderr
