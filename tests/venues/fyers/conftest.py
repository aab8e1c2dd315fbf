"""The Fyers tests need fyers-apiv3, which lives in its own environment (.venv-fyers, see
.ci/fyers-env). Collected only there; the main suite runs them in it through
tests/venues/test_fyers_environment.py, which fails with their output if they fail."""

from importlib.util import find_spec

collect_ignore_glob = [] if find_spec("fyers_apiv3") else ["test_*.py"]
