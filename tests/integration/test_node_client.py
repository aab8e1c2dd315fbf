"""The Node.js example (examples/node/), run as its README says against `tradebus up`.

Node.js and npm are required on the machines that run these tests: a missing `node` or
`npm` fails the test with a message instead of skipping it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tradebus.schemas.commands import PlaceOrder, command_dedupe_id
from tradebus.schemas.values import OrderType, Side

from ..conftest import REPO
from .test_cli import Fleet, whole_fleet

EXAMPLE = REPO / "examples" / "node"


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"`{tool}` not found on PATH: Node.js 18+ and npm are required to test examples/node/ "
                    "(install Node.js, e.g. `apt-get install nodejs npm`)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def node_example() -> Path:
    """examples/node with its dependencies installed (`npm ci`, once, if node_modules is missing)."""
    node = _require("node")
    if not (EXAMPLE / "node_modules").is_dir():
        npm = _require("npm")
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(EXAMPLE)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"npm ci in {EXAMPLE} failed:\n{result.stdout}{result.stderr}"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    major = int(version.lstrip("v").split(".")[0])
    assert major >= 18, f"examples/node needs Node.js 18 or newer, found {version}"
    return EXAMPLE / "place-and-watch.mjs"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with whole_fleet(tmp_path_factory.mktemp("node")) as running:
        yield running


def test_place_and_watch_places_an_order_and_validates_ticks(node_example: Path, fleet: Fleet) -> None:
    result = subprocess.run([shutil.which("node") or "node", str(node_example.relative_to(REPO)), "--seconds", "3"],
                            cwd=REPO, env=fleet.env, capture_output=True, text=True, timeout=90)
    output = result.stdout
    assert result.returncode == 0, output + result.stderr

    order_id = re.search(r"^placing\s+(node-\w+):", output, flags=re.M).group(1)
    # The example computes the place's dedupe id from the docs alone: it must be the fleet's own.
    msg_id = re.search(r"\(Nats-Msg-Id (\S+)\)$", output, flags=re.M).group(1)
    placed = PlaceOrder(client_order_id=order_id, venue="paper", account="demo", symbol="BTC/USDT", side=Side.BUY,
                        order_type=OrderType.MARKET, quantity=Decimal("0.01"))
    assert msg_id == command_dedupe_id(placed), output
    assert re.search(rf"^accepted\s+{order_id} buy 0\.01 BTC/USDT market", output, flags=re.M), output
    assert re.search(rf"^filled\s+{order_id} .*filled 0\.01(0*)?, left 0(\.0+)?, avg \d+(\.\d+)?$", output, flags=re.M), output
    assert f"order    {order_id} filled" in output

    summaries = dict(re.findall(r"^ticks\s+(quote|trade|book_delta|book_snapshot|bar)\s+(\d+) messages", output, flags=re.M))
    assert int(summaries.get("quote", 0)) > 0, output
    assert "book_delta" in summaries or "book_snapshot" in summaries, output
    assert re.search(r"^ticks\s+total \d+ messages, 0 invalid", output, flags=re.M), output


def test_place_and_watch_fails_clearly_without_a_bus(node_example: Path, tmp_path: Path) -> None:
    env = {"PATH": str(Path(shutil.which("node") or "node").parent), "TRADEBUS_NATS_URL": "nats://127.0.0.1:1"}
    result = subprocess.run([shutil.which("node") or "node", str(node_example), "--seconds", "1"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "cannot connect to NATS at nats://127.0.0.1:1" in result.stderr and "tradebus up" in result.stderr
