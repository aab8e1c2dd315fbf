"""Every recorded venue error body, fed through the venue's real SDK error handling (ccxt's
`handle_errors`, alpaca-py's APIError) and then the connector's own mapping, lands on the
taxonomy outcome and rejection reason its corpus file states."""

from __future__ import annotations

import json

import ccxt.async_support as ccxt
import pytest
import requests
from alpaca.common.exceptions import APIError

from tradebus.services.connector.errors import (
    AuthFailed,
    OrderRefused,
    OutcomeUnknown,
    SessionExpired,
    VenueBusy,
    VenueError,
)
from tradebus.services.connector.venues.alpaca import parsing as alpaca_parsing
from tradebus.services.connector.venues.ccxt import parsing as ccxt_parsing
from tradebus.services.connector.venuespecs import VENUE_SPECS

from .corpus import Recorded, corpus_venues, errors

STATE_CHANGING = frozenset({"place", "amend", "cancel"})
OUTCOMES: dict[str, type[VenueError]] = {
    "refused": OrderRefused, "retryable": VenueBusy, "outcome_unknown": OutcomeUnknown, "auth": AuthFailed,
    "session_expired": SessionExpired,
}
URLS = {
    ("binance", "place"): "https://api.binance.com/api/v3/order",
    ("binance", "cancel"): "https://api.binance.com/api/v3/order",
    ("binance", "lookup"): "https://api.binance.com/api/v3/order",
    ("bybit", "place"): "https://api.bybit.com/v5/order/create",
    ("bybit", "cancel"): "https://api.bybit.com/v5/order/cancel",
    ("kraken", "place"): "https://api.kraken.com/0/private/AddOrder",
    ("kraken", "cancel"): "https://api.kraken.com/0/private/CancelOrder",
    ("okx", "place"): "https://www.okx.com/api/v5/trade/order",
    ("okx", "cancel"): "https://www.okx.com/api/v5/trade/cancel-order",
    ("kucoin", "place"): "https://api.kucoin.com/api/v1/hf/orders",
    ("kucoin", "cancel"): "https://api.kucoin.com/api/v1/hf/orders/client-order/x",
}
# A status for the answers whose source states none: Binance documents its refusals as 4XX,
# Bybit answers business errors with HTTP 200 and a retCode; Kraken answers its errors with
# HTTP 200 and an `error` array; OKX and KuCoin decide by the body's code (ccxt reads it
# before the status), recorded without a status.
DEFAULT_STATUS = {"binance": 400, "bybit": 200, "kraken": 200, "okx": 200, "kucoin": 200}
CCXT_VENUES = corpus_venues(sdk="ccxt")
# Every remote venue with a spec has an error corpus; a corpus may come first (Kraken, OKX
# and KuCoin run on the ccxt connector without a spec line of their own).
REMOTE_VENUES = sorted({*corpus_venues(), *(name for name, spec in VENUE_SPECS.items() if spec.needs_credentials)})


def ccxt_exception(recorded: Recorded) -> Exception:
    """What ccxt raises for this answer, through the exchange's own error handling."""
    exchange = getattr(ccxt, recorded.venue)()
    status = recorded.http_status or DEFAULT_STATUS[recorded.venue]
    text = json.dumps(recorded.body, separators=(",", ":"))
    url = URLS[(recorded.venue, recorded.operation)]
    try:
        exchange.handle_errors(status, "", url, "POST", {}, text, recorded.body, {}, "")
        exchange.handle_http_status_code(status, "", url, "POST", text)
    except Exception as exc:  # noqa: BLE001 -- whatever ccxt raises is what the connector gets
        return exc
    raise AssertionError(f"ccxt raised nothing for {recorded.name}")


def alpaca_exception(recorded: Recorded) -> APIError:
    """alpaca-py's APIError for this answer, built as its REST client builds it."""
    response = requests.Response()
    response.status_code = recorded.http_status or 0
    response._content = json.dumps(recorded.body).encode()
    return APIError(response.text, requests.HTTPError(response=response))


def check(recorded: Recorded, error: VenueError) -> None:
    # the exact class: an expired session (SessionExpired) is an AuthFailed a new token fixes, told apart
    assert type(error) is OUTCOMES[recorded.outcome], f"{recorded.name}: {type(error).__name__} {error.message}"
    if recorded.outcome == "outcome_unknown":  # published as a rejection: never
        assert not isinstance(error, OrderRefused)
    if recorded.reason is not None:
        assert isinstance(error, OrderRefused) and error.reason.value == recorded.reason, (
            f"{recorded.name}: {getattr(error, 'reason', None)}")
    assert error.venue_code == recorded.code


@pytest.mark.parametrize("recorded", [r for venue in CCXT_VENUES for r in errors(venue)], ids=lambda r: r.name)
def test_ccxt_venues_map_every_recorded_error_by_its_code(recorded: Recorded) -> None:
    exchange = getattr(ccxt, recorded.venue)()
    error = ccxt_parsing.venue_error(
        ccxt_exception(recorded), changes_state=recorded.operation in STATE_CHANGING, exchange_id=recorded.venue,
        last_body=json.dumps(recorded.body, separators=(",", ":")),
    )
    assert exchange.id == recorded.venue
    check(recorded, error)


@pytest.mark.parametrize("recorded", errors("alpaca"), ids=lambda r: r.name)
def test_alpaca_maps_every_recorded_error_by_its_code(recorded: Recorded) -> None:
    error = alpaca_parsing.venue_error(alpaca_exception(recorded), changes_state=recorded.operation in STATE_CHANGING)
    check(recorded, error)


def test_a_message_ccxt_raises_without_the_body_is_read_from_the_last_answer() -> None:
    """ccxt raises "binance Duplicate order sent." from its message table, without the body:
    the code comes from the answer the exchange kept, and only when that answer says the
    same thing (a stale answer from another request is never read)."""
    (duplicate,) = [r for r in errors("binance") if r.name.endswith("2010-duplicate-order")]
    raised = ccxt.InvalidOrder("binance Duplicate order sent.")
    error = ccxt_parsing.venue_error(raised, changes_state=True, exchange_id="binance",
                                     last_body=json.dumps(duplicate.body))
    assert isinstance(error, OrderRefused) and error.reason.value == "duplicate_client_order_id"
    stale = ccxt_parsing.venue_error(raised, changes_state=True, exchange_id="binance",
                                     last_body='{"code":-1013,"msg":"Filter failure: LOT_SIZE"}')
    assert stale.venue_code is None and stale.reason.value == "venue_rejected"


@pytest.mark.parametrize("venue", REMOTE_VENUES)
def test_every_corpus_file_names_its_source(venue: str) -> None:
    recorded = errors(venue)
    assert recorded, f"no corpus for {venue}"
    for entry in recorded:
        assert entry.venue == venue and entry.source and all(isinstance(s, str) and s for s in entry.source)
