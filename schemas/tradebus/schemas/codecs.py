"""One JSON encoder and one decoder per payload type of the subject registry.

Decoders are built once: constructing a msgspec decoder for a tagged union is the slow
part, decoding with it is fast. Every decoder (and `convert`) takes the contract's
`decode_hook`, which reads the commands' PositiveDecimal fields from JSON strings only.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from .subjects import SPECS, Family
from .values import decode_hook

encoder = msgspec.json.Encoder()
encode = encoder.encode

# Any: a family's payload type is its SubjectSpec's, known at run time only.
_DECODERS: dict[Family, msgspec.json.Decoder[Any]] = {
    family: msgspec.json.Decoder(spec.payload, dec_hook=decode_hook)
    for family, spec in SPECS.items() if spec.payload is not None
}
_REPLY_DECODERS: dict[Family, msgspec.json.Decoder[Any]] = {
    family: msgspec.json.Decoder(spec.reply, dec_hook=decode_hook)
    for family, spec in SPECS.items() if spec.reply is not None
}

T = TypeVar("T")

DecodeError = (msgspec.DecodeError, msgspec.ValidationError)


def decoder(family: Family) -> msgspec.json.Decoder[Any]:
    """The decoder of a subject family's payload (a tagged union: one decoder per subject)."""
    return _DECODERS[family]


def reply_decoder(family: Family) -> msgspec.json.Decoder[Any]:
    return _REPLY_DECODERS[family]


def convert(value: Any, kind: type[T]) -> T:
    """`msgspec.convert` with the contract's hook: build a message from Python values
    (decimals as Decimal or as decimal strings)."""
    return msgspec.convert(value, kind, dec_hook=decode_hook)


def decode(family: Family, data: bytes) -> Any:
    """Decode a payload of `family`; raises msgspec.DecodeError / ValidationError."""
    return _DECODERS[family].decode(data)
