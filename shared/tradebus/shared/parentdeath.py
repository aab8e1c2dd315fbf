"""Child processes that die with the process that started them (Linux).

A supervisor that is SIGKILLed (or OOM-killed) cannot stop its children: they would run on as
orphans, the embedded nats-server holding the fleet's data-dir lock. On Linux the kernel can
send a child a signal when its parent dies (prctl PR_SET_PDEATHSIG). It has to be set in the
child, between fork and exec; subprocess's `preexec_fn` is unsafe in a process with threads
(`tradebus up` has some), so this file is also a tiny launcher, run as a script by a bare
interpreter (-I -S: no site, nothing of this project imported), that sets the signal and then
execs the real command in its own place: same pid, same open file descriptors.

The "parent" the kernel watches is the thread that started the child: start children from
the main thread only (a worker thread that ends would kill them). Elsewhere (macOS, Windows)
`dying_with_parent` returns the command unchanged: a killed supervisor leaves its children
running there, and they must be stopped by hand.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
SUPPORTED = sys.platform.startswith("linux")


def dying_with_parent(argv: list[str]) -> list[str]:
    """`argv` wrapped so that the process it becomes is SIGKILLed when this one dies."""
    if not SUPPORTED:
        return argv
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid()), *argv]


def _exec_bound_to(parent: int, argv: list[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent:  # it died before the prctl: no signal will ever come
        sys.exit(f"not starting {argv[0]}: its parent (pid {parent}) has already ended")
    os.execv(argv[0], argv)


if __name__ == "__main__":
    _exec_bound_to(int(sys.argv[1]), sys.argv[2:])
