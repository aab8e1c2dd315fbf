"""Which interpreter `tradebus up` starts a venue's connector with, where the venue needs an
environment of its own (Fyers: .venv-fyers beside the repository's .venv)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tradebus.cli.up import connector_python
from tradebus.services.connector.venuespecs import venue_spec
from tradebus.shared.config import ConfigError

pytestmark = pytest.mark.skipif(
    venue_spec("fyers").in_this_environment,
    reason="this environment runs the Fyers connector itself (.venv-fyers): no other interpreter is chosen",
)


def _checkout_with_fyers_env(root: Path) -> Path:
    python = root / ".venv-fyers" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    return python


def test_the_venue_environment_is_found_beside_this_one_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = _checkout_with_fyers_env(tmp_path / "checkout")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "checkout" / ".venv"))
    monkeypatch.chdir(tmp_path)  # not the checkout
    assert connector_python("fyers") == str(python)


def test_the_working_directory_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _checkout_with_fyers_env(tmp_path / "checkout")
    here = _checkout_with_fyers_env(tmp_path / "here")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "checkout" / ".venv"))
    monkeypatch.chdir(tmp_path / "here")
    assert connector_python("fyers") == str(here)


def test_a_missing_environment_names_where_it_was_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "checkout" / ".venv"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"\.ci/fyers-env") as refused:
        connector_python("fyers")
    assert str(tmp_path / "checkout" / ".venv-fyers") in str(refused.value)


def test_a_venue_without_an_environment_of_its_own_runs_on_this_interpreter() -> None:
    assert connector_python("paper") == sys.executable
