"""Fyers' recorded answers (corpus/, each naming its source) replayed through fyers-apiv3
itself and then the connector's parsing: each error body is served by a local HTTP server to
the SDK's own REST client, whose answer parsing.checked turns into the taxonomy; each
successful answer and socket frame becomes the shared types the connector publishes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fyers_apiv3 import fyersModel
from fyers_apiv3.FyersWebsocket import order_ws

from tradebus.services.connector.errors import (
    AuthFailed,
    OrderRefused,
    OutcomeUnknown,
    SessionExpired,
    VenueBusy,
    VenueError,
)
from tradebus.services.connector.venues.fyers import parsing
from tradebus.shared.natsserver import free_port

from ..corpus import Recorded, errors

CORPUS = Path(__file__).parent / "corpus"
OUTCOMES: dict[str, type[VenueError]] = {
    "refused": OrderRefused, "retryable": VenueBusy, "outcome_unknown": OutcomeUnknown, "auth": AuthFailed,
    "session_expired": SessionExpired,
}
CHANGES_STATE = {"place", "cancel", "modify"}
# Fyers answers its errors with a 4xx status ("HTTP Header: refer to the error codes table");
# the SDK returns the body whatever the status, so a file without one is served as 400.
DEFAULT_STATUS = 400


def payload(name: str) -> dict[str, Any]:
    return json.loads((CORPUS / "payloads" / f"{name}.json").read_text())


class Venue:
    """A local HTTP server answering every request with the body it was given."""

    def __init__(self) -> None:
        self.status, self.body = 200, b"{}"
        venue = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(venue.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(venue.body)))
                self.end_headers()
                self.wfile.write(venue.body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                """Quiet: the test reads the answers, not the server's log."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body = status, json.dumps(body).encode()


@pytest.fixture(scope="module")
def venue() -> Iterator[Venue]:
    served = Venue()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()


