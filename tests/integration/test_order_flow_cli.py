"""The order path as a new user tries it: `tradebus up`, then the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradebus.schemas.codecs import decoder
from tradebus.schemas.events import CancelAllDone
from tradebus.schemas.subjects import Family

from .test_cli import Fleet, tradebus, whole_fleet

PLACE = ["order", "place", "--venue", "paper", "--account", "demo", "--symbol", "BTC/USDT", "--side", "buy",
         "--qty", "0.5", "--json", "--client-order-id", "readme-1"]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with whole_fleet(tmp_path) as running:
        yield running


def test_place_retry_list_and_audit(fleet: Fleet) -> None:
    first = tradebus(*PLACE, env=fleet.env)
    assert first.returncode == 0, first.stderr
    events = [decoder(Family.ORDER_EVENT).decode(line) for line in first.stdout.splitlines()]
    assert events[0].__struct_config__.tag == "accepted" and events[-1].__struct_config__.tag == "filled"

    again = tradebus(*PLACE, env=fleet.env)
    assert again.returncode == 0, again.stderr
    assert "already received" in again.stderr
    record = json.loads(again.stdout)
    assert record["status"] == "filled" and record["client_order_id"] == "readme-1"

    # The same client order id with other terms: refused, naming the difference, and the order under it shown.
    conflict = tradebus(*PLACE[:-5], "--qty", "0.7", "--json", "--client-order-id", "readme-1", env=fleet.env)
    assert conflict.returncode == 1, conflict.stdout + conflict.stderr
    refusal, shown = conflict.stdout.splitlines()
    refused = decoder(Family.ORDER_EVENT).decode(refusal)
    assert (refused.action.value, refused.reason.value) == ("place", "duplicate_client_order_id")
    assert "quantity 0.7 (was 0.5)" in refused.message
    assert json.loads(shown)["status"] == "filled" and json.loads(shown)["quantity"] == "0.5"

    # Each cancel is a command of its own: a refused one can be sent again (a new cancel id each time).
    for _ in range(2):
        cancel = tradebus("order", "cancel", "readme-1", "--venue", "paper", "--account", "demo", env=fleet.env)
        assert cancel.returncode == 1 and "order_not_open" in cancel.stdout, cancel.stdout + cancel.stderr
        assert "already received" not in cancel.stderr

    listed = tradebus("orders", env=fleet.env)
    assert listed.returncode == 0 and "readme-1" in listed.stdout and "filled" in listed.stdout
    assert [line for line in listed.stdout.splitlines() if "readme-1" in line].__len__() == 1

    positions = tradebus("positions", env=fleet.env)
    assert positions.returncode == 0 and "BTC/USDT" in positions.stdout and "0.5" in positions.stdout

    history = tradebus("audit", "show", "readme-1", env=fleet.env)
    assert history.returncode == 0, history.stderr
    for step in ("place", "accepted", "filled"):
        assert step in history.stdout
    verified = tradebus("audit", "verify", env=fleet.env)
    assert verified.returncode == 0 and "ok" in verified.stdout, verified.stdout + verified.stderr


def test_halt_and_resume_from_the_cli(fleet: Fleet) -> None:
    assert tradebus("halt", "--reason", "test", env=fleet.env).returncode == 0
    refused = tradebus(*PLACE[:-1], "halted-1", env=fleet.env)
    assert refused.returncode == 1 and "fleet_halted" in refused.stdout
    # The order manager never saw the refused place (risk kept it from ROUTE): the rejection carries its terms.
    listed = tradebus("orders", env=fleet.env)
    line = next(line for line in listed.stdout.splitlines() if "halted-1" in line)
    assert "rejected" in line and "(fleet_halted) buy 0.5 BTC/USDT market" in line, line
    assert tradebus("resume", env=fleet.env).returncode == 0
    accepted = tradebus(*PLACE[:-1], "resumed-1", env=fleet.env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_cancel_all_on_an_empty_account_completes_at_once(fleet: Fleet) -> None:
    """Without a completion event the CLI could only wait out its timeout (60 s here)."""
    started = time.monotonic()
    result = tradebus("order", "cancel-all", "--venue", "paper", "--account", "demo", "--timeout", "60", "--json",
                      env=fleet.env, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 30
    [done] = [decoder(Family.ORDER_EVENT).decode(line) for line in result.stdout.splitlines()]
    assert isinstance(done, CancelAllDone) and done.cancelled == 0
