"""A server run as a child process (launcher.py) in a session of its own, ready once it
listens on its port: what a nats-server (natsserver.py) and a Kafka-protocol broker
(tansubroker.py) have in common. A subclass names its command and its error."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Self

from tradebus.shared.launcher import ChildProcess


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]  # an AF_INET address: (host, port)
        return port


class ListeningServer:
    """Start, wait until it listens, stop (SIGTERM, SIGKILL after a deadline) or kill. Use as
    a context manager or call start()/stop()."""

    name: ClassVar[str]  # the program, in messages
    error: ClassVar[type[RuntimeError]]
    port_taken_hint: ClassVar[str] = ""  # what to do about a taken port

    def __init__(self, *, host: str, port: int, log_file: Path, die_with_parent: bool,
                 env: Mapping[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self.log_file = log_file
        self.die_with_parent = die_with_parent  # SIGKILLed when this process dies (parentdeath.py)
        self.env = env  # the process's whole environment (None: this process's)
        self.child: ChildProcess | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Before the process starts: its directories."""

    def spawn(self) -> ChildProcess:
        """The child process of `command()` (a subclass may give it more)."""
        return ChildProcess(self.command(), self.log_file, die_with_parent=self.die_with_parent, own_session=True)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.child is None else self.child.process

    def start(self, timeout: float = 15.0) -> None:
        self.launch()
        self.wait_listening(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to listen. With `die_with_parent`, call
        it from the main thread (see parentdeath.py)."""
        if port_in_use(self.host, self.port):
            raise self.error(f"port {self.port} on {self.host} is already taken{self.port_taken_hint}")
        self.prepare()
        self.child = self.spawn()
        self.child.start(self.env)

    def wait_listening(self, timeout: float = 15.0) -> None:
        """Until the launched server listens; stopped and the subclass's error if it does not
        in time, or exits first (a bad configuration makes it exit at once: reported here)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not port_in_use(self.host, self.port):
            if self.process.poll() is not None:
                raise self.error(f"{self.name} exited with {self.process.returncode}; see {self.log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise self.error(f"{self.name} did not listen on {self.port} within {timeout}s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, SIGKILL if it has not ended within `timeout`."""
        if self.child is not None:
            self.child.stop(timeout)

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        if self.child is not None and self.child.running():
            self.child.kill()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
