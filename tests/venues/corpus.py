"""The recorded venue payloads under tests/venues/<venue>/corpus/: each file names its public
source (`source`), holds the venue's exact answer (`body`, and `http_status` where the source
states it) and what the connector must make of it (`expect`: outcome, and reason for a
refusal). Payloads are data, never edited to suit the code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from tradebus.schemas.events import FillEventBase, OrderAccepted, OrderCancelled, OrderEvent, OrderRejected
from tradebus.services.connector.venuespecs import venue_spec

HERE = Path(__file__).parent
# Values that belong to the moment of an answer, compared by presence only.
VOLATILE = frozenset({"time"})
T = TypeVar("T")


@dataclass(frozen=True)
class Recorded:
    name: str
    venue: str
    source: list[str]
    operation: str
    http_status: int | None
    body: dict[str, Any]
    outcome: str
    reason: str | None
    venue_code: str | None = None  # stated where the code is not the body's `code`/`retCode` (OKX sCode, Kraken)

    @property
    def code(self) -> str | None:
        if self.venue_code is not None:
            return self.venue_code
        code = self.body.get("code", self.body.get("retCode"))
        return None if code is None else str(code)


def _load(venue: str, folder: str, kind: type[T], fields: tuple[str, ...]) -> list[T]:
    """Every recording of `venue` in `folder`: the file's `fields` (plus its name), as `kind`."""
    recorded = []
    for path in sorted((HERE / venue / "corpus" / folder).glob("*.json")):
        data = json.loads(path.read_text())
        recorded.append(kind(name=f"{venue}/{path.stem}", **{field: data[field] for field in fields}))
    return recorded


def corpus_venues(sdk: str | None = None) -> list[str]:
    """The venues with a folder of recorded payloads; with `sdk`, those whose spec runs on that
    SDK (connector/venuespecs.py: any ccxt exchange id has the ccxt connector's)."""
    venues = sorted(path.parent.name for path in HERE.glob("*/corpus"))
    return [venue for venue in venues if sdk is None or venue_spec(venue).sdk == sdk]


def errors(venue: str) -> list[Recorded]:
    recorded = []
    for path in sorted((HERE / venue / "corpus" / "errors").glob("*.json")):
        data = json.loads(path.read_text())
        recorded.append(Recorded(
            name=f"{venue}/{path.stem}", venue=data["venue"], source=data["source"], operation=data["operation"],
            http_status=data.get("http_status"), body=data["body"], outcome=data["expect"]["outcome"],
            reason=data["expect"].get("reason"), venue_code=data["expect"].get("venue_code"),
        ))
    return recorded


def same_body(answer: dict[str, Any], recorded: dict[str, Any]) -> bool:
    """Equal key for key, the volatile keys (an answer's clock) by presence only."""
    if answer.keys() != recorded.keys():
        return False
    return all(key in VOLATILE or answer[key] == recorded[key] for key in answer)


@dataclass(frozen=True)
class RecordedFrames:
    """Order payloads (`operation`: "order_stream" frames or "order_snapshot" REST orders) and
    the order events the connector must publish from them, in order (`expect`: each event's
    tag and, for a fill, its trade id, quantity, price, fee and fee currency)."""

    name: str
    venue: str
    source: list[str]
    operation: str
    frames: list[dict[str, Any]]
    expect: list[dict[str, Any]]


def check_events(events: list[OrderEvent], expect: list[dict[str, Any]]) -> None:
    """The events are the expected ones, in order: each one's tag and, where the corpus file
    states them, a fill's trade id, quantity, price, fee, fee currency, cumulative quantity
    and liquidity, an acceptance's symbol, quantity, price and order type, a cancellation's
    or rejection's reason."""
    assert [msgspec.inspect.type_info(type(event)).tag for event in events] == [e["tag"] for e in expect]
    for event, expected in zip(events, expect, strict=True):
        if isinstance(event, FillEventBase):
            fill = event.fill
            assert fill.trade_id == expected["trade_id"]
            assert (fill.quantity, fill.price, fill.fee) == tuple(
                Decimal(expected[name]) for name in ("quantity", "price", "fee"))
            assert fill.fee_currency == expected["fee_currency"]
            assert event.cum_quantity == Decimal(expected["cum_quantity"])
            if "liquidity" in expected:
                assert fill.liquidity.value == expected["liquidity"]
        elif isinstance(event, OrderAccepted):
            stated = {"symbol": event.symbol, "order_type": event.order_type.value,
                      "quantity": event.quantity, "price": event.price}
            for name in stated.keys() & expected.keys():
                wanted = expected[name] if name in ("symbol", "order_type") else Decimal(expected[name])
                assert stated[name] == wanted, f"accepted {name}: {stated[name]}, expected {wanted}"
        elif isinstance(event, (OrderCancelled, OrderRejected)) and "reason" in expected:
            assert event.reason.value == expected["reason"]


def fills(venue: str) -> list[RecordedFrames]:
    return _load(venue, "fills", RecordedFrames, ("venue", "source", "operation", "frames", "expect"))


@dataclass(frozen=True)
class RecordedBalances:
    """Balance stream frames and the balances the connector reads from them (`expect`:
    currency, total, available)."""

    name: str
    venue: str
    source: list[str]
    frames: list[dict[str, Any]]
    expect: list[dict[str, str]]


def balances(venue: str) -> list[RecordedBalances]:
    return _load(venue, "balances", RecordedBalances, ("venue", "source", "frames", "expect"))


@dataclass(frozen=True)
class RecordedPositions:
    """A positions listing as the venue gives it (`records`) and the positions the connector
    reads from it (`expect`: symbol, signed quantity, average entry price)."""

    name: str
    venue: str
    source: list[str]
    records: list[dict[str, Any]]
    expect: list[dict[str, str]]


def positions(venue: str) -> list[RecordedPositions]:
    return _load(venue, "positions", RecordedPositions, ("venue", "source", "records", "expect"))


@dataclass(frozen=True)
class RecordedTrades:
    """An order's trades as the venue lists them (`records`) and the trades the connector
    reads from them (`expect`: trade id, quantity, price, fee, fee currency, liquidity)."""

    name: str
    venue: str
    source: list[str]
    records: list[dict[str, Any]]
    expect: list[dict[str, str]]


def trades(venue: str) -> list[RecordedTrades]:
    return _load(venue, "trades", RecordedTrades, ("venue", "source", "records", "expect"))
