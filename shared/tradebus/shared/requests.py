"""Answering a core NATS request: decode, handle, reply; an undecodable request is counted
and answered with a refusal that names the problem, never dropped in silence."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nats.aio.msg import Msg

from tradebus.schemas.codecs import DecodeError, encode

from .health import ServiceMetrics


async def answer_request(
    msg: Msg, *, metrics: ServiceMetrics, family: str, decoder: msgspec.json.Decoder,
    handle: Callable[[Any], Awaitable[msgspec.Struct]], refuse: Callable[[str], msgspec.Struct],
) -> None:
    """`handle(request)` makes the reply of a decoded request, `refuse(error)` that of one
    that cannot be decoded; `family` labels the metrics."""
    metrics.received.labels(family=family).inc()
    try:
        request = decoder.decode(msg.data)
    except DecodeError as exc:
        metrics.decode_errors.labels(family=family).inc()
        reply = refuse(str(exc))
    else:
        reply = await handle(request)
    if msg.reply:
        await msg.respond(encode(reply))
