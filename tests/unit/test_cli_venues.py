"""`tradebus venues` says what each venue's spec line says: its native order groups (what risk
routes rather than refuses), its emulator and its login."""

from __future__ import annotations

import pytest

from tradebus.cli.main import main
from tradebus.services.connector.venuespecs import VENUE_SPECS


def test_every_venue_is_listed_with_its_spec_lines_groups_emulator_and_login(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["venues"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert set(lines) == set(VENUE_SPECS)
    for name, spec in VENUE_SPECS.items():
        groups = ", ".join(sorted(kind.value for kind in spec.order_groups)) or "none"
        assert f"  {groups}  " in lines[name], lines[name]
        assert ("tradebus login" in lines[name]) is (spec.login is not None)
    assert "bracket, oco, oto" in lines["ibkr"] and "oco" in lines["binance"] and "none" in lines["bybit"]
