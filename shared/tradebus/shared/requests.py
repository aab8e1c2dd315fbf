"""Answering a core NATS request: decode, handle, reply; an undecodable request is
quarantined and answered with a refusal that names the problem, never dropped in silence."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from nats.aio.msg import Msg

from tradebus.schemas.codecs import DecodeError, encode

from .quarantine import Quarantine

Request = TypeVar("Request")


async def answer_request(
    msg: Msg, *, quarantine: Quarantine, family: str, decoder: msgspec.json.Decoder[Request],
    handle: Callable[[Request], Awaitable[msgspec.Struct]], refuse: Callable[[str], msgspec.Struct],
) -> None:
    """`handle(request)` makes the reply of a decoded request, `refuse(error)` that of one
    that cannot be decoded; `family` labels the metrics and the dead letters."""
    quarantine.metrics.received.labels(family=family).inc()
    try:
        request = decoder.decode(msg.data)
    except DecodeError as exc:
        quarantine.hold(family, msg.subject, msg.data, exc)
        reply = refuse(str(exc))
    else:
        reply = await handle(request)
    if msg.reply:
        await msg.respond(encode(reply))
