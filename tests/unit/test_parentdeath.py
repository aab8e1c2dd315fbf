"""The launcher that binds a child's life to its parent's (Linux): it runs the command in its
own place, and refuses when the parent it was started for is already gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tradebus.shared.parentdeath import dying_with_parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def test_the_command_runs_in_the_launchers_place_with_the_signal_set() -> None:
    # the exec'd command asks prctl(PR_GET_PDEATHSIG): same pid as the launcher, signal 9 (SIGKILL)
    probe = "import os, ctypes; s = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(s)); print(os.getpid(), s.value)"
    process = subprocess.Popen(dying_with_parent([sys.executable, "-c", probe]), stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and out.split() == [str(process.pid), "9"]


def test_a_command_whose_parent_has_already_ended_is_not_started(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    argv = dying_with_parent(["/bin/sh", "-c", f"touch {marker}"])
    argv[argv.index(str(os.getpid()))] = "1"  # launched for a parent that is not (any longer) its parent
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "its parent (pid 1) has already ended" in result.stderr
    assert not marker.exists()
