"""The wire form of a message type (schemas/wireform.py): derived from the typed class, it
states the same contract (JSON Schema, names, tag, field order, defaults, options), its
messages encode byte for byte as the typed ones, and a venue's decimal text goes on the wire
only as the text `str(Decimal(text))` writes, never as text the typed path would refuse."""

from __future__ import annotations

import re
import typing
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tradebus.schemas import market
from tradebus.schemas.codecs import encode
from tradebus.schemas.jsonschema import payloads, portable, schema_hook
from tradebus.schemas.values import DECIMAL_PATTERN
from tradebus.schemas.wireform import (
    MAX_TEXTS,
    MalformedDecimal,
    canonical_decimal,
    canonical_decimals,
    plain_decimals,
    wire_form,
)


def message_classes() -> list[type[msgspec.Struct]]:
    """Every message class of the registry's payloads that has a wire form (no __post_init__)."""
    found = {member for kind in payloads().values() for member in (typing.get_args(kind) or (kind,))
             if isinstance(member, type) and issubclass(member, msgspec.Struct)}
    return sorted((cls for cls in found if getattr(cls, "__post_init__", None) is None), key=lambda c: c.__name__)


MESSAGES = message_classes()


def test_the_market_data_messages_have_wire_forms() -> None:
    assert {market.Quote, market.Trade, market.BookSnapshot, market.Bar, market.Instrument} <= set(MESSAGES)


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda cls: cls.__name__)
def test_a_wire_form_states_the_contract_of_its_message(cls: type[msgspec.Struct]) -> None:
    form = wire_form(cls)
    assert form.__name__ == cls.__name__
    assert portable(msgspec.json.schema(form, schema_hook=schema_hook)) == portable(
        msgspec.json.schema(cls, schema_hook=schema_hook))
    ours, theirs = msgspec.structs.fields(form), msgspec.structs.fields(cls)
    assert [(f.name, f.encode_name, f.default, f.default_factory) for f in ours] == [
        (f.name, f.encode_name, f.default, f.default_factory) for f in theirs]
    options = ("tag", "tag_field", "frozen", "eq", "order", "array_like", "gc", "omit_defaults",
               "forbid_unknown_fields", "repr_omit_defaults")
    assert {o: getattr(form.__struct_config__, o) for o in options} == {
        o: getattr(cls.__struct_config__, o) for o in options}


def test_decimals_become_text_wherever_they_are() -> None:
    fields = {f.name: f.type for f in msgspec.structs.fields(wire_form(market.Instrument))}
    assert typing.get_args(fields["tick_size"])[0] is str
    assert typing.get_args(typing.get_args(fields["strike"])[0])[0] is str  # Optional[Decimal]
    level = typing.get_args({f.name: f.type for f in msgspec.structs.fields(wire_form(market.BookSnapshot))}["bids"])[0]
    assert level is wire_form(market.BookLevel)
    assert level is not market.BookLevel


def test_a_message_checking_itself_has_no_wire_form() -> None:
    class Checked(msgspec.Struct):
        price: Decimal

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="__post_init__"):
        wire_form(Checked)


def test_a_typed_message_decodes_into_its_wire_form_and_back_to_the_same_bytes() -> None:
    book = market.BookSnapshot(venue="binance", symbol="BTC/USDT", seq=3, ts_event=1, ts_recv=2,
                               bids=[market.BookLevel(price=Decimal("0.00000032"), size=Decimal("1E+3"))], asks=[])
    data = encode(book)
    assert encode(msgspec.json.decode(data, type=wire_form(market.BookSnapshot))) == data
    with pytest.raises(msgspec.ValidationError, match="regex"):
        msgspec.json.decode(data.replace(b'"1E+3"', b'"NaN"'), type=wire_form(market.BookSnapshot))


# Text a venue might send: the contract's decimals, what Python's Decimal reads beyond them,
# and near misses (signs, exponents, white space, separators, other digits, JSON specials).
NEAR_DECIMALS = st.text(alphabet="0123456789.+-eE _\t\n,[]\"\\u\u0661N", max_size=14)
DECIMALS = st.one_of(
    st.from_regex(DECIMAL_PATTERN, fullmatch=True),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.tuples(st.floats(min_value=0, max_value=1e9), st.integers(0, 12)).map(lambda p: f"{p[0]:.{p[1]}f}"),
    NEAR_DECIMALS,
    st.text(max_size=8),
)


