"""The Python client's examples, run as a user runs them against `tradebus up`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import REPO
from .test_cli import Fleet, whole_fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with whole_fleet(tmp_path_factory.mktemp("examples")) as running:
        yield running


def run_example(fleet: Fleet, name: str) -> str:
    result = subprocess.run([sys.executable, str(REPO / "examples" / "python" / name)], env=fleet.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_place_order_example(fleet: Fleet) -> None:
    output = run_example(fleet, "place_order.py")
    assert "OrderAccepted" in output and "OrderFilled" in output
    assert "order manager: filled" in output
    assert "'ETH/USDT': '0.1" in output


def test_watch_ticks_example(fleet: Fleet) -> None:
    lines = run_example(fleet, "watch_ticks.py").splitlines()
    assert sum(line.startswith("BRK.B #") for line in lines) == 10
    assert lines[-1] == "lost on the way: 0"


def test_every_example_is_tested() -> None:
    examples = {path.name for path in (REPO / "examples" / "python").glob("*.py")}
    tested = set(Path(__file__).read_text().split('"')) & examples
    assert examples == tested
