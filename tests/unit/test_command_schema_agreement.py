"""The exported JSON Schema and the fleet's decoder accept and refuse the same commands.

A client that validates against `schemas/json-schema/order-command.json` must never send
something the fleet refuses, nor be told "invalid" for something the fleet would run. The
generator starts from a valid command of each type and applies up to three mutations (a
field set to a value of its own kind, valid or not, a field dropped, an unknown field), so
both sides of the line are exercised, cross-field rules (price on a market order, GTD
without expire time, a modify changing nothing) included. An order group (`place_group`)
holds whole places, mutated the same way; the rules between its orders (group_violation) are
beyond a JSON Schema and risk's to refuse, so both sides accept a group that breaks them.

What JSON Schema cannot say, and so is left out of the generated values on purpose:
- decimal bounds (at most 1e15, at most 18 decimal places: check_decimal). The schema
  states them in the description; the generated decimals stay inside them.
- an integral float such as `1.0` for an integer field: JSON Schema calls it an integer,
  the fleet refuses it (stricter than the schema, never looser).

The validator is jsonschema's Draft 2020-12 with ECMA-262's `$` (end of input), which is
what the schema means; Python's `re` also lets `$` match before a final newline.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import jsonschema
import msgspec
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from tradebus.schemas.codecs import DecodeError, decode
from tradebus.schemas.commands import CancelAllOrders, CancelOrder, ModifyOrder, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import (
    DECIMAL_PATTERN,
    MAX_DECIMAL_PLACES,
    MAX_MAGNITUDE,
    GroupKind,
    OrderType,
    Side,
    TimeInForce,
)

from ..conftest import REPO

SCHEMA = json.loads((REPO / "schemas" / "json-schema" / "order-command.json").read_text())


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not re.search(re.sub(r"\$$", r"\\Z", pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})
VALIDATOR = Validator(SCHEMA)


def schema_accepts(command: dict[str, Any]) -> bool:
    return bool(VALIDATOR.is_valid(command))


def fleet_accepts(command: dict[str, Any]) -> bool:
    try:
        decode(Family.COMMAND, json.dumps(command).encode())
    except DecodeError:
        return False
    return True


# --- values of each kind of field, valid and not ------------------------------------------------

def _within_bounds(text: str) -> bool:
    """False for a decimal string only check_decimal's bounds refuse (see the module doc)."""
    if not re.fullmatch(DECIMAL_PATTERN.removesuffix(r"\Z"), text):
        return True
    try:
        value = Decimal(text)
    except InvalidOperation:
        return True
    exponent = value.as_tuple().exponent
    return abs(value) <= MAX_MAGNITUDE and isinstance(exponent, int) and -exponent <= MAX_DECIMAL_PLACES


POSITIVE = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1e9"), places=8)


@st.composite
def decimal_text(draw: st.DrawFn) -> str:
    """A valid decimal string, in any of the spellings the grammar allows."""
    value = draw(POSITIVE)
    spelling = draw(st.sampled_from(["str", "fixed", "exponent", "plus", "bare_point"]))
    if spelling == "fixed":
        return f"{value:f}"
    if spelling == "exponent":
        return f"{value:e}"
    if spelling == "plus":
        return f"+{value}"
    text = f"{value:f}"
    if spelling == "bare_point":  # "0.5" -> ".5", "5" -> "5."
        return text[1:] if text.startswith("0.") else text if "." in text else text + "."
    return str(value)


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                 st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=1))
DECIMALS = st.one_of(
    decimal_text(),
    st.sampled_from(["NaN", "-Infinity", "Infinity", " 1", "1 ", "1_0", "\u0661", "", ".", "1e", "e5", "--1", "-1",
                     "0", "0.0", ".0", "-0.5", "0e3", "1,5", "0x10", "1e+2", "1E-3", "00.5", "1.e2"]),
    st.text(alphabet="0123456789.eE+-_ ", max_size=5).filter(_within_bounds),
    JUNK,
)
VALID_ID = st.from_regex(r"[A-Za-z0-9_-]{1,36}", fullmatch=True)
IDS = st.one_of(VALID_ID,
                st.sampled_from(["", "x" * 37, "has space", "c1\n", "c.1", "c*", "c>", "é"]), st.text(max_size=8), JUNK)
