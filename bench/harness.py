"""What every benchmark shares: child processes that are always torn down, the event loop,
and the run itself (own nats-server on a free port, a work directory, the JSON line last)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from tradebus.shared.launcher import ChildProcess
from tradebus.shared.natsserver import NatsServer, free_port

STOP_GRACE = 5.0  # seconds from a child's SIGTERM to its SIGKILL


def event_loop_runner() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    try:
        import uvloop

        return uvloop.run
    except ImportError:
        return asyncio.run


# --- child processes ------------------------------------------------------------------------
class Children:
    """The bench's subprocesses (launcher.py), always torn down, newest first: SIGTERM, then
    SIGKILL after STOP_GRACE."""

    def __init__(self) -> None:
        self.started: list[ChildProcess] = []

    def start(self, command: list[str], *, env: dict[str, str] | None = None, log: Path) -> ChildProcess:
        # Own session: a Ctrl-C in the terminal reaches only the bench, which stops them.
        child = ChildProcess(command, log, own_session=True)
        child.start(env)
        self.started.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.started):
            child.stop(STOP_GRACE)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_benchmark(name: str, body: Callable[[NatsServer, Path, Children], Coroutine[Any, Any, dict[str, Any]]],
                  *, keep: bool) -> int:
    """Run `body` against a fresh nats-server; print its summary as the last line."""
    work = Path(tempfile.mkdtemp(prefix=f"tradebus-bench-{name}-"))
    children = Children()
    server = NatsServer(store_dir=work / "nats", port=free_port())
    try:
        with sigterm_as_interrupt():
            server.start()
            summary = event_loop_runner()(body(server, work, children))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        server.stop()
        if keep:
            print(f"logs in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary))
    return 0