def typed(text: str) -> Decimal | None:
    """What the typed path makes of a venue's decimal text: msgspec's Decimal decoding, or
    None where it refuses the text."""
    try:
        return msgspec.json.decode(msgspec.json.encode(text), type=Decimal)
    except msgspec.ValidationError:
        return None


CONTRACT_DECIMAL = re.compile(DECIMAL_PATTERN)


def json_strings(texts: list[str]) -> str:
    """The array plain_decimals reads, as the native path writes it (an f-string)."""
    return "[" + ",".join(f'"{text}"' for text in texts) + "]"


def wire_texts(texts: list[str]) -> list[str] | None:
    """What the native path puts on the wire for `texts`; None where it refuses them."""
    if plain_decimals(json_strings(texts), len(texts)):
        return texts
    try:
        return list(canonical_decimals(*texts))
    except MalformedDecimal:
        return None


@given(st.lists(DECIMALS, min_size=1, max_size=MAX_TEXTS))
@example(["0.00100000", "0.00000032"]).via("Binance's eight places: below 1e-6 Decimal writes an exponent")
@example(["0.000000", "0.0000000", "-0", "+1.5", "01.5", ".5", "5.", "1e5", "1E+5"]).via("not as str(Decimal) writes")
@example(["1", "2,3"]).via("a comma in a text")
@example(["1", '2","3']).via("a quote in a text")
@example(["\\u0031"]).via("an escape JSON would read as a digit")
@example(["1 ", "2"]).via("white space JSON would skip")
@example(["NaN"]).via("no finite decimal")
@example(["0E1000000000000000000"]).via("beyond Decimal's exponent range")
def test_the_wire_carries_exactly_what_the_typed_path_writes(texts: list[str]) -> None:
    wire, values = wire_texts(texts), [typed(text) for text in texts]
    # refused exactly when a text is no decimal string of the contract or one the typed path
    # refuses too (an exponent beyond Decimal's range); the typed path reads NaN, Infinity
    # and surrounding white space, which the contract refuses
    assert (wire is None) == (None in values or any(not CONTRACT_DECIMAL.match(text) for text in texts))
    if wire is not None:  # whether it went on as it came (plain_decimals) or was made canonical
        assert wire == [str(value) for value in values]


def test_what_venues_write_goes_on_as_it_came() -> None:
    """The cheap proof takes the venues' usual texts (Binance's eight places, Bybit's), so
    that no Decimal is made for them; the rest is made canonical."""
    assert plain_decimals(json_strings(["25.35190000", "0.00100000", "16493.50", "0.006", "100", "10.00000000"]), 6)
    for text in ("0.00000032", "0.00000000", "0", "1E-7", "+1", "01", ".5", "5.", "-1", "\\u0031"):
        assert not plain_decimals(json_strings([text]), 1), text


@given(st.lists(DECIMALS, min_size=4, max_size=4))
def test_a_wire_form_quote_encodes_as_the_typed_quote(texts: list[str]) -> None:
    wire = wire_texts(texts)
    if wire is None:
        return
    names = ("bid", "bid_size", "ask", "ask_size")
    fields: dict[str, Any] = {"venue": "binance", "symbol": "BTC/USDT", "seq": 7, "ts_event": 1, "ts_recv": 2}
    quote = wire_form(market.Quote)(**fields, **dict(zip(names, wire, strict=True)))
    expected = market.Quote(**fields, **{name: Decimal(text) for name, text in zip(names, texts, strict=True)})
    assert encode(quote) == encode(expected)
    assert msgspec.json.decode(encode(quote), type=market.Quote) == expected


def test_canonical_decimal_refuses_what_the_contract_refuses() -> None:
    for text in ("NaN", "Infinity", "-inf", " 1", "1 ", "1_000", "\u0661", "", "1e", "0x10", "1.2.3"):
        with pytest.raises(MalformedDecimal):
            canonical_decimal(text)