NAMES = st.one_of(st.sampled_from(["paper", "demo", "Paper", "a" * 33, "demo\n", "", "de.mo"]), st.text(max_size=6), JUNK)
SYMBOLS = st.one_of(st.sampled_from(["BTC/USDT", "BRK.B", "M&M", "NSE:RELIANCE"]), st.text(max_size=70), JUNK)
NANOS = st.one_of(st.integers(0, 2**80), st.integers(-(2**63), -1), JUNK)
FLAGS = st.one_of(st.booleans(), JUNK, st.sampled_from(["true", 0, 1]))


def _enum(values: Any) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from([member.value for member in values]), st.sampled_from(["LIMIT", "gtc", ""]), JUNK)


FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "type": st.one_of(st.sampled_from(["place", "modify", "cancel", "cancel_all", "place_group", "Place", "amend"]),
                      JUNK),
    "client_order_id": IDS, "modify_id": IDS, "request_id": IDS, "cancel_id": IDS,
    "venue": NAMES, "account": NAMES, "symbol": SYMBOLS,
    "side": _enum(Side), "order_type": _enum(OrderType), "time_in_force": _enum(TimeInForce),
    "quantity": DECIMALS, "price": DECIMALS, "stop_price": DECIMALS,
    "expire_time": NANOS, "ts_created": NANOS,
    "ttl_ms": st.one_of(st.integers(-1, 3_600_001), st.sampled_from([0, 1, 3_600_000]), JUNK),
    "post_only": FLAGS, "reduce_only": FLAGS,
    "trail_amount": DECIMALS, "trail_percent": DECIMALS, "group_id": IDS,
    "kind": _enum(GroupKind),
    # "orders": a group's places, mutated (see `command`)
}
FIELDS = {cls.__struct_config__.tag: [field.name for field in msgspec.structs.fields(cls)]
          for cls in (PlaceOrder, ModifyOrder, CancelOrder, CancelAllOrders, PlaceOrderGroup)}


# --- commands ------------------------------------------------------------------------------------

@st.composite
def valid_command(draw: st.DrawFn) -> dict[str, Any]:
    common = {"venue": "paper", "account": "demo"}
    if draw(st.booleans()):
        common["ts_created"] = draw(st.integers(0, 2**63))
    tag = draw(st.sampled_from(list(FIELDS)))
    coid = draw(VALID_ID)
    if tag == "cancel":
        return {"type": tag, "client_order_id": coid, **common,
                **draw(st.fixed_dictionaries({}, optional={"cancel_id": VALID_ID}))}
    if tag == "cancel_all":
        scope = draw(st.fixed_dictionaries({}, optional={"symbol": st.text(min_size=1, max_size=64),
                                                         "side": st.sampled_from([s.value for s in Side])}))
        return {"type": tag, "request_id": coid, **common, **scope}
    if tag == "modify":
        changes = draw(st.fixed_dictionaries({}, optional={name: decimal_text() for name in ("quantity", "price", "stop_price")})
                       .filter(bool))
        ttl = draw(st.fixed_dictionaries({}, optional={"ttl_ms": st.integers(1, 3_600_000)}))
        return {"type": tag, "client_order_id": coid, "modify_id": draw(VALID_ID), **common, **changes, **ttl}
    if tag == "place_group":
        ttl = draw(st.fixed_dictionaries({}, optional={"ttl_ms": st.integers(1, 3_600_000)}))
        return {"type": tag, "group_id": coid, **common, "kind": draw(st.sampled_from(GroupKind)).value,
                "orders": draw(st.lists(valid_place(), min_size=2, max_size=3)), **ttl}
    return draw(valid_place())


@st.composite
def valid_place(draw: st.DrawFn) -> dict[str, Any]:
    common = {"venue": "paper", "account": "demo"}
    if draw(st.booleans()):
        common["ts_created"] = draw(st.integers(0, 2**63))
    coid = draw(VALID_ID)
    order_type = draw(st.sampled_from(OrderType))
    tif = draw(st.sampled_from(TimeInForce))
    place: dict[str, Any] = {"type": "place", "client_order_id": coid, **common, "symbol": draw(st.text(min_size=1, max_size=64)),
                             "side": draw(st.sampled_from(Side)).value, "order_type": order_type.value,
                             "quantity": draw(decimal_text())}
    if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        place["price"] = draw(decimal_text())
    if order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        place["stop_price"] = draw(decimal_text())
    if order_type is OrderType.TRAILING_STOP:
        place[draw(st.sampled_from(["trail_amount", "trail_percent"]))] = draw(decimal_text())
    if draw(st.booleans()):
        place["group_id"] = draw(VALID_ID)
    if tif is not TimeInForce.GTC or draw(st.booleans()):
        place["time_in_force"] = tif.value
    if tif is TimeInForce.GTD:
        place["expire_time"] = draw(st.integers(0, 2**63))
    if order_type is OrderType.LIMIT and draw(st.booleans()):
        place["post_only"] = draw(st.booleans())
    if draw(st.booleans()):
        place["reduce_only"] = draw(st.booleans())
    if draw(st.booleans()):
        place["ttl_ms"] = draw(st.integers(1, 3_600_000))
    return place


