"""Starting, stopping and waiting for the fleet's child processes, written once.

`tradebus up` (its supervisor, supervisor.py, and its embedded nats-server, natsserver.py),
the tests' process fleets and the benchmarks all start their children here. A
`ChildProcess` is one command line and its log file: `start()` runs it (again, after it
ended) with its output appended to the log; `stop()` sends SIGTERM and SIGKILLs it after a
grace period; `kill()` is a crash (SIGKILL, no goodbye). What differs between callers is a
choice made when the child is created:

- `die_with_parent`: the kernel SIGKILLs it when this process dies (parentdeath.py), so a
  killed supervisor leaves no orphans; start it from the main thread.
- `own_session`: a session of its own, so a Ctrl-C in the terminal reaches only this
  process, which then stops the child in order (nats-server, a benchmark's children).
  Without it the child is in the terminal's foreground group and gets the Ctrl-C too (the
  services of `tradebus up`, which stop themselves on it).
- `pass_fds`: descriptors the child keeps open for its life (the lock on a data dir).

`stop_all` stops several children within one grace period. `wait_ready` waits for a
service's READY heartbeat from this very process; `service_command` is the command line of
`tradebus run` for a service, and `isolated_env` the environment of a fleet of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import nats.errors
from nats.aio.client import Client as NATS

from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import ServiceState

from .parentdeath import dying_with_parent

_status = decoder(Family.STATUS)


class LaunchError(RuntimeError):
    """A child exited, or did not become ready in time, while it was waited for."""


class ChildProcess:
    def __init__(
        self,
        argv: Sequence[str],
        log_path: str | os.PathLike[str],
        *,
        die_with_parent: bool = False,
        own_session: bool = False,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.die_with_parent = die_with_parent
        self.own_session = own_session
        self.pass_fds = pass_fds
        self.process: subprocess.Popen[bytes] | None = None  # of the latest start
        self.log_offset = 0  # where the latest run's output starts in the log

    def start(self, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Run the command (`env`: its whole environment; None: this process's)."""
        argv = dying_with_parent(self.argv) if self.die_with_parent else self.argv
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.log_offset = log.tell()
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=self.own_session,
                pass_fds=self.pass_fds,
            )
        return self.process

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def exited(self) -> int | None:
        """The exit code (negative: the signal) of the latest run; None while it runs or before a start."""
        return None if self.process is None else self.process.poll()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        """Send `signum` to a running child (SIGTERM to stop it without waiting, SIGSTOP, ...)."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL, as in a crash, and reap it."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, grace: float) -> bool:
        """SIGTERM, and SIGKILL if it still runs `grace` seconds later; False when it had to be killed."""
        if self.process is None:
            return True
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return False
        return True

    def log_tail(self, lines: int) -> list[str]:
        """The last non-empty lines the latest run wrote (a refusal or traceback ends there)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return []
        return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]


def stop_all(children: Sequence[ChildProcess], grace: float) -> list[ChildProcess]:
    """SIGTERM to every running child at once; SIGKILL to those still running `grace` seconds
    later. Returns the ones that had to be killed."""
    for child in children:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    killed = []
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            killed.append(child)
    return killed


def service_command(name: str, *options: str, python: str = sys.executable) -> list[str]:
    """`tradebus run` for `name`: "risk", "oms", "audit", "sizing" or "connector.<venue>", by `python`
    (a venue whose SDK needs its own environment runs from that environment's)."""
    service, _, venue = name.partition(".")
    return [python, "-m", "tradebus.cli.main", "run", service, *(("--venue", venue) if venue else ()), *options]


def isolated_env(**settings: str) -> dict[str, str]:
    """This process's environment without its TRADEBUS_* variables, plus `settings`: a fleet
    of its own (a test's, a benchmark's) that the developer's shell does not steer."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRADEBUS_")}
    return {**env, **settings}


async def wait_ready(nc: NATS, service: str, child: ChildProcess, timeout: float) -> None:
    """Until `child`, a `tradebus run <service>` process, sends a READY heartbeat (matched by
    pid: a predecessor's heartbeats do not count). LaunchError if it exits first, or is not
    ready within `timeout` seconds."""
    heartbeats = await nc.subscribe(f"{subjects.PREFIX}.status.{service}.*")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = child.exited()
            if code is not None:
                raise LaunchError(f"{service} exited with {code}; see {child.log_path}")
            try:
                status = _status.decode((await heartbeats.next_msg(timeout=0.5)).data)
            except nats.errors.TimeoutError:
                continue
            if status.pid == child.pid and status.state is ServiceState.READY:
                return
        raise LaunchError(f"{service} not ready in {timeout:g}s; see {child.log_path}")
    finally:
        with contextlib.suppress(nats.errors.Error):
            await heartbeats.unsubscribe()
