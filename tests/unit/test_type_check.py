"""The code type-checks: mypy, as configured in pyproject.toml ([tool.mypy]: strict, over
schemas/, shared/ and services/), reports nothing. The cache is the test's own, so the
verdict never rests on an earlier run's (about 10 s of CPU, cold)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..conftest import REPO


def test_mypy_reports_no_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found in" in result.stdout  # the configured files were checked, not an empty target
