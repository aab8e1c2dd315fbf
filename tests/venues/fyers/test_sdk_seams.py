"""The parts of fyers-apiv3 the connector relies on beyond its documented calls: if an SDK
upgrade moves one of them, these fail before the connector does (docs/venues.md, "Fyers")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fyers_apiv3 import fyersModel


def test_the_rest_client_writes_its_logs_under_the_given_path_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir, logs = tmp_path / "cwd", tmp_path / "logs"
    workdir.mkdir()
    logs.mkdir()
    monkeypatch.chdir(workdir)
    fyersModel.FyersModel(client_id="XA00001-100", token="t", log_path=str(logs))
    assert os.listdir(workdir) == []
    assert sorted(os.listdir(logs)) == ["fyersApi.log", "fyersRequests.log"]


def test_the_base_urls_are_class_attributes_read_on_every_request() -> None:
    assert fyersModel.Config.API.startswith("https://") and fyersModel.Config.DATA_API.startswith("https://")
