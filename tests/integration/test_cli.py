"""The `tradebus` command as a user runs it: real subprocesses, a real bus."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import jsonschema
import pytest

from tradebus.shared.config import EXIT_CONFIG
from tradebus.shared.natsserver import NatsServer, free_port

from ..conftest import REPO

TRADEBUS = [sys.executable, "-m", "tradebus.cli.main"]
MARKET_DATA_SCHEMA = json.loads((REPO / "schemas" / "json-schema" / "market-data.json").read_text())


def tradebus(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TRADEBUS, *args], env=env, capture_output=True, text=True, timeout=timeout)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")}
    env.update(TRADEBUS_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1", **extra)
    return env


class Fleet:
    """`tradebus up` in the background, stopped with SIGTERM like a user's Ctrl-C."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.env = clean_env(tmp_path, **{"TRADEBUS_NATS_URL": f"nats://127.0.0.1:{self.port}", **env})
        self.output = tmp_path / "up.log"
        self.process = subprocess.Popen(
            [*TRADEBUS, "up", *args], env=self.env, stdout=self.output.open("w"), stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output.read_text()
            if "ready" in self.output.read_text():
                return
            time.sleep(0.2)
        raise AssertionError(f"fleet not ready:\n{self.output.read_text()}")

    def wait_services(self, names: tuple[str, ...], timeout: float = 60, env: dict[str, str] | None = None) -> None:
        """Wait until `tradebus status` (as the identity of `env`) shows every one of `names` ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = tradebus("status", env=env or self.env).stdout.splitlines()
            ready = {row.split()[0] for row in rows[1:] if " ready " in row}
            if all(any(key.startswith(name) for key in ready) for name in names):
                return
            time.sleep(0.5)
        raise AssertionError(f"services not ready: {names}\n{self.output.read_text()}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


@contextlib.contextmanager
def whole_fleet(tmp_path: Path, **env: str) -> Iterator[Fleet]:
    """`tradebus up` with the order path and the paper venue all ready; stopped cleanly after."""
    running = Fleet(tmp_path, **env)
    try:
        running.wait_ready()
        running.wait_services(("risk", "oms", "audit", "sizing", "connector.paper"))
        yield running
    finally:
        if running.process.poll() is None:
            assert running.stop() == 0


@contextlib.contextmanager
def started_fleet(tmp_path: Path) -> Iterator[Fleet]:
    running = Fleet(tmp_path)
    try:
        running.wait_ready()
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A fleet of its own, for a test that disturbs it."""
    with started_fleet(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def watched_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One fleet for the tests that only read from it (ticks, status): each `tradebus up`
    costs seconds of start-up, and reading from a fleet changes nothing in it."""
    with started_fleet(tmp_path_factory.mktemp("watched")) as running:
        yield running


def test_up_streams_ticks_that_validate_against_the_exported_schema(watched_fleet: Fleet) -> None:
    result = tradebus("ticks", "--venue", "paper", "--count", "20", "--json", env=watched_fleet.env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 20
    validator = jsonschema.Draft202012Validator(MARKET_DATA_SCHEMA)
    for line in lines:
        validator.validate(json.loads(line))
        assert json.loads(line)["venue"] == "paper"


def test_ticks_filters_by_symbol_and_kind_and_prints_readable_lines(watched_fleet: Fleet) -> None:
    result = tradebus("ticks", "--venue", "paper", "--symbol", "BRK.B", "--kind", "quote", "--count", "3", env=watched_fleet.env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(" BRK.B " in line and " quote " in line for line in lines)


def test_status_lists_the_running_services(watched_fleet: Fleet) -> None:
    result = tradebus("status", env=watched_fleet.env)
    assert result.returncode == 0, result.stderr
    assert "connector.paper" in result.stdout and "ready" in result.stdout


def test_up_restarts_a_service_that_dies(fleet: Fleet) -> None:
    statuses = tradebus("status", env=fleet.env).stdout
    pid = int(next(line for line in statuses.splitlines() if line.startswith("connector.paper")).split()[2])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = tradebus("status", env=fleet.env)
        rows = [line for line in result.stdout.splitlines() if line.startswith("connector.paper")]
        if rows and int(rows[0].split()[2]) != pid and " ready " in rows[0]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the connector was not restarted")
    # `up` redraws its table on its own tick, which may come a moment after `status` already shows ready
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        output = fleet.output.read_text()
        table_rows = [line for line in output.splitlines() if line.startswith("connector.paper")]
        if table_rows and " ready " in table_rows[-1]:
            break
        time.sleep(0.5)
    assert "connector.paper exited (killed by SIGKILL)" in output and "restarting in" in output
    # the table said so while it was down, and counts the restart since
    assert any(line.startswith("connector.paper") and " restarting " in line and "killed by SIGKILL" in line
               for line in output.splitlines()), output
    assert " ready " in table_rows[-1] and "last exit: killed by SIGKILL" in table_rows[-1]


def test_up_stops_everything_cleanly_on_sigterm(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    fleet.wait_ready()
    pid = int(next(l for l in tradebus("status", env=fleet.env).stdout.splitlines() if l.startswith("connector.paper")).split()[2])
    assert fleet.stop() == 0
    assert "tradebus up: stopped" in fleet.output.read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", fleet.port)) != 0  # the embedded NATS is gone too


def test_up_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    with NatsServer(store_dir=tmp_path / "other", port=free_port()) as other:
        result = tradebus("up", "--nats-port", str(other.port), env=clean_env(tmp_path), timeout=30)
    assert result.returncode == 2
    assert f"port {other.port}" in result.stderr and "already taken" in result.stderr and "--nats-port" in result.stderr


def test_a_config_with_an_unknown_key_is_refused_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "tradebus.toml"
    config.write_text('[paper]\nsede = 3\n')
    for command in (["up", "--config", str(config)], ["run", "connector", "--config", str(config)]):
        result = tradebus(*command, env=clean_env(tmp_path), timeout=30)
        assert result.returncode == EXIT_CONFIG
        assert "sede" in result.stderr and "seed" in result.stderr


def test_run_refuses_an_unknown_log_level_with_a_suggestion(tmp_path: Path) -> None:
    result = tradebus("run", "risk", env=clean_env(tmp_path, TRADEBUS_LOG_LEVEL="DEBGU"), timeout=30)
    assert result.returncode == EXIT_CONFIG and "Traceback" not in result.stderr
    assert "'log_level'" in result.stderr and "did you mean 'DEBUG'?" in result.stderr


def test_version_names_the_installed_release(tmp_path: Path) -> None:
    result = tradebus("--version", env=clean_env(tmp_path))
    assert result.returncode == 0 and result.stdout.strip() == f"tradebus {version('tradebus')}"


def test_ticks_into_a_pipe_closed_by_its_reader_ends_quietly(watched_fleet: Fleet) -> None:
    """`tradebus ticks | head -3`: once head has its lines, ticks ends with 0 and no traceback."""
    ticks = subprocess.Popen([*TRADEBUS, "ticks", "--venue", "paper"], env=watched_fleet.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    lines = [ticks.stdout.readline() for _ in range(3)]
    ticks.stdout.close()  # what head does after its third line
    assert all(line.startswith("paper ") for line in lines), lines
    assert ticks.wait(30) == 0
    stderr = ticks.stderr.read()
    assert "Traceback" not in stderr and "Broken pipe" not in stderr and "BrokenPipe" not in stderr, stderr


def test_run_refuses_an_unknown_venue(tmp_path: Path) -> None:
    result = tradebus("run", "connector", "--venue", "nope", env=clean_env(tmp_path), timeout=30)
    assert result.returncode == EXIT_CONFIG and "nope" in result.stderr


def test_client_commands_explain_an_unreachable_bus(tmp_path: Path) -> None:
    env = clean_env(tmp_path, TRADEBUS_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    for command in (["status"], ["ticks", "--count", "1"], ["instruments", "--venue", "paper"]):
        result = tradebus(*command, env=env, timeout=30)
        assert result.returncode == 1 and "cannot reach the bus" in result.stderr


def test_schema_export_writes_the_committed_files(tmp_path: Path) -> None:
    result = tradebus("schema", "export", str(tmp_path / "out"), env=clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    for path in (tmp_path / "out").iterdir():
        assert path.read_bytes() == (REPO / "schemas" / "json-schema" / path.name).read_bytes()
