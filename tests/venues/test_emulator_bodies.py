"""Every error answer an emulator can give equals a recorded answer of its venue: an
emulator answers what the venue answers, never a text shaped to the connector's mapping.
The refusals whose real body is not recorded yet are listed here by name, so the gap is
visible and shrinks only by recording."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from tradebus.emulators.alpaca import render as alpaca
from tradebus.emulators.binance import render as binance
from tradebus.emulators.bybit import render as bybit
from tradebus.emulators.zerodha import render as zerodha
from tradebus.schemas.values import RejectReason

from .corpus import errors, same_body

# A reason no table names: the venue's default refusal.
OTHER = RejectReason.EXPIRED_ON_ARRIVAL
# Alpaca answers these with a code whose message the emulator takes from its engine: no
# recording of Alpaca's own texts for them yet (tick size, lot size, order not open, 429, 500).
ALPACA_UNRECORDED = frozenset({RejectReason.ORDER_NOT_OPEN, RejectReason.RATE_LIMITED, RejectReason.VENUE_UNAVAILABLE,
                               OTHER})


def answer(response: web.Response) -> tuple[int, dict[str, Any]]:
    assert response.body is not None
    return response.status, json.loads(bytes(response.body))


def emulator_answers(venue: str) -> dict[str, web.Response]:
    if venue == "binance":
        answers = {reason.value: binance.error(reason, "") for reason in [*binance.ERRORS, OTHER]}
        for name in ("BAD_SIGNATURE", "AHEAD_OF_SERVER", "OUTSIDE_RECV_WINDOW", "MANDATORY_PARAMETER"):
            answers[name.lower()] = binance.refusal(getattr(binance, name))
        return answers
    if venue == "bybit":
        answers = {reason.value: bybit.error(reason, "", limit=20) for reason in [*bybit.ERRORS, OTHER]}
        answers["bad_signature"] = bybit.refusal(bybit.BAD_SIGNATURE)
        answers["stale_timestamp"] = bybit.refusal(bybit.STALE_TIMESTAMP)
        return answers
    return {reason.value: alpaca.error(reason, "emulator text") for reason in [*alpaca.ERRORS, OTHER]
            if reason not in ALPACA_UNRECORDED}


@pytest.mark.parametrize("venue", ["binance", "bybit", "alpaca"])
def test_every_emulator_error_body_is_a_recorded_one(venue: str) -> None:
    recorded = errors(venue)
    for name, response in emulator_answers(venue).items():
        status, body = answer(response)
        matches = [r for r in recorded if same_body(body, r.body)]
        assert matches, f"{venue} emulator answers {name} with {body}, which no corpus file records"
        stated = {r.http_status for r in matches if r.http_status is not None}
        assert not stated or status in stated, f"{venue} {name}: HTTP {status}, recorded {stated}"


def test_the_alpaca_gaps_are_still_gaps() -> None:
    """An unrecorded Alpaca refusal keeps the emulator's text: recording it moves it out of
    ALPACA_UNRECORDED (this fails once a table entry gets its recorded message)."""
    for reason in ALPACA_UNRECORDED - {OTHER}:
        assert alpaca.ERRORS[reason][2] is None


def test_every_zerodha_emulator_error_is_a_documented_exception_with_its_status() -> None:
    """Kite documents its error envelope, exception names and HTTP codes, not its texts
    (codes.py): each answer of the Zerodha emulator has the recorded envelope's keys and a
    recorded (HTTP status, error_type) pair; the message is the emulator's own."""
    recorded = {(r.http_status, r.body["error_type"]): r.body for r in errors("zerodha")}
    for reason in [*zerodha.ERRORS, OTHER]:
        status, body = answer(zerodha.error(reason, "emulator text"))
        assert (status, body.get("error_type")) in recorded, f"zerodha {reason.value}: HTTP {status} {body}"
        assert body.keys() == recorded[status, body["error_type"]].keys()
