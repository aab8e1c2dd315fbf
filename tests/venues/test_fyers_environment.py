"""The Fyers venue's tests, run in the Fyers environment from the main suite.

fyers-apiv3 pins requests, aiohttp and websocket-client below what ccxt needs, so its tests
cannot run in .venv. `.ci/fyers-env` creates (or refreshes) .venv-fyers from
constraints-fyers.txt, and this test runs the Fyers tests there: `python -m pytest` in the
main environment covers them, and fails with their output if they fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FYERS_PYTHON = REPO / ".venv-fyers" / "bin" / "python"
# The Fyers venue's own tests (corpus replay, SDK seams), its spec checks and its conformance run.
FYERS_TESTS = ["tests/venues/fyers", "tests/unit/test_venue_specs.py", "tests/conformance",
               "tests/venues/test_session_lifecycle.py", "-k", "fyers"]


@pytest.mark.timeout(1800)  # a first run creates the environment (about a minute) before testing
def test_the_fyers_tests_pass_in_the_fyers_environment() -> None:
    subprocess.run(["bash", str(REPO / ".ci" / "fyers-env")], cwd=REPO, check=True, timeout=900)
    # -o addopts: the suite's own options ask for xdist workers, which .venv-fyers does not
    # install: these few tests run serially inside this one.
    result = subprocess.run(
        [str(FYERS_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra", *FYERS_TESTS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    sys.stdout.write(result.stdout[-3000:])
    assert result.returncode == 0, (
        f"the Fyers tests failed in .venv-fyers:\n{result.stdout[-20000:]}{result.stderr[-5000:]}"
    )