@st.composite
def command(draw: st.DrawFn) -> dict[str, Any]:
    """A valid command with 0-3 mutations (a group's: of the group, or of one of its orders,
    or its orders replaced by 0-4 mutated places)."""
    document = draw(valid_command())
    known = FIELDS[document["type"]]
    for _ in range(draw(st.integers(0, 3))):
        held = document.get("orders")
        orders = [order for order in held if isinstance(order, dict)] if isinstance(held, list) else []  # junk: none
        if known is FIELDS["place_group"] and orders and draw(st.booleans()):
            mutate(draw, orders[draw(st.integers(0, len(orders) - 1))], FIELDS["place"])
        else:
            mutate(draw, document, known)
    return document


def mutate(draw: st.DrawFn, document: dict[str, Any], known: list[str]) -> None:
    """One mutation: a field set to a value of its kind, valid or not, a field dropped, an unknown field."""
    mutation = draw(st.sampled_from(["set", "set", "set", "drop", "unknown"]))
    if mutation == "set":
        name = draw(st.sampled_from(["type", *known]))
        document[name] = draw(mutated_places() if name == "orders" else FIELD_VALUES[name])
    elif mutation == "drop" and document:
        document.pop(draw(st.sampled_from(sorted(document))))
    else:
        document[draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in FIELD_VALUES))] = draw(JUNK)


@st.composite
def mutated_places(draw: st.DrawFn) -> Any:
    """What a group's `orders` may be set to: 0-4 places with up to one mutation each, or junk."""
    if draw(st.booleans()):
        return draw(JUNK)
    places = draw(st.lists(valid_place(), max_size=4))
    for place in places:
        if draw(st.booleans()):
            mutate(draw, place, FIELDS["place"])
    return places


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command())
def test_the_schema_and_the_fleet_agree_on_every_command(document: dict[str, Any]) -> None:
    assert schema_accepts(document) == fleet_accepts(document), (
        f"schema {'accepts' if schema_accepts(document) else 'refuses'}, "
        f"fleet {'accepts' if fleet_accepts(document) else 'refuses'}: {document!r}")


@pytest.mark.parametrize("accepted", [True, False])
@pytest.mark.parametrize("tag", list(FIELDS))
def test_the_generator_covers_both_sides_for_every_command_type(tag: str, accepted: bool) -> None:
    """The agreement above is not vacuous: each type is generated accepted and refused."""
    find(command(), lambda d: d.get("type") == tag and fleet_accepts(d) is accepted,  # found is enough: no shrinking
         settings=settings(max_examples=5000, database=None, phases=[Phase.generate]))


@pytest.mark.parametrize(
    "change",
    [{"order_type": "market"}, {"price": None}, {"time_in_force": "GTD"}, {"expire_time": 1},
     {"order_type": "stop", "stop_price": "1"}, {"post_only": True, "order_type": "stop_limit", "stop_price": "1"},
     {"quantity": 1}, {"quantity": "1_0"}, {"client_order_id": "c1\n"}],
)
def test_both_refuse_each_rule_the_code_enforces(change: dict[str, Any]) -> None:
    """The cross-field rules and the decimal grammar, one by one, on a valid limit order."""
    place = {"type": "place", "client_order_id": "c1", "venue": "paper", "account": "demo", "symbol": "BTC/USDT",
             "side": "buy", "order_type": "limit", "quantity": "1", "price": "100"}
    assert schema_accepts(place) and fleet_accepts(place)
    assert not schema_accepts({**place, **change}) and not fleet_accepts({**place, **change})


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_every_finite_decimal_the_fleet_writes_matches_the_decimal_pattern(value: Decimal) -> None:
    """Events carry `Decimal` fields written by msgspec; the schema's pattern must admit them."""
    assert re.fullmatch(DECIMAL_PATTERN.removesuffix(r"\Z"), json.loads(msgspec.json.encode(value)))
