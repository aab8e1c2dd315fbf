"""The one launcher of child processes (launcher.py), with real processes: output to the log,
a stop that escalates to SIGKILL after the grace period, one grace period for many, and the
options each caller relies on."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from tradebus.shared.launcher import ChildProcess, service_command, stop_all

# Says it is up (so the test knows its SIGTERM handler is set), then ignores SIGTERM.
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"


def python(tmp_path: Path, name: str, code: str, **options: bool) -> ChildProcess:
    return ChildProcess([sys.executable, "-c", code], tmp_path / f"{name}.log", **options)


def wait_for_output(child: ChildProcess, text: str) -> None:
    deadline = time.monotonic() + 30
    while text not in child.log_path.read_text():
        assert time.monotonic() < deadline and child.running(), child.log_path.read_text()
        time.sleep(0.02)


def test_output_goes_to_the_log_and_the_tail_is_the_latest_runs_alone(tmp_path: Path) -> None:
    child = python(tmp_path, "talker", "import os; print('run', os.environ['RUN']); print(); print('last')")
    child.start({**os.environ, "RUN": "1"}).wait(30)
    child.start({**os.environ, "RUN": "2"}).wait(30)
    assert child.log_path.read_text().splitlines() == ["run 1", "", "last", "run 2", "", "last"]
    assert child.log_tail(5) == ["run 2", "last"] and child.log_tail(1) == ["last"]
    assert child.exited() == 0 and not child.running()


def test_stop_is_sigterm_for_a_child_that_obeys(tmp_path: Path) -> None:
    child = python(tmp_path, "sleeper", "import time; time.sleep(60)")
    child.start()
    assert child.stop(grace=10) and child.exited() == -signal.SIGTERM


def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace_period(tmp_path: Path) -> None:
    child = python(tmp_path, "stubborn", STUBBORN)
    child.start()
    wait_for_output(child, "up")
    started = time.monotonic()
    assert not child.stop(grace=0.5)
    assert child.exited() == -signal.SIGKILL and 0.5 <= time.monotonic() - started < 10


def test_stop_all_gives_every_child_the_same_grace_period_and_names_the_killed(tmp_path: Path) -> None:
    obedient = [python(tmp_path, f"sleeper{n}", "import time; time.sleep(60)") for n in range(2)]
    stubborn = [python(tmp_path, f"stubborn{n}", STUBBORN) for n in range(2)]
    never_started = python(tmp_path, "never", "pass")
    for child in (*obedient, *stubborn):
        child.start()
    for child in stubborn:
        wait_for_output(child, "up")
    started = time.monotonic()
    killed = stop_all([*stubborn, never_started, *obedient], grace=1.0)
    assert killed == stubborn and time.monotonic() - started < 1.0 + 5  # one grace period, not one each
    assert [child.exited() for child in obedient] == [-signal.SIGTERM] * 2
    assert never_started.exited() is None


def test_a_session_of_its_own_only_when_asked(tmp_path: Path) -> None:
    alone = python(tmp_path, "alone", "import os; print(os.getsid(0) == os.getpid())", own_session=True)
    grouped = python(tmp_path, "grouped", "import os; print(os.getsid(0) == os.getpid())")
    for child in (alone, grouped):
        child.start().wait(30)
    assert alone.log_tail(1) == ["True"] and grouped.log_tail(1) == ["False"]


def test_a_child_bound_to_die_with_its_parent_runs_as_the_launched_pid(tmp_path: Path) -> None:
    bound = python(tmp_path, "bound", "import os; print(os.getpid())", die_with_parent=sys.platform.startswith("linux"))
    process = bound.start()
    process.wait(30)
    assert bound.log_tail(1) == [str(process.pid)]  # parentdeath.py execs in its own place


def test_the_service_command_line_of_tradebus_run() -> None:
    run = [sys.executable, "-m", "tradebus.cli.main", "run"]
    assert service_command("risk") == [*run, "risk"]
    assert service_command("connector.binance", "--config", "t.toml") == [
        *run,
        "connector",
        "--venue",
        "binance",
        "--config",
        "t.toml",
    ]