@pytest.fixture
def client(venue: Venue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> fyersModel.FyersModel:
    monkeypatch.setattr(fyersModel.Config, "API", f"{venue.url}/api/v3")
    monkeypatch.setattr(fyersModel.Config, "DATA_API", f"{venue.url}/data")
    return fyersModel.FyersModel(client_id="XA00001-100", token="token", log_path=str(tmp_path))


def call(client: fyersModel.FyersModel, operation: str) -> dict[str, Any]:
    """The SDK call the connector makes for `operation`."""
    calls: dict[str, Callable[[], dict[str, Any]]] = {
        "place": lambda: client.place_order({"symbol": "NSE:SBIN-EQ", "qty": 1, "type": 2, "side": 1}),
        "cancel": lambda: client.cancel_order({"id": "808058117761"}),
        "profile": client.get_profile,
        "orderbook": client.orderbook,
        "tradebook": client.tradebook,
        "funds": client.funds,
        "positions": client.positions,
    }
    return calls[operation]()


def through_sdk(client: fyersModel.FyersModel, operation: str) -> dict[str, Any]:
    answer = call(client, operation)
    return parsing.checked(answer, sdk_failure=answer is client.service.error_resp,
                           changes_state=operation in CHANGES_STATE)


@pytest.mark.parametrize("recorded", errors("fyers"), ids=lambda r: r.name)
def test_every_recorded_error_maps_by_its_code(recorded: Recorded, venue: Venue, client: fyersModel.FyersModel) -> None:
    venue.answer(recorded.http_status or DEFAULT_STATUS, recorded.body)
    with pytest.raises(VenueError) as raised:
        through_sdk(client, recorded.operation)
    error = raised.value
    # the exact class: an expired session (SessionExpired) is an AuthFailed a new token fixes, told apart
    assert type(error) is OUTCOMES[recorded.outcome], f"{recorded.name}: {type(error).__name__} {error.message}"
    if recorded.reason is not None:
        assert isinstance(error, OrderRefused) and error.reason.value == recorded.reason
    assert error.venue_code == recorded.code


@pytest.mark.parametrize(("operation", "expected"), [("place", OutcomeUnknown), ("cancel", OutcomeUnknown),
                                                     ("orderbook", VenueBusy)])
def test_a_request_that_got_no_answer_is_never_taken_for_a_refusal(
    operation: str, expected: type[VenueError], client: fyersModel.FyersModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fyers-apiv3 answers a failed connection with its own {"s": "error", "code": -99,
    "message": "Bad request"}: the code of Fyers' own order rejection. The connector knows it
    by the object (the SDK's `error_resp`), so the order is looked up, never rejected."""
    monkeypatch.setattr(fyersModel.Config, "API", f"http://127.0.0.1:{free_port()}/api/v3")
    answer = call(client, operation)
    assert answer is client.service.error_resp and answer["code"] == -99
    with pytest.raises(expected):
        through_sdk(client, operation)


def test_a_place_answer_gives_the_order_id(venue: Venue, client: fyersModel.FyersModel) -> None:
    for name in ("place-accepted", "cancel-accepted"):
        recorded = payload(name)
        venue.answer(200, recorded["body"])
        assert through_sdk(client, recorded["operation"])["id"] == recorded["expect"]["id"]


def snapshot_fields(snapshot: Any) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        return str(value) if isinstance(value, Decimal) else getattr(value, "value", value)

    return {name: plain(getattr(snapshot, name)) for name in (
        "client_order_id", "venue_order_id", "symbol", "side", "order_type", "quantity", "status", "price", "filled",
        "average_price", "time_in_force", "ts")}


def test_the_order_book_gives_the_orders_under_our_ids(venue: Venue, client: fyersModel.FyersModel) -> None:
    recorded = payload("orderbook-filled-limit-sell")
    venue.answer(200, recorded["body"])
    orders = [parsing.order_snapshot(o, {}) for o in through_sdk(client, "orderbook")["orderBook"]]
    assert [snapshot_fields(o) for o in orders] == recorded["expect"]["orders"]


def test_a_digest_tag_maps_back_to_the_client_order_id_it_carries() -> None:
    order = payload("orderbook-filled-limit-sell")["body"]["orderBook"][0]
    coid = "cf-2026-12-06_0001-long-client-id-x"
    tag = parsing.order_tag(coid)
    assert len(tag) == 30 and tag.isalnum()
    assert parsing.order_snapshot({**order, "orderTag": f"1:{tag}"}, {tag: coid}).client_order_id == coid
    assert parsing.order_tag("Ordertag") == "Ordertag"


def test_an_order_socket_frame_through_the_sdk_gives_the_order(tmp_path: Path) -> None:
    recorded = payload("order-socket-new-ack")
    received: list[dict[str, Any]] = []
    order_ws.FyersOrderSocket._instance = None
    socket = order_ws.FyersOrderSocket(access_token="XA00001-100:token", log_path=str(tmp_path),
                                       on_orders=received.append, reconnect=False)
    socket._FyersOrderSocket__on_message(recorded["frame"])  # the SDK's own handler of a socket frame
    assert [snapshot_fields(parsing.order_snapshot(m["orders"], {})) for m in received] == recorded["expect"]["orders"]


def test_the_trade_book_gives_each_trade(venue: Venue, client: fyersModel.FyersModel) -> None:
    recorded = payload("tradebook")
    venue.answer(200, recorded["body"])
    trades = [parsing.trade_report(t) for t in through_sdk(client, "tradebook")["tradeBook"]]
    assert [{"trade_id": t.trade_id, "price": str(t.price), "quantity": str(t.quantity), "ts": t.ts} for t in trades] == (
        recorded["expect"]["trades"])
    assert all(t.fee == 0 and t.fee_currency == "" for t in trades)  # Fyers states no fee on a trade


def test_funds_give_the_rupee_balance(venue: Venue, client: fyersModel.FyersModel) -> None:
    recorded = payload("funds")
    venue.answer(200, recorded["body"])
    balances = parsing.balances(through_sdk(client, "funds"))
    assert [{"currency": b.currency, "total": str(b.total), "available": str(b.available)} for b in balances] == (
        recorded["expect"]["balances"])


def test_positions_give_the_net_quantity_and_price(venue: Venue, client: fyersModel.FyersModel) -> None:
    recorded = payload("positions")
    venue.answer(200, recorded["body"])
    positions = parsing.positions(through_sdk(client, "positions"))
    assert [{"symbol": p.symbol, "quantity": str(p.quantity), "avg_price": str(p.avg_price)} for p in positions] == (
        recorded["expect"]["positions"])
