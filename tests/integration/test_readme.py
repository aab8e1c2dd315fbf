"""The README's quick start, run as written (on a free port instead of 4222)."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from tradebus.shared.natsserver import free_port

from ..conftest import REPO
from .test_cli import MARKET_DATA_SCHEMA, TRADEBUS, Fleet, whole_fleet


def _section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _commands(section: str) -> list[list[str]]:
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines() if line.startswith("tradebus ")]


@pytest.fixture(scope="module")
def quick_start_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """`tradebus up` (TRADEBUS_NATS_URL on a free port) with every service ready, stopped
    cleanly at the end: the quick start's and the Python snippet's fleet (the snippet places
    an order of its own), one start-up for both."""
    with whole_fleet(tmp_path_factory.mktemp("quickstart")) as fleet:
        yield fleet


def test_the_quick_start_works_as_written(quick_start_fleet: Fleet) -> None:
    commands = _commands(_section("Quick start"))
    assert commands[0] == ["tradebus", "up"], "the quick start begins with `tradebus up`"
    for command in commands[1:]:
        argv = [*TRADEBUS, *command[1:]]
        if "--count" in command or command[1] != "ticks":
            result = subprocess.run(argv, env=quick_start_fleet.env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, f"{shlex.join(command)}: {result.stderr}"
            output = result.stdout
        else:  # a live view: watch it for a few seconds, then Ctrl-C
            watcher = subprocess.Popen(argv, env=quick_start_fleet.env, stdout=subprocess.PIPE, text=True)
            time.sleep(3)
            watcher.send_signal(signal.SIGINT)
            output, _ = watcher.communicate(timeout=30)
        assert output.strip(), f"{shlex.join(command)} printed nothing"
        if "--json" in command:
            for line in output.splitlines():
                jsonschema.Draft202012Validator(MARKET_DATA_SCHEMA).validate(json.loads(line))


def test_the_secured_fleet_works_as_written(tmp_path: Path) -> None:
    """`tradebus up --secure`, then every command of the section with the tenant's credentials."""
    commands = _commands(_section("A secured fleet"))
    assert commands[0] == ["tradebus", "up", "--secure"]
    data = tmp_path / "data"
    fleet = Fleet(tmp_path, "--secure", "--data-dir", str(data))
    try:
        fleet.wait_ready(60)
        tenant = {**fleet.env, "TRADEBUS_NATS_CREDENTIALS": str(data / "secure" / "credentials" / "local.creds")}
        fleet.wait_services(("risk", "oms", "audit", "connector.paper"), env=tenant)
        for command in commands[1:]:
            result = subprocess.run([*TRADEBUS, *command[1:]], env=tenant, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0 and result.stdout.strip(), f"{shlex.join(command)}: {result.stderr}"
        without = subprocess.run([*TRADEBUS, "orders"], env=fleet.env, capture_output=True, text=True, timeout=60)
        assert without.returncode != 0 and "refused" in without.stderr, without.stderr
    finally:
        assert fleet.stop() == 0


def test_the_cluster_works_as_written(tmp_path: Path) -> None:
    """`tradebus up --cluster 3` on the first URL's port (a free one), then every command of
    the section; status lists the three nodes, all current."""
    commands = _commands(_section("A NATS cluster"))
    assert commands[0] == ["tradebus", "up", "--cluster", "3"]
    port = free_port()
    urls = ",".join(f"nats://127.0.0.1:{port + n}" for n in range(3))
    fleet = Fleet(tmp_path, "--cluster", "3", TRADEBUS_NATS_URL=urls)
    try:
        fleet.wait_ready(60)
        fleet.wait_services(("risk", "oms", "audit", "connector.paper"))
        for command in commands[1:]:
            result = subprocess.run([*TRADEBUS, *command[1:]], env=fleet.env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0 and result.stdout.strip(), f"{shlex.join(command)}: {result.stderr}"
            if command[1] == "status":
                nodes = [line.split() for line in result.stdout.split("NATS NODE", 1)[1].splitlines()[1:]]
                assert [(node[0], node[1], node[2]) for node in nodes] == [
                    (f"nats-{n}", "current", "6") for n in (1, 2, 3)], result.stdout
        assert {path.name for path in (tmp_path / "data" / "nats-cluster").iterdir()} >= {"nats-1", "nats-2", "nats-3"}
    finally:
        assert fleet.stop() == 0


def test_the_python_snippet_runs_as_a_script(quick_start_fleet: Fleet, tmp_path: Path) -> None:
    snippets = re.findall(r"```python\n(.*?)```", _section("From your own code"), flags=re.S)
    assert len(snippets) == 1
    script = tmp_path / "snippet.py"
    script.write_text(snippets[0])
    # TRADEBUS_NATS_URL points the snippet at the fleet
    result = subprocess.run([sys.executable, str(script)], env=quick_start_fleet.env, capture_output=True, text=True,
                            timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("OrderAccepted(") and any(line.startswith("OrderFilled(") for line in lines)
    quotes = [line.split(" ") for line in lines[-5:]]
    assert all(len(quote) == 3 and float(quote[1]) < float(quote[2]) for quote in quotes), lines  # symbol bid ask


def test_ci_installs_what_the_readme_installs_and_runs_the_readme_test_command() -> None:
    install = _section("Install")
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install -c constraints.txt -e '.[test]'" in install
    assert "install --quiet -c constraints.txt -e '.[test]'" in ci
    test_command = re.search(r"```sh\n(.*?)\n```", _section("Tests")).group(1)
    assert test_command in ci
