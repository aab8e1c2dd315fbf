"""The sizing service: answers `SizePosition` on `tradebus.ctl.sizing` (a queue group, so any
instance answers) from the account's equity and the instrument's rules (sources.py) through
the arithmetic of calculation.py. It holds no state of its own beyond a cache of instrument
definitions, so it needs no stream, bucket or consumer: a restart loses nothing."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg

from tradebus.client import Client
from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder
from tradebus.schemas.sizing import SizePosition, SizeReply, SizingRefusal
from tradebus.schemas.subjects import Family
from tradebus.services.settings import Settings
from tradebus.shared.requests import answer_request
from tradebus.shared.service import Service, default_instance

from .calculation import InvalidSizing, size_position
from .sources import InstrumentRules, Refused, equity

log = logging.getLogger(__name__)

_request_decoder = decoder(Family.SIZING)


def _refuse(refusal: SizingRefusal, error: str) -> SizeReply:
    return SizeReply(ok=False, refusal=refusal, error=error[:1024])


class SizingService(Service):
    name = "sizing"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, instance=default_instance())
        self.config = settings.sizing
        self.client: Client | None = None
        self.rules: InstrumentRules | None = None
        self._answered = 0
        self._refused = 0
        self._refusals = self.metrics.counter(
            "tradebus_sizing_refusals_total", "Sizing requests refused, by reason.", ("refusal",))

    async def start(self) -> None:
        assert self.bus is not None
        self.client = Client(self.bus.nc)
        self.rules = InstrumentRules(self.client, ttl=self.config.instruments_ttl, timeout=self.config.query_timeout)
        await self.bus.nc.subscribe(subjects.SIZING, queue="sizing", cb=self._on_request)

    def counters(self) -> dict[str, int]:
        return {"answered": self._answered, "refused": self._refused}

    async def _on_request(self, msg: Msg) -> None:
        await answer_request(msg, quarantine=self.quarantine, family="sizing", decoder=_request_decoder,
                             handle=self._size, refuse=lambda error: self._count(
                                 _refuse(SizingRefusal.INVALID_REQUEST, error)))

    async def _size(self, request: SizePosition) -> SizeReply:
        assert self.client is not None and self.rules is not None
        try:
            instrument = await self.rules.get(request.venue, request.symbol)
            funds = await equity(self.client, request.venue, request.account, instrument.quote)
            sizing = size_position(request, funds, instrument)
        except Refused as exc:
            return self._count(_refuse(exc.refusal, str(exc)))
        except InvalidSizing as exc:
            return self._count(_refuse(SizingRefusal.INVALID_REQUEST, str(exc)))
        return self._count(SizeReply(ok=True, quantity=sizing.quantity, zero_reason=sizing.zero_reason, equity=funds,
                                     currency=instrument.quote, instrument=instrument, reasoning=sizing.reasoning))

    def _count(self, reply: SizeReply) -> SizeReply:
        if reply.refusal is None:
            self._answered += 1
        else:
            self._refused += 1
            self._refusals.labels(refusal=reply.refusal.value).inc()
            log.info("sizing refused", extra={"refusal": reply.refusal.value, "error": reply.error})
        return reply
