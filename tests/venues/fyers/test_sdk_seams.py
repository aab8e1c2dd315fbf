"""The parts of fyers-apiv3 the connector relies on beyond its documented calls: if an SDK
upgrade moves one of them, these fail before the connector does (docs/venues.md, "Fyers")."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from fyers_apiv3 import fyersModel

from tradebus.services.connector.venues.fyers.connector import _Deadline


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


def test_a_request_whose_answer_never_comes_ends_at_the_deadline_as_the_sdks_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fyers-apiv3 sets no timeout: the connector's adapter on its session gives one, and the
    SDK turns the timeout into its shared error dict (how parsing.checked knows no answer came)."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        monkeypatch.setattr(fyersModel.Config, "API", f"http://127.0.0.1:{silent.getsockname()[1]}")
        client = fyersModel.FyersModel(client_id="XA00001-100", token="t", log_path=str(tmp_path))
        client.service.session.mount("http://", _Deadline(0.5))
        started = time.monotonic()
        answer = client.place_order({"symbol": "NSE:SBIN-EQ", "qty": 1})
        assert answer is client.service.error_resp
        assert time.monotonic() - started < 5
