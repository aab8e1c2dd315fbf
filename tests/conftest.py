"""Fixtures shared by every test: real nats-server (and Tansu) processes on free ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradebus.shared.natsserver import NatsServer, free_port
from tradebus.shared.tansubroker import TansuBroker

REPO = Path(__file__).resolve().parent.parent


def _reproducible_property_tests() -> None:
    """Property tests draw the same examples on every run by default, so that a CI result can
    be reproduced and a red run is never a coin toss; `HYPOTHESIS_PROFILE=explore` draws new
    examples each run (and keeps failures in .hypothesis/) for a hunt on purpose."""
    try:
        from hypothesis import settings
    except ImportError:  # .venv-fyers (the Fyers tests' own environment) runs no property tests
        return
    settings.register_profile("reproducible", derandomize=True, database=None)
    settings.register_profile("explore", derandomize=False)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))


_reproducible_property_tests()

# The longest units of work first (tests/workunits.py; on two cores the chaos flows take about
# 8 minutes, the Fyers run about 3), so that no worker is left with one at the end while the
# other idles. In-file order is kept.
LONGEST_FIRST = ("tests/fault/", "tests/integration/test_chaos.py", "tests/venues/test_fyers_environment.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((n for n, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: .venv-fyers has no xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    if config.getoption("dist") != "loadfile":  # another --dist given on the command line
        return None
    from .workunits import FileUnits

    return FileUnits(config, log)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream for one test: no state leaks between tests."""
    server = NatsServer(store_dir=tmp_path / "nats", port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tansu_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A fresh Kafka-protocol broker (Tansu, memory storage) for one test."""
    broker = TansuBroker(work_dir=tmp_path / "tansu", port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def cli_env(nats_server: NatsServer, tmp_path: Path) -> dict[str, str]:
    """Environment for `tradebus` subprocesses: this test's bus, a private data dir."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")}
    env.update(TRADEBUS_NATS_URL=nats_server.url, TRADEBUS_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    return env
