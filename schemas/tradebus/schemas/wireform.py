"""The wire form of a message type: the same message with its decimals held as the text the
wire carries, for a publisher that only forwards a venue's decimal text.

Prices and quantities travel as decimal strings (values.py); Python consumers decode them
into `Decimal`. A publisher that builds a typed message from a venue's text would make a
`Decimal` of each value only for the encoder to write it back out, which is most of the cost
of the native market-data path (bench/README.md, normalize.py). `wire_form(Quote)` is a
struct class derived from `Quote` (never written by hand, so it cannot drift): the same
name, tag, tag field, fields in the same order with the same defaults and wire names, the
same options, each `Decimal` (also inside Optional, Annotated, containers and nested
structs) a `DecimalText`, a string of the contract's DECIMAL_PATTERN with the JSON Schema of
a decimal. Encoded, a wire-form message is byte for byte the typed one, as long as each text
is the one `str(Decimal(text))` writes: `plain_decimals` proves that of a venue's texts
cheaply, and `canonical_decimals` makes the others so or refuses text that is no decimal
string of the contract. Python consumers still decode the typed messages (codecs.py).
"""

from __future__ import annotations

import decimal
import functools
import re
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Union

import msgspec

from .values import DECIMAL_PATTERN

DecimalText = Annotated[str, msgspec.Meta(pattern=DECIMAL_PATTERN, extra_json_schema={"format": "decimal"})]

# The smallest value a plain-notation text can have and still be what str(Decimal) writes
# (below 1e-6 it writes an exponent: "0.00000032" -> "3.2E-7"), with room for the rounding
# of the float it is checked as: above it, the text's own value is above 1e-6.
_PLAIN_MIN = 1.000001e-6


_DECIMAL = re.compile(DECIMAL_PATTERN)


class MalformedDecimal(ValueError):
    """Text that is no decimal string of the contract (DECIMAL_PATTERN)."""


@functools.cache
def wire_form(cls: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """`cls` with its decimals as `DecimalText` (keyword-only, as every message is). A class
    that checks itself in `__post_init__` has none: its checks would be lost."""
    if getattr(cls, "__post_init__", None) is not None:
        raise TypeError(f"{cls.__name__} checks its values in __post_init__: no wire form without them")
    config = cls.__struct_config__
    fields: list[tuple[str, Any, Any]] = []
    for field in msgspec.structs.fields(cls):
        default = (msgspec.field(name=field.encode_name, default=field.default)
                   if field.default_factory is msgspec.NODEFAULT else
                   msgspec.field(name=field.encode_name, default_factory=field.default_factory))
        fields.append((field.name, _as_text(field.type), default))
    return msgspec.defstruct(
        cls.__name__, fields, module=cls.__module__, namespace={"__doc__": cls.__doc__},
        tag_field=config.tag_field, tag=config.tag, omit_defaults=config.omit_defaults,
        forbid_unknown_fields=config.forbid_unknown_fields, frozen=config.frozen, eq=config.eq, order=config.order,
        kw_only=True, repr_omit_defaults=config.repr_omit_defaults, array_like=config.array_like, gc=config.gc,
        weakref=config.weakref, dict=config.dict, cache_hash=config.cache_hash)


def _as_text(kind: Any) -> Any:
    """`kind` with every Decimal in it a DecimalText."""
    if kind is Decimal:
        return DecimalText
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):  # nested: derived only if it holds decimals
        holds_decimals = any(_as_text(field.type) != field.type for field in msgspec.structs.fields(kind))
        return wire_form(kind) if holds_decimals else kind
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if not args:
        return kind
    if origin is Annotated:
        return Annotated[(_as_text(args[0]), *kind.__metadata__)]
    texts = tuple(_as_text(arg) for arg in args)
    if texts == args:
        return kind
    if origin in (Union, types.UnionType):
        return Union[texts]
    return origin[texts if len(texts) > 1 else texts[0]]


def canonical_decimal(text: str) -> str:
    """The text `str(Decimal(text))` writes for a decimal string of the contract; raises
    MalformedDecimal for anything else (NaN, Infinity, white space, `_`, other digits) and
    for an exponent beyond what Python's Decimal holds (which no consumer could decode)."""
    if not _DECIMAL.match(text):
        raise MalformedDecimal("a price or size that is no decimal string")
    try:
        return str(Decimal(text))
    except decimal.InvalidOperation as exc:
        raise MalformedDecimal("a price or size beyond Decimal's exponent range") from exc


def canonical_decimals(*texts: str) -> tuple[str, ...]:
    """`canonical_decimal` of each."""
    return tuple(map(canonical_decimal, texts))


# A JSON string holding a positive number of at least _PLAIN_MIN. Decoded with strict=False,
# msgspec reads a float from a string's whole content by JSON's number grammar (no sign but
# "-", leading zero, leading or trailing point, white space, `_` or other digits) plus NaN
# and Infinity spellings, which the bounds refuse.
_PlainNumber = Annotated[float, msgspec.Meta(ge=_PLAIN_MIN, le=1e300)]
# The decoders of JSON arrays of 1 to MAX_TEXTS _PlainNumbers, by length.
MAX_TEXTS = 8
_PLAIN_NUMBERS: dict[int, Callable[[str], Any]] = {
    count: msgspec.json.Decoder(tuple[(_PlainNumber,) * count], strict=False).decode  # type: ignore[misc]
    for count in range(1, MAX_TEXTS + 1)}
_NOT_NUMBERS = (msgspec.ValidationError, msgspec.DecodeError)


def plain_decimals(array: str, count: int) -> bool:
    """Whether each of `count` (1 to MAX_TEXTS) texts, which the caller writes into `array`
    as a JSON array of strings (`f'["{price}","{size}"]'`), is the text `str(Decimal(text))`
    writes and positive: then it goes on the wire as it came. False for anything else, which
    `canonical_decimals` then makes canonical or refuses.

    One C call for them all, no Decimal made: the array decodes into `count` numbers of at
    least _PLAIN_MIN only if each text is one number in plain notation without a sign, a
    leading zero or a leading or trailing point, above 1e-6: exactly what str(Decimal) writes.
    JSON's grammar allows exponents, so they are looked for first, and so are backslashes: an
    escape (`\\u0031`) would decode into a digit the text does not hold. Without them a
    quote in a text adds a string to the array, or breaks it, and fails too. The caller
    writes the array with an f-string: a call spreading the texts and joining them costs a
    twentieth of the native path (bench/README.md)."""
    if "e" in array or "E" in array or "\\" in array:
        return False
    try:
        _PLAIN_NUMBERS[count](array)
    except _NOT_NUMBERS:
        return False
    return True
