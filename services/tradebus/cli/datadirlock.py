"""One fleet per data dir: `tradebus up` holds an exclusive lock on `<data_dir>/up.lock`.

Two fleets on one data dir would run two nats-servers on one JetStream store (nats-server
does not refuse it) and two audit loggers on one audit store. The lock is an flock: the
kernel drops it when the last process holding it ends, however it ends, so a killed fleet
leaves no stale lock behind. The embedded nats-server inherits it, because it owns the store
and can outlive a killed `tradebus up`; while it runs, the data dir is in use.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "up.lock"


class DataDirInUse(Exception):
    pass


class DataDirLock:
    """Held from `acquire` until this process and the ones it handed `fd` to have ended."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        path = data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "a fleet starting up"
            os.close(fd)
            raise DataDirInUse(
                f"the data dir {data_dir} is in use by another fleet ({holder}); stop it first, or give this one its "
                "own --data-dir") from None
        lock = cls(path, fd)
        lock.describe(f"tradebus up, pid {os.getpid()}")
        return lock

    def describe(self, holder: str) -> None:
        """What a refused second `tradebus up` tells its user about this fleet."""
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, holder.encode() + b"\n", 0)

    def release(self) -> None:
        os.close(self.fd)
