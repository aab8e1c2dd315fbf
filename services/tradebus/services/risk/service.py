"""The risk service: consumes client commands, routes the approved ones to their venue, and
answers the refused ones with a rejection event on `tradebus.evt.reject.<venue>.<account>`
(the only event family risk may publish: it carries rejections, never a fill).

Start-up replays the ROUTE and EVENTS streams from their start to rebuild what risk knows:
working orders, positions, today's pnl, and the ledger of commands it already decided and
client order ids used (ledger.py). Only then does it consume commands, so a command
re-delivered after a crash finds its earlier decision instead of being decided (and possibly
routed) again, and a place reusing a client order id is refused. EVENTS is followed live
after that (the venues' answers); ROUTE is not: risk is its only writer and records each
route as it decides it.

Each batch of commands is decided in order, the decisions are published pipelined (routes
with the command's dedupe id as Nats-Msg-Id, rejections with `risk:<dedupe id>` as event
id, both with the command's CMD sequence in a header), and the commands are acked only once every publication is stored.

An order group (`place_group`) is decided whole and routed as one message, unchanged; a
refused group is answered with one rejection per order (a group decides a list of
publications). A routed place, group or modify carries its deadline (shared/deadline.py) to the connector. Risk
follows the connectors' heartbeats (liveness.py) to refuse orders for a venue nobody serves.

Risk decides only on a complete view: after a bus reconnect it waits until it has read what
EVENTS received meanwhile (follower.py), and a batch with an order that needs a quote risk
has not seen yet waits a bounded time for one (references.py). One instance consumes at a
time; a restarted one takes the consumer over from its killed predecessor at once
(shared/takeover.py).

A bus restart between a batch's publication and its acks costs no redelivery: what lost its
ack is published again, with its Nats-Msg-Id, once the bus is back (shared/pipeline.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeVar

import msgspec
from nats.aio.msg import Msg

from tradebus.schemas import provenance, subjects
from tradebus.schemas.codecs import DecodeError, decoder, encode
from tradebus.schemas.commands import (
    CancelAllOrders,
    CancelOrder,
    OrderCommand,
    PlaceOrder,
    PlaceOrderGroup,
    command_dedupe_id,
)
from tradebus.schemas.control import GetRiskLimits, RiskLimitsReply, RiskRequest, SetTradingState, TradingStateReply
from tradebus.schemas.events import (
    CommandRejected,
    OrderRejected,
    PositionUpdate,
    command_refused,
    group_refused,
    malformed_command,
)
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind, RejectReason, TradingState
from tradebus.shared.bus import StoredMessage, consume_batches
from tradebus.shared.deadline import DEADLINE, stored_at
from tradebus.shared.direct import BucketFollower
from tradebus.shared.pipeline import MSG_ID
from tradebus.shared.service import Service
from tradebus.shared.takeover import restart_from_ack_floor, take_over
from tradebus.shared.topology import (
    COMMANDS,
    EVENTS,
    RISK_BUCKET,
    RISK_COMMANDS,
    ROUTE,
    ensure_bucket,
    ensure_consumer,
    ensure_streams,
)

from .checks import Gate, check, unpriced
from .config import load_limits_file
from .exposure import RISK_EVENT_PREFIX, Exposure
from .follower import StreamFollower
from .ledger import COMMAND_SEQ, UNKNOWN_SEQ, CommandLedger, decided_id
from .liveness import VenueLiveness
from .references import ReferencePrices
from .tradingstate import ACCOUNT_KEY_PREFIX, FLEET_KEY, check_key, decode_state, set_trading_state, state_key

log = logging.getLogger(__name__)

_command_decoder = decoder(Family.COMMAND)
_event_decoder = decoder(Family.ORDER_EVENT)
_account_decoder = decoder(Family.ACCOUNT_EVENT)
_quote_decoder = decoder(Family.MARKET_DATA)
_status_decoder = decoder(Family.STATUS)
_request_decoder = msgspec.json.Decoder(RiskRequest)
T = TypeVar("T")
Publication = tuple[str, bytes, dict[str, str]]  # subject, payload, headers (Nats-Msg-Id always)
CATCHING_UP = "catching up with EVENTS after a reconnect"


class Command(NamedTuple):
    msg: Msg
    command: OrderCommand


class Answer(NamedTuple):
    """What a message that holds no decidable command gets: a rejection, or nothing."""

    publication: Publication | None


class RiskService(Service):
    name = "risk"

    def __init__(self, settings: Any) -> None:
        super().__init__(settings, instance=settings.instance or "main")
        self.config = settings.risk
        limits = load_limits_file(self.config.limits_file) if self.config.limits_file else self.config.limits
        liveness = VenueLiveness(timeout=self.config.venue_heartbeat_timeout, started=time.monotonic())
        self.gate = Gate(config=self.config, limits=limits, exposure=Exposure(), liveness=liveness)
        self.ledger = CommandLedger()
        self._limits_mtime = 0.0
        self._limits_failure = ""  # the reload error last logged: each distinct one is logged once
        self.events: StreamFollower | None = None
        self.trading_states: BucketFollower | None = None
        self.references: ReferencePrices | None = None
        self.decisions = self.metrics.counter(
            "tradebus_risk_decisions_total", "Commands decided by risk", ["decision", "reason"]
        )

    async def start(self) -> None:
        assert self.bus is not None
        js = self.bus.js
        await ensure_streams(js, self.settings.streams)
        await ensure_consumer(js, RISK_COMMANDS)
        # Before rebuilding the view: a live predecessor would keep routing unseen meanwhile.
        await take_over(self.bus, RISK_COMMANDS, heartbeats=subjects.status_filter(self.name), stopping=self.stopping)
        self.bucket = await ensure_bucket(js, RISK_BUCKET, self.settings.streams)
        self.trading_states = BucketFollower(self.bus, RISK_BUCKET, self._apply_stored_state)
        self.events = StreamFollower(self.bus.nc, EVENTS, self._on_event)
        self.references = ReferencePrices(self.bus.nc, subscriber=f"risk.{self.instance}", wait=self.config.reference_price_wait,
                                          has_quote=lambda venue, symbol: self.gate.exposure.mid(venue, symbol) is not None)
        await self.bus.nc.subscribe(subjects.market_data_filter(kind=MarketDataKind.QUOTE), cb=self._on_quote)
        await self.bus.nc.subscribe(subjects.status_filter("connector"), cb=self._on_connector_status)
        self.gate.liveness.started = time.monotonic()  # the grace window starts when heartbeats can arrive
        await self.trading_states.start()  # `tradebus halt` writes there
        await self._replay_and_follow()
        await self.bus.nc.subscribe(subjects.RISK_CONTROL, cb=self._on_control)
        if self.config.limits_file:
            self.spawn(self._reload_limits(), name="limits-reload")
        self.spawn(
            consume_batches(self.bus, stream=COMMANDS.name, durable=RISK_COMMANDS.durable, handler=self._on_commands,
                            batch=self.config.batch_size, stopping=self.stopping,
                            # commands lost on their way here come again before newer ones
                            on_lost_deliveries=functools.partial(
                                restart_from_ack_floor, self.bus, RISK_COMMANDS,
                                "commands lost on the way: starting again from the ack floor")),
            name="command-consumer",
        )

    async def stop(self) -> None:
        if self.references is not None:
            await self.references.close()
        if self.events is not None:
            await self.events.stop()
        if self.trading_states is not None:
            await self.trading_states.stop()

    def counters(self) -> dict[str, int]:
        return {"working_orders": len(self.gate.exposure.orders)}

    # --- commands ---------------------------------------------------------------------------
    async def _on_commands(self, messages: list[Msg]) -> None:
        assert self.bus is not None and self.events is not None and self.references is not None
        self.metrics.received.labels(family="command").inc(len(messages))
        if not self.events.complete.is_set():  # a reconnect: what the venues said meanwhile is not read yet
            detail, self.detail = self.detail, CATCHING_UP
            await self.events.complete.wait()
            if self.detail == CATCHING_UP:  # else a trading state changed meanwhile and said so
                self.detail = detail
        readings = [self._read(msg) for msg in messages]
        clock = time.monotonic()
        await self.references.wait_for({key for reading in readings if isinstance(reading, Command)
                                        and (key := unpriced(reading.command, self.gate, clock))})
        publications = [publication for reading in readings
                        for publication in ([reading.publication] if isinstance(reading, Answer)
                                            else self._decide_or_refuse(reading))
                        if publication is not None]
        try:
            await self.bus.publish_pipelined(publications)  # through bus breaks (shared/pipeline.py)
        except BaseException:
            # Not decided after all: the redelivered commands are decided again (a route
            # that was stored anyway is de-duplicated by its Nats-Msg-Id), never skipped.
            self.ledger.forget(decided_id(headers[MSG_ID]) for _, _, headers in publications)
            raise
        self.metrics.published.labels(family="decision").inc(len(publications))
        for msg in messages:
            await msg.ack()

    def _read(self, msg: Msg) -> Command | Answer:
        """The command a message holds, or the answer to one that holds none."""
        try:
            parsed = subjects.parse(msg.subject)
        except ValueError as exc:
            self.quarantine.hold("command", msg.subject, msg.data, exc)
            return Answer(None)  # nobody to answer: quarantined and acked
        try:
            command: OrderCommand = _command_decoder.decode(msg.data)
        except DecodeError as exc:
            self.quarantine.hold("command", msg.subject, msg.data, exc)
            return Answer(self._malformed(msg, parsed.venue, parsed.account, str(exc)))
        if (command.venue, command.account) != (parsed.venue, parsed.account):
            return Answer(self._malformed(msg, parsed.venue, parsed.account, "venue/account in the body differ from the subject"))
        return Command(msg, command)

    def _decide_or_refuse(self, reading: Command) -> list[Publication | None]:
        """`_decide`; a command that breaks it is quarantined and refused as malformed, so that
        it neither stops the batch (redelivered for ever) nor goes unanswered."""
        msg = reading.msg
        try:
            return list(self._decide(reading))
        except Exception as exc:
            self.metrics.handler_errors.labels(family="command").inc()
            log.exception("command could not be decided", extra={"subject": msg.subject})
            self.quarantine.hold("command", msg.subject, msg.data, repr(exc))
            return [self._malformed(msg, reading.command.venue, reading.command.account,
                                    f"could not be decided: {exc!r}")]

    def _decide(self, reading: Command) -> list[Publication]:
        """The publications that answer one command: its route, or its rejection (a group's:
        one per order); none for a re-delivery."""
        msg, command = reading.msg, reading.command
        dedupe_id = command_dedupe_id(command)
        seq = msg.metadata.sequence.stream
        if self.ledger.is_decided(dedupe_id, seq):
            self.decisions.labels(decision="duplicate", reason="").inc()
            return []  # a re-delivery: its publication is stored
        now = time.time_ns()
        answer = self.ledger.answer_repeat(command, dedupe_id, seq, now)
        if answer is not None:  # already received, or a reused client order id: the order keeps its state
            self.decisions.labels(decision="rejected", reason=answer.reason.value).inc()
            return [self._answer(answer, seq)]
        deadline = stored_at(msg) + self.config.time_to_live_ns(getattr(command, "ttl_ms", None))
        rejection = check(command, self.gate, now=now, clock=time.monotonic(), deadline=deadline)
        self._record(command, dedupe_id, seq, None if rejection is None else rejection.reason)
        if rejection is None:
            self.decisions.labels(decision="routed", reason="").inc()
            headers = {MSG_ID: dedupe_id, COMMAND_SEQ: str(seq)}
            if not isinstance(command, (CancelOrder, CancelAllOrders)):
                headers[DEADLINE] = str(deadline)
            return [(subjects.route(command.venue, command.account), msg.data, headers)]
        self.decisions.labels(decision="rejected", reason=rejection.reason.value).inc()
        event_id = f"{RISK_EVENT_PREFIX}{dedupe_id}"
        refusals = (group_refused(command, event_id=event_id, reason=rejection.reason, message=rejection.message,
                                  now=now) if isinstance(command, PlaceOrderGroup)
                    else [command_refused(command, event_id=event_id, reason=rejection.reason,
                                          message=rejection.message, now=now)])
        return [self._answer(refusal, seq) for refusal in refusals]

    def _record(self, command: OrderCommand, dedupe_id: str, seq: int, refusal: RejectReason | None) -> None:
        """Note a decision in the ledger and, for orders routed, in the exposure."""
        assert self.references is not None  # commands are consumed once started
        if isinstance(command, PlaceOrderGroup):
            self.ledger.decide_group(dedupe_id, seq, command, refusal)
            if refusal is None:
                self.gate.exposure.on_routed_group(command)
                self.references.hold(command.venue, command.first.symbol)
            return
        place = command if isinstance(command, PlaceOrder) else None
        self.ledger.decide(dedupe_id, seq, place, refusal)
        if place is not None and refusal is None:
            self.gate.exposure.on_routed(place)
            self.references.hold(place.venue, place.symbol)

    @staticmethod
    def _answer(event: OrderRejected | CommandRejected, seq: int) -> Publication:
        return (subjects.rejections(event.venue, event.account), encode(event),
                {MSG_ID: event.event_id, COMMAND_SEQ: str(seq)})

    def _malformed(self, msg: Msg, venue: str | None, account: str | None, why: str) -> Publication | None:
        """A command that can't be decided is answered with a `malformed` rejection."""
        if venue is None or account is None:
            return None
        event = malformed_command(venue=venue, account=account, stream_seq=msg.metadata.sequence.stream, message=why,
                                  now=time.time_ns(), payload=msg.data, issuer=RISK_EVENT_PREFIX)
        self.decisions.labels(decision="rejected", reason=RejectReason.MALFORMED.value).inc()
        log.warning("malformed command", extra={"subject": msg.subject, "error": why[:300]})
        return subjects.rejections(venue, account), encode(event), {MSG_ID: event.event_id}

    # --- what risk knows ----------------------------------------------------------------------
    async def _replay_and_follow(self) -> None:
        """Read ROUTE and EVENTS from their first message; return once caught up with what
        they held when risk started, still following EVENTS (and catching up again after
        every reconnect, see follower.py)."""
        assert self.bus is not None and self.events is not None and self.references is not None
        routes = StreamFollower(self.bus.nc, ROUTE, self._on_route)
        await asyncio.gather(routes.catch_up(), self.events.catch_up())
        # Decoding every route again would cost as much as deciding it. Routes that arrive
        # before the unsubscribe were decided by a previous instance, or are this one's own.
        await routes.stop()
        self.bus.connection_listeners.append(self.events.on_connection)
        for (venue, _, _), order in self.gate.exposure.orders.items():  # their quotes, from now on
            self.references.hold(venue, order.symbol)
        log.info("exposure rebuilt", extra={"working_orders": len(self.gate.exposure.orders),
                                            "decided": len(self.ledger.decided),
                                            "client_order_ids": len(self.ledger.taken)})

    def _on_route(self, msg: StoredMessage) -> None:
        try:
            command = _command_decoder.decode(msg.data)
        except DecodeError as exc:  # risk only routes valid commands: this one is not its own
            self.quarantine.hold("route", msg.subject, msg.data, exc)
            return
        headers = msg.headers or {}
        self.ledger.on_route(headers.get(MSG_ID) or command_dedupe_id(command), _command_seq(headers), command)
        if isinstance(command, PlaceOrder):
            self.gate.exposure.on_routed(command)
        elif isinstance(command, PlaceOrderGroup):
            self.gate.exposure.on_routed_group(command)

    def _on_event(self, msg: StoredMessage) -> None:
        """Apply an event to what risk knows, if its subject's publisher may state it: a
        connector's event about another venue must not mark that venue's commands decided."""
        try:
            parsed = subjects.parse(msg.subject)
            if parsed.family not in (Family.ORDER_EVENT, Family.REJECTION, Family.ACCOUNT_EVENT):
                return
            account_event = parsed.family is Family.ACCOUNT_EVENT
            event = (_account_decoder if account_event else _event_decoder).decode(msg.data)
            refusal = provenance.refusal(parsed, event)
            if refusal is not None:
                self.quarantine.hold("event", msg.subject, msg.data, f"{refusal.value}: not from {provenance.scope(parsed)}",
                                     reason=refusal.value)
            elif not account_event:  # the venues' answers and risk's own
                self.ledger.on_order_event(event, _command_seq(msg.headers or {}))
                self.gate.exposure.on_order_event(event)
            elif isinstance(event, PositionUpdate):
                self.gate.exposure.on_position(event)
        except (ValueError, *DecodeError) as exc:
            self.quarantine.hold("event", msg.subject, msg.data, exc)

    async def _on_quote(self, msg: Msg) -> None:
        quote = self._decoded(_quote_decoder, msg, "market_data")
        assert self.references is not None  # subscribed to quotes once started
        if quote is not None and quote.__struct_config__.tag == "quote":
            self.gate.exposure.on_quote(quote)
            self.references.quoted(quote.venue, quote.symbol)

    async def _on_connector_status(self, msg: Msg) -> None:
        status = self._decoded(_status_decoder, msg, "status")
        if status is not None:
            self.gate.liveness.on_status(status, time.monotonic())

    def _decoded(self, decoder: msgspec.json.Decoder[T], msg: Msg, family: str) -> T | None:
        """The message's payload; None (quarantined) if it does not decode: core NATS, nobody to answer."""
        try:
            return decoder.decode(msg.data)
        except DecodeError as exc:
            self.quarantine.hold(family, msg.subject, msg.data, exc)
            return None

    # --- trading states -----------------------------------------------------------------------
    def _apply_stored_state(self, key: str, value: bytes | None) -> None:
        """An entry that is not a trading state is quarantined and changes nothing: the key
        keeps the state it had (active, if it never had a readable one). Failing closed
        instead would let any garbage halt the fleet; `tradebus halt` still overwrites it."""
        try:
            check_key(key)
            state = decode_state(value).state if value else TradingState.ACTIVE
        except (ValueError, *DecodeError) as exc:
            if value:  # else the deletion of a key that is no trading state: nothing to apply
                self.quarantine.hold("trading_state", f"$KV.{RISK_BUCKET}.{key}", value, exc)
            return
        self._apply_state(key, state)

    def _apply_state(self, key: str, state: TradingState) -> None:
        if key == FLEET_KEY:
            self.gate.fleet_state = state
        else:
            self.gate.account_states[key.removeprefix(ACCOUNT_KEY_PREFIX)] = state
        self.detail = f"fleet {self.gate.fleet_state.value}"
        log.warning("trading state changed", extra={"key": key, "state": state.value})

    async def _on_control(self, msg: Msg) -> None:
        assert self.bus is not None
        try:
            request = _request_decoder.decode(msg.data)
        except DecodeError as exc:
            self.quarantine.hold("risk_control", msg.subject, msg.data, exc)
            await msg.respond(encode(self._state_reply(ok=False, error=str(exc))))
            return
        if isinstance(request, SetTradingState):
            change = await set_trading_state(self.bus.js, self.bucket, account=request.account, state=request.state,
                                             reason=request.reason, changed_by="risk control request")
            self._apply_state(state_key(request.account), change.state)  # don't wait for the watcher
        if msg.reply:
            reply = self._limits_reply() if isinstance(request, GetRiskLimits) else self._state_reply(ok=True)
            await msg.respond(encode(reply))

    def _state_reply(self, *, ok: bool, error: str = "") -> TradingStateReply:
        return TradingStateReply(ok=ok, fleet=self.gate.fleet_state, accounts=dict(self.gate.account_states), error=error)

    def _limits_reply(self) -> RiskLimitsReply:
        limits = self.gate.limits
        source = f"limits file {self.config.limits_file}" if self.config.limits_file else "settings [risk.limits]"
        # dict(): the reply's levels are the wire type, of which each configured LimitSet is one.
        return RiskLimitsReply(ok=True, source=source, defaults=limits.effective_defaults(), venues=dict(limits.venues),
                               accounts=dict(limits.accounts), instruments=dict(limits.instruments),
                               account_states=limits.account_states, rate=limits.rate)

    # --- limits -------------------------------------------------------------------------------
    async def _reload_limits(self) -> None:
        """Re-read the limits file when it changes; a bad file keeps the previous limits.
        Each distinct failure is logged once (not every interval), and so is the recovery."""
        path = self.config.limits_file
        while True:
            try:
                mtime = os.stat(path).st_mtime
                if mtime != self._limits_mtime:
                    self.gate.limits = load_limits_file(path)
                    if self._limits_mtime or self._limits_failure:
                        log.warning("limits reloaded", extra={"file": path})
                    self._limits_mtime, self._limits_failure = mtime, ""
            except (OSError, ValueError) as exc:
                if str(exc) != self._limits_failure:
                    log.error("limits file not reloaded; keeping the previous limits", extra={"error": str(exc)})
                    self._limits_failure = str(exc)
            await asyncio.sleep(self.config.reload_interval)


def _command_seq(headers: Mapping[str, str]) -> int:
    """The CMD sequence a route or rejection answered (UNKNOWN_SEQ from an older risk)."""
    seq = headers.get(COMMAND_SEQ, "")
    return int(seq) if seq.isdecimal() else UNKNOWN_SEQ
