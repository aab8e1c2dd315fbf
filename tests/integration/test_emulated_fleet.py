"""An emulated venue as a new user tries it: `tradebus up --venue binance --emulate`, then
the CLI; and `tradebus emulate` / `tradebus run connector` for a venue of one's own."""

from __future__ import annotations

import json
import subprocess
import time
import tomllib
from pathlib import Path

import psutil

from tradebus.schemas.codecs import decoder
from tradebus.schemas.subjects import Family
from tradebus.shared.config import EXIT_CONFIG

from .test_cli import TRADEBUS, Fleet, clean_env, tradebus


def connector_environment(fleet: Fleet, venue: str) -> dict[str, str]:
    row = next(line for line in tradebus("status", env=fleet.env).stdout.splitlines() if line.startswith(f"connector.{venue}"))
    return psutil.Process(int(row.split()[2])).environ()


def test_up_emulate_streams_ticks_and_fills_orders_without_writing_credentials(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, "--venue", "binance", "--emulate")
    try:
        fleet.wait_ready()
        fleet.wait_services(("risk", "oms", "audit", "connector.binance"))
        ticks = tradebus("ticks", "--venue", "binance", "--count", "5", "--json", env=fleet.env)
        assert ticks.returncode == 0, ticks.stderr
        assert [json.loads(line)["venue"] for line in ticks.stdout.splitlines()] == ["binance"] * 5

        placed = tradebus("order", "place", "--venue", "binance", "--account", "demo", "--symbol", "BTC/USDT",
                          "--side", "buy", "--qty", "0.01", "--json", env=fleet.env)
        assert placed.returncode == 0, placed.stdout + placed.stderr
        events = [decoder(Family.ORDER_EVENT).decode(line) for line in placed.stdout.splitlines()]
        assert [e.__struct_config__.tag for e in events][-1] == "filled" and events[-1].leaves_quantity == 0

        secret = connector_environment(fleet, "binance")["BINANCE_API_SECRET"]
        assert secret
        written = [fleet.output, *(tmp_path / "data").rglob("*.log"), *(tmp_path / "data").glob("*.toml")]
        assert not [path for path in written if secret in path.read_text(errors="replace")]
    finally:
        if fleet.process.poll() is None:
            fleet.stop()


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
