"""Fixtures shared by every test: real nats-server processes on free ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradebus.shared.natsserver import NatsServer, free_port

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream for one test: no state leaks between tests."""
    server = NatsServer(store_dir=tmp_path / "nats", port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cli_env(nats_server: NatsServer, tmp_path: Path) -> dict[str, str]:
    """Environment for `tradebus` subprocesses: this test's bus, a private data dir."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")}
    env.update(TRADEBUS_NATS_URL=nats_server.url, TRADEBUS_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    return env
