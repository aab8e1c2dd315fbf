"""How `tradebus up` keeps its services running, and says so when it cannot.

A child that exits is restarted with a growing delay; one that keeps failing soon after
start, or that refused its configuration (exit 78: a restart would only be refused again),
is left stopped and its last output stays on screen. A child whose process lives but whose
heartbeats stopped is hung: it is stopped (SIGTERM, SIGKILL after the fleet's shutdown grace
and a margin) and then restarted like any other. Every decision is a note in the message area
above the table. Children are launcher.py's, started from the main thread only, bound to die
with `up` (parentdeath.py): a killed `up` leaves no orphans holding the fleet's data dir.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from tradebus.schemas.control import ServiceStatus
from tradebus.shared import launcher
from tradebus.shared.config import EXIT_CONFIG
from tradebus.shared.launcher import ChildProcess

from .liveness import Row, Watch, heartbeat_age, is_silent, service_key, silence_limit

STOP_MARGIN = 3.0
"""Seconds past a child's own `shutdown_grace` before it is SIGKILLed: a service ends itself
within its grace period (service.py), plus the time its interpreter takes to exit."""
MAX_RESTART_DELAY = 30.0
STABLE_RUN = 60.0  # a child that ran this long before failing starts a fresh series of tries
MAX_FAILURES = 5  # failures in a row (each sooner than STABLE_RUN after its start) before giving up
HUNG_BEATS = 10  # heartbeats a live process may miss before it is restarted
LOG_TAIL_LINES = 5
MAX_NOTES = 12


class Notes:
    """The message area: the latest notes, shown above the table on a terminal; printed to
    stderr as they come otherwise (a log keeps them anyway)."""

    def __init__(self, *, echo: bool) -> None:
        self.lines: deque[str] = deque(maxlen=MAX_NOTES)
        self.echo = echo

    def add(self, text: str) -> None:
        note = f"{time.strftime('%H:%M:%S')} {text}"
        self.lines.append(note)
        if self.echo:
            print(note, file=sys.stderr, flush=True)

    def render(self) -> str:
        return "".join(f"{line}\n" for line in self.lines) + ("\n" if self.lines else "")


@dataclass
class Child:
    """One supervised service process."""

    name: str
    argv: list[str]
    log_path: Path
    own_env: dict[str, str] = field(default_factory=dict)  # this child's alone (an emulated venue's credentials)
    launched: ChildProcess = field(init=False)
    pids: set[int] = field(default_factory=set)  # every process it ran as: whose heartbeats are its own
    restarts: int = 0
    failures: int = 0  # in a row, each soon after its start
    started_at: float = 0.0
    restart_at: float | None = None
    last_exit: str = ""
    given_up: str = ""  # why it is no longer restarted
    terminating_since: float | None = None  # when a hung process was sent SIGTERM

    def __post_init__(self) -> None:
        # In the terminal's process group (no session of its own): a Ctrl-C reaches it too.
        self.launched = ChildProcess(self.argv, self.log_path, die_with_parent=True)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.launched.process

    def start(self, env: dict[str, str]) -> None:
        self.pids.add(self.launched.start({**env, **self.own_env}).pid)
        self.started_at = time.monotonic()
        self.restart_at = self.terminating_since = None

    def exited(self) -> int | None:
        return self.launched.exited()

    def log_tail(self) -> list[str]:
        """The last lines this run wrote (its refusal or traceback ends there)."""
        return [line if len(line) <= 300 else line[:297] + "..." for line in self.launched.log_tail(LOG_TAIL_LINES)]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def restart_delay(failures: int) -> float:
    return min(MAX_RESTART_DELAY, 2.0 ** max(0, min(failures - 1, 5)))


class Supervisor:
    def __init__(self, children: list[Child], env: dict[str, str], notes: Notes, *, stop_grace: float) -> None:
        self.children = children
        self.env = env
        self.notes = notes
        self.stop_grace = stop_grace  # SIGTERM to SIGKILL

    def start(self) -> None:
        for child in self.children:
            child.start(self.env)

    def tick(self, watch: Watch, *, bus_up_for: float = float("inf")) -> None:
        """One round: restart what exited and is due, stop what hangs. `bus_up_for`: seconds
        `up` has been connected to the bus without a break; heartbeats missed while the bus was
        down or before the services reconnected to a restarted one are no sign of a hang."""
        now = time.monotonic()
        bus_carries_heartbeats = any(not is_silent(status) for status in watch.latest.values())
        for child in self.children:
            code = child.exited()
            if code is None:
                if bus_carries_heartbeats:  # else up's own view is blind, not the child hung
                    self._stop_if_hung(child, self._heartbeat(child, watch, current=True), now, bus_up_for)
            elif child.given_up:
                continue
            elif child.restart_at is None:
                self._exited(child, code, now)
            elif now >= child.restart_at:
                child.restarts += 1
                child.start(self.env)

    def _exited(self, child: Child, code: int, now: float) -> None:
        child.last_exit = describe_exit(code)
        ran = now - child.started_at
        output = "".join(f"\n    {line}" for line in child.log_tail()) if code > 0 else ""
        if code == EXIT_CONFIG:
            child.given_up = f"refused its configuration ({child.last_exit})"
            self.notes.add(f"{child.name} {child.given_up}; not restarting it. Its last output "
                           f"({child.log_path}):{output}")
            return
        child.failures = child.failures + 1 if ran < STABLE_RUN else 1
        if child.failures >= MAX_FAILURES:
            child.given_up = f"failed {child.failures} times in a row ({child.last_exit})"
            self.notes.add(f"{child.name} {child.given_up}; not restarting it. Its last output "
                           f"({child.log_path}):{output}")
            return
        delay = restart_delay(child.failures)
        child.restart_at = now + delay
        self.notes.add(f"{child.name} exited ({child.last_exit}) after {ran:.0f}s; restarting in {delay:.0f}s "
                       f"(log: {child.log_path}){output}")

    def _stop_if_hung(self, child: Child, heartbeat: ServiceStatus | None, now: float, bus_up_for: float) -> None:
        assert child.process is not None
        if child.terminating_since is not None:
            if now - child.terminating_since > self.stop_grace:
                self.notes.add(f"{child.name} did not stop within {self.stop_grace:g}s of SIGTERM; killing it")
                child.launched.signal(signal.SIGKILL)
                child.terminating_since = float("inf")  # killed: wait for the exit, then restart
            return
        if heartbeat is None:
            return  # still starting: services beat once they are up
        age = heartbeat_age(heartbeat)
        if min(age, bus_up_for) > silence_limit(heartbeat, HUNG_BEATS):
            self.notes.add(f"{child.name} (pid {child.process.pid}) is hung: its process lives but sent no heartbeat "
                           f"for {age:.0f}s; stopping it (SIGTERM, SIGKILL after {self.stop_grace:g}s) to restart it")
            child.launched.signal(signal.SIGTERM)
            child.terminating_since = now

    @staticmethod
    def _heartbeat(child: Child, watch: Watch, *, current: bool = False) -> ServiceStatus | None:
        """The child's latest heartbeat (of its current process only, if `current`)."""
        pids = {child.process.pid} if current and child.process is not None else child.pids
        mine = [status for status in watch.latest.values() if status.pid in pids]
        return max(mine, key=lambda status: status.ts_event, default=None)

    def rows(self, watch: Watch) -> list[Row]:
        """A row per child, as its process and heartbeats show it, plus any other service seen."""
        rows = [self._row(child, watch) for child in self.children]
        ours = set().union(*(child.pids for child in self.children))
        return rows + [Row.of(status, rate=watch.rates.get(key)) for key, status in watch.latest.items()
                       if status.pid not in ours]

    def _row(self, child: Child, watch: Watch) -> Row:
        latest = self._heartbeat(child, watch)
        current = self._heartbeat(child, watch, current=True)
        key = service_key(latest) if latest is not None else child.name
        row = Row.of(current, rate=watch.rates.get(key)) if current is not None else Row(key=key, state="starting")
        row.key, row.restarts = key, child.restarts
        code = child.exited()
        if child.given_up:
            row.state, row.detail = "failed", f"{child.given_up}: not restarted (see the messages above)"
        elif code is not None:
            due = max(0.0, (child.restart_at or 0.0) - time.monotonic())
            row.state, row.detail = "restarting", f"{child.last_exit}; restart in {due:.0f}s"
        elif child.terminating_since is not None:
            row.state, row.detail = "hung", "no heartbeats: being restarted"
        elif current is None:
            row.pid = child.process.pid if child.process else None
            row.detail = f"launched {time.monotonic() - child.started_at:.0f}s ago, no heartbeat yet"
        elif row.state != current.state.value:
            row.state = "hung"  # silent while its process lives
        if child.last_exit and code is None:
            row.detail = f"{row.detail}; last exit: {child.last_exit}".lstrip("; ")
        if code is not None:
            row.pid, row.rate = None, None
        return row


def stop_all(children: list[Child], grace: float) -> None:
    """SIGTERM to every live child, SIGKILL to those still running after `grace` seconds."""
    killed = launcher.stop_all([child.launched for child in children], grace)
    for child in children:
        if child.launched in killed:
            print(f"{child.name} did not stop in {grace:g}s; killed it", file=sys.stderr)
