"""`tradebus up`'s supervisor with real child processes: what it restarts, what it gives up
on, and that the reason stays visible."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tradebus.cli import supervisor as supervision
from tradebus.cli.liveness import Watch, status_table
from tradebus.cli.supervisor import Child, Notes, Supervisor


def child(tmp_path: Path, name: str, code: str) -> Child:
    return Child(name, [sys.executable, "-c", code], tmp_path / f"{name}.log")


def supervise_until(supervisor: Supervisor, done, timeout: float = 30) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, list(supervisor.notes.lines)
        supervisor.tick(Watch())
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_restart_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervision, "MAX_RESTART_DELAY", 0.0)


def test_a_refused_configuration_is_started_once_and_its_reason_kept(tmp_path: Path) -> None:
    refusing = child(tmp_path, "connector.nope", "import sys; print('tradebus: unknown venue nope'); sys.exit(78)")
    supervisor = Supervisor([refusing], {}, Notes(echo=False), stop_grace=5.0)
    supervisor.start()
    supervise_until(supervisor, lambda: refusing.given_up)
    for _ in range(20):
        supervisor.tick(Watch())
        time.sleep(0.05)
    assert len(refusing.pids) == 1 and refusing.restarts == 0
    [note] = supervisor.notes.lines
    assert "connector.nope refused its configuration (exit 78); not restarting it" in note
    assert "tradebus: unknown venue nope" in note
    row = status_table(supervisor.rows(Watch()), supervised=True).splitlines()[1]
    assert row.split()[:3] == ["connector.nope", "failed", "-"] and "exit 78" in row


def test_a_crash_loop_is_given_up_after_a_few_tries_with_its_last_output(tmp_path: Path) -> None:
    crashing = child(tmp_path, "risk", "import sys; print('boom: no database'); sys.exit(1)")
    supervisor = Supervisor([crashing], {}, Notes(echo=False), stop_grace=5.0)
    supervisor.start()
    supervise_until(supervisor, lambda: crashing.given_up)
    assert len(crashing.pids) == supervision.MAX_FAILURES and crashing.restarts == supervision.MAX_FAILURES - 1
    assert crashing.given_up == f"failed {supervision.MAX_FAILURES} times in a row (exit 1)"
    assert sum("restarting in" in note for note in supervisor.notes.lines) == supervision.MAX_FAILURES - 1
    assert "not restarting it" in supervisor.notes.lines[-1] and "boom: no database" in supervisor.notes.lines[-1]
    # only this run's output: earlier runs' lines are not repeated as this one's reason
    assert supervisor.notes.lines[-1].count("boom: no database") == 1


def test_a_child_that_ran_long_enough_starts_a_fresh_series_of_tries(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervision, "STABLE_RUN", 0.0)  # every run counts as long
    crashing = child(tmp_path, "oms", "import sys; sys.exit(1)")
    supervisor = Supervisor([crashing], {}, Notes(echo=False), stop_grace=5.0)
    supervisor.start()
    supervise_until(supervisor, lambda: crashing.restarts >= supervision.MAX_FAILURES + 2)
    assert not crashing.given_up
    supervision.stop_all([crashing], 5.0)
