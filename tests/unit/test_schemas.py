"""The wire contract: round trips, decimals as strings, validation of commands."""

from __future__ import annotations

import json
import time
import typing
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus.schemas.codecs import decode, encode
from tradebus.schemas.commands import CancelOrder, ModifyOrder, PlaceOrder, command_dedupe_id
from tradebus.schemas.subjects import SPECS, SUBJECTS, Family
from tradebus.schemas.values import OrderType, Side, TimeInForce, decode_hook

from .examples import EXAMPLES, T

PLACE = {
    "type": "place", "client_order_id": "c-1", "venue": "paper", "account": "demo", "symbol": "BTC/USDT",
    "side": "buy", "order_type": "limit", "quantity": "0.5", "price": "60000.5",
}


def _members(payload: object) -> set[type]:
    return set(typing.get_args(payload)) or {payload}


def test_every_message_type_has_an_example() -> None:
    wire_types = set().union(*(_members(spec.payload) | _members(spec.reply) for spec in SUBJECTS)) - {None}
    assert wire_types - {type(example) for example in EXAMPLES} == set()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: type(e).__name__)
def test_examples_round_trip_through_their_subject_decoder(example: msgspec.Struct) -> None:
    spec = next(s for s in SUBJECTS if type(example) in _members(s.payload) | _members(s.reply))
    decoder = msgspec.json.Decoder(spec.payload if type(example) in _members(spec.payload) else spec.reply,
                                   dec_hook=decode_hook)
    assert decoder.decode(encode(example)) == example


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: type(e).__name__)
def test_decimals_are_strings_and_timestamps_integers_on_the_wire(example: msgspec.Struct) -> None:
    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                assert not isinstance(item, float), f"{key} travels as a float"
                if key.startswith("ts_") or key in ("start", "gap_start", "expire_time", "started_at"):
                    assert isinstance(item, int) or item is None
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    document = json.loads(encode(example))
    walk(document)
    for field in ("price", "quantity", "bid", "size"):
        if document.get(field) is not None:
            assert isinstance(document[field], str)


@given(
    quantity=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1e9"), places=8),
    price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e7"), places=2),
    side=st.sampled_from(Side),
    tif=st.sampled_from([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.DAY]),
    client_order_id=st.from_regex(r"[A-Za-z0-9_-]{1,36}", fullmatch=True),
)
def test_any_valid_limit_order_round_trips_exactly(quantity, price, side, tif, client_order_id) -> None:
    order = PlaceOrder(
        client_order_id=client_order_id, venue="paper", account="demo", symbol="BTC/USDT", side=side,
        order_type=OrderType.LIMIT, quantity=quantity, price=price, time_in_force=tif,
    )
    decoded = decode(Family.COMMAND, encode(order))
    assert decoded == order
    assert decoded.quantity == quantity and str(decoded.price) == str(price)


def test_a_json_number_is_refused_where_a_command_has_a_decimal() -> None:
    """The schema says string; msgspec alone would read a number into the Decimal."""
    for field in ("quantity", "price"):
        raw = json.dumps({**PLACE, field: "X"}).replace('"X"', "0.300000000000000001")
        with pytest.raises(msgspec.ValidationError, match=rf"got a number .* - at `\$.{field}`"):
            decode(Family.COMMAND, raw.encode())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantity": "NaN"}, "finite"),
        ({"quantity": "Infinity"}, "finite"),
        ({"quantity": " 1"}, "finite decimal"),
        ({"quantity": "1_000"}, "finite decimal"),
        ({"quantity": "\u0661"}, "finite decimal"),  # ARABIC-INDIC DIGIT ONE: Decimal() would read it
        ({"quantity": 1}, "got a number"),
        ({"quantity": True}, "got a boolean"),
        ({"quantity": "-1"}, "greater than zero"),
        ({"quantity": "0"}, "greater than zero"),
        ({"quantity": "0.000e5"}, "greater than zero"),
        ({"quantity": "1e30"}, "exceeds"),
        ({"quantity": "0.0000000000000000001"}, "decimal places"),
        ({"price": None}, "price is required"),
        ({"order_type": "market"}, "price is not allowed"),
        ({"order_type": "stop", "price": None}, "stop_price is required"),
        ({"time_in_force": "GTD"}, "expire_time"),
        ({"expire_time": T}, "expire_time"),
        ({"client_order_id": "has space"}, "client_order_id"),
        ({"client_order_id": "x" * 37}, "client_order_id"),
        ({"venue": "Paper!"}, "venue"),
        ({"pirce": "1"}, "unknown field `pirce`"),
        ({"side": "long"}, "side"),
        ({"type": "teleport"}, "Invalid value 'teleport'"),
        ({"quantity": "abc"}, "finite decimal"),
        ({"client_order_id": "c1\n"}, "client_order_id"),  # Python's `$` alone would let the newline through
    ],
)
def test_invalid_commands_are_refused_with_a_reason(change: dict, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        decode(Family.COMMAND, json.dumps({**PLACE, **change}).encode())


def test_post_only_is_limit_only_and_modify_must_change_something() -> None:
    with pytest.raises(msgspec.ValidationError, match="post_only"):
        decode(Family.COMMAND, json.dumps({**PLACE, "order_type": "stop_limit", "stop_price": "1", "post_only": True}).encode())
    with pytest.raises(msgspec.ValidationError, match="at least one"):
        decode(Family.COMMAND, b'{"type":"modify","client_order_id":"c","modify_id":"m","venue":"paper","account":"a"}')


def test_events_tolerate_unknown_fields_from_newer_producers() -> None:
    quote = next(e for e in EXAMPLES if type(e).__name__ == "Quote")
    document = {**json.loads(encode(quote)), "added_in_a_later_version": 1}
    assert decode(Family.MARKET_DATA, json.dumps(document).encode()) == quote


def test_dedupe_ids_are_stable_and_distinguish_actions() -> None:
    place = decode(Family.COMMAND, json.dumps(PLACE).encode())
    cancel = CancelOrder(client_order_id="c-1", venue="paper", account="demo")
    modify_1 = ModifyOrder(client_order_id="c-1", modify_id="m1", venue="paper", account="demo", price=Decimal(1))
    modify_2 = msgspec.structs.replace(modify_1, modify_id="m2")
    ids = [command_dedupe_id(c) for c in (place, cancel, modify_1, modify_2)]
    assert len(set(ids)) == 4
    assert command_dedupe_id(decode(Family.COMMAND, json.dumps(PLACE).encode())) == ids[0]


def test_route_and_command_subjects_share_one_payload() -> None:
    assert SPECS[Family.COMMAND].payload is SPECS[Family.ROUTE].payload


def test_a_megabyte_of_digits_is_refused_in_linear_time() -> None:
    """The decimal patterns leave a backtracking engine one way to match each character: an
    ambiguous one took seconds on 8,000 digits and grows with the square."""
    hostile = json.dumps({**PLACE, "quantity": "1" * 1_000_000 + "x"}).encode()
    started = time.perf_counter()
    with pytest.raises(msgspec.ValidationError, match="quantity"):
        decode(Family.COMMAND, hostile)
    assert time.perf_counter() - started < 5
