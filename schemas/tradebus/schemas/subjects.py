"""The subject registry: every subject of the fleet, its payload, who publishes and who
consumes it, and builders/parsers that are the only place subject strings are made.

Symbols are encoded into a single NATS token reversibly. Characters outside
`[A-Za-z0-9_/:-]` (including `.`, `*`, `>`, white space, `~` and any non-ASCII) become
`~XX`, the upper-case hex of each UTF-8 byte: `BRK.B` -> `BRK~2EB`, `M&M` -> `M~26M`,
`BTC/USDT:USDT` stays as it is. The encoding is canonical, so each symbol has exactly one
token and `decode_token(encode_token(s)) == s` for every string.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from .commands import OrderCommand
from .control import (
    GetInstruments,
    InstrumentsReply,
    OmsReply,
    OmsRequest,
    Reconcile,
    ReconcileReply,
    RiskReply,
    RiskRequest,
    ServiceStatus,
    SubscriptionReply,
    SubscriptionRequest,
)
from .events import AccountEvent, OrderEvent, RejectionEvent, RiskEvent
from .market import MarketData
from .sizing import SizePosition, SizeReply
from .values import MarketDataKind

PREFIX = "tradebus"

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_/:-")
_ESCAPE = "~"
_HEX_UPPER = "0123456789ABCDEF"
_NAME_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def encode_token(symbol: str) -> str:
    """Encode a symbol into one subject token (see the module docstring)."""
    if not symbol:
        raise ValueError("a symbol cannot be empty")
    out: list[str] = []
    for char in symbol:
        if char in _SAFE:
            out.append(char)
        else:
            out.extend(f"{_ESCAPE}{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def decode_token(token: str) -> str:
    """Invert `encode_token`; refuse any token `encode_token` would not have produced."""
    if not token:
        raise ValueError("a token cannot be empty")
    raw = bytearray()
    i = 0
    while i < len(token):
        char = token[i]
        if char in _SAFE:
            raw.append(ord(char))
            i += 1
            continue
        digits = token[i + 1 : i + 3]
        if char != _ESCAPE or len(digits) != 2 or any(d not in _HEX_UPPER for d in digits):
            raise ValueError(f"invalid symbol token {token!r} at position {i}")
        byte = int(digits, 16)
        if chr(byte) in _SAFE:
            raise ValueError(f"symbol token {token!r} escapes a safe character")
        raw.append(byte)
        i += 3
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"symbol token {token!r} is not UTF-8") from exc


def _name(token: str, what: str) -> str:
    if not _NAME_TOKEN.match(token):
        raise ValueError(f"invalid {what} {token!r}: use 1-32 of A-Z a-z 0-9 _ -")
    return token


class Family(enum.Enum):
    COMMAND = "command"
    ROUTE = "route"
    ORDER_EVENT = "order_event"
    ACCOUNT_EVENT = "account_event"
    REJECTION = "rejection"
    MARKET_DATA = "market_data"
    MARKET_DATA_CONTROL = "market_data_control"
    INSTRUMENTS = "instruments"
    RISK_EVENT = "risk_event"
    STATUS = "status"
    PING = "ping"
    OMS_QUERY = "oms_query"
    OMS_TENANT_QUERY = "oms_tenant_query"
    RECONCILE = "reconcile"
    RISK_CONTROL = "risk_control"
    SIZING = "sizing"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class SubjectSpec:
    family: Family
    pattern: str  # `{name}` marks a token parameter
    payload: Any  # the msgspec type (usually a tagged union) of the message body
    payload_name: str  # its name in the exported JSON Schema files and the docs
    publishers: str
    consumers: str
    delivery: str
    description: str
    reply: Any = None  # payload type of the reply, for request/reply subjects
    reply_name: str | None = None
    raw_body: str = ""  # for a payload of None: what the body is, if it is not empty


SUBJECTS: tuple[SubjectSpec, ...] = (
    SubjectSpec(
        Family.COMMAND,
        f"{PREFIX}.cmd.{{venue}}.{{account}}",
        OrderCommand,
        "order-command",
        "clients (any language)",
        "risk",
        "JetStream stream CMD, file storage; header Nats-Msg-Id = command_dedupe_id(command) "
        "de-duplicates retries. A command whose publish was acked is never lost.",
        "Order commands from clients, before the risk gate.",
    ),
    SubjectSpec(
        Family.ROUTE,
        f"{PREFIX}.route.{{venue}}.{{account}}",
        OrderCommand,
        "order-command",
        "risk (only: enforced by bus permissions)",
        "the venue's connector",
        "JetStream stream ROUTE, file storage, de-duplicated like CMD; the connector acks a "
        "command only after the venue's answer is published. Header Tradebus-Deadline (unix ns) on a "
        "place or modify: after it the connector refuses the command (`deadline_exceeded`).",
        "Risk-approved commands, unchanged, routed to the venue's connector.",
    ),
    SubjectSpec(
        Family.ORDER_EVENT,
        f"{PREFIX}.evt.order.{{venue}}.{{account}}",
        OrderEvent,
        "order-event",
        "the venue's connector (only: enforced by bus permissions)",
        "order manager, audit logger, clients",
        "JetStream stream EVENTS, file storage; header Nats-Msg-Id = event_id.",
        "The order lifecycle and fills, and the venue's refusals of commands. Risk's refusals travel on "
        "`tradebus.evt.reject.<venue>.<account>`: a client waiting for an answer subscribes to both.",
    ),
    SubjectSpec(
        Family.REJECTION,
        f"{PREFIX}.evt.reject.{{venue}}.{{account}}",
        RejectionEvent,
        "rejection-event",
        "risk (only: enforced by bus permissions)",
        "order manager, audit logger, clients",
        "JetStream stream EVENTS, file storage; header Nats-Msg-Id = event_id (`risk:<command dedupe id>`).",
        "Commands risk refused (limits, trading state, deadlines, a reused client order id, a malformed command): "
        "`rejected` for a place, `command_rejected` for anything else. Only these two types: the order manager "
        "refuses any other event here, so risk cannot state a fill.",
    ),
    SubjectSpec(
        Family.ACCOUNT_EVENT,
        f"{PREFIX}.evt.account.{{venue}}.{{account}}",
        AccountEvent,
        "account-event",
        "connectors",
        "order manager, risk, audit logger, clients",
        "JetStream stream EVENTS, file storage; header Nats-Msg-Id = event_id.",
        "Balances and positions.",
    ),
    SubjectSpec(
        Family.RISK_EVENT,
        f"{PREFIX}.evt.risk",
        RiskEvent,
        "risk-event",
        "risk; tradebus halt / resume",
        "audit logger, clients",
        "JetStream stream EVENTS, file storage; header Nats-Msg-Id = event_id.",
        "Changes of the trading state (halt, reducing-only, resume) of an account or the fleet.",
    ),
    SubjectSpec(
        Family.MARKET_DATA,
        f"{PREFIX}.md.{{venue}}.{{kind}}.{{symbol}}",
        MarketData,
        "market-data",
        "connectors",
        "clients, risk (price collar), tradebus ticks",
        "Core NATS, at most once. `seq` numbers each stream so a subscriber detects loss.",
        "Normalized quotes, trades, bars, book snapshots/deltas and instrument definitions; "
        "gap / reconnected markers inline in the stream they concern.",
    ),
    SubjectSpec(
        Family.MARKET_DATA_CONTROL,
        f"{PREFIX}.ctl.md.{{venue}}",
        SubscriptionRequest,
        "subscription-request",
        "clients, tradebus ticks",
        "the venue's connector",
        "Core NATS request/reply; idempotent, safe to retry. A subscribe is a lease of the "
        "subscriber's interest (`lease_ms` in the reply, 60 s by default): repeat it every third "
        "of the lease to keep the streams, or the interest expires; a stream stops when no "
        "subscriber holds it.",
        "Subscribe / unsubscribe market-data streams (interest counted per subscriber), list "
        "instruments. Subscribing to the `instrument` kind publishes the current definitions.",
        reply=SubscriptionReply,
        reply_name="subscription-reply",
    ),
    SubjectSpec(
        Family.INSTRUMENTS,
        f"{PREFIX}.ctl.instruments.{{venue}}",
        GetInstruments,
        "instruments-request",
        "clients, tradebus instruments",
        "the venue's connector",
        "Core NATS request/reply; read-only, safe to retry.",
        "Reference data on demand: the venue's instrument definitions (tick size, lot size, "
        "minimum quantity and notional), all or those of some symbols.",
        reply=InstrumentsReply,
        reply_name="instruments-reply",
    ),
    SubjectSpec(
        Family.STATUS,
        f"{PREFIX}.status.{{service}}.{{instance}}",
        ServiceStatus,
        "service-status",
        "every service",
        "tradebus up / status, monitoring",
        "Core NATS, every heartbeat interval; the STATUS stream keeps each instance's latest one (in memory, one hour).",
        "Service heartbeats with state and counters. A service silent for three intervals is down.",
    ),
    SubjectSpec(
        Family.PING,
        f"{PREFIX}.ctl.ping",
        None,
        "",
        "tradebus status",
        "every service",
        "Core NATS request; every service replies with its ServiceStatus.",
        "Ask every service for its status now (empty body).",
        reply=ServiceStatus,
        reply_name="service-status",
    ),
    SubjectSpec(
        Family.OMS_QUERY,
        f"{PREFIX}.ctl.oms",
        OmsRequest,
        "oms-request",
        "clients, tradebus orders / positions",
        "order manager",
        "Core NATS request/reply (a queue group: any order-manager instance answers).",
        "Queries of one order, of orders (open or all), and of positions aggregated across venues.",
        reply=OmsReply,
        reply_name="oms-reply",
    ),
    SubjectSpec(
        Family.OMS_TENANT_QUERY,
        f"{PREFIX}.ctl.oms.tenant.{{tenant}}",
        OmsRequest,
        "oms-request",
        "a tenant's clients: they send to `tradebus.ctl.oms` in their own NATS account, and the server maps it "
        "to this subject with their tenant's name (a client cannot choose the token)",
        "order manager (with `tenants_file` set)",
        "Core NATS request/reply (a queue group: any order-manager instance answers).",
        "The order manager's queries as one tenant sees them: only the venue accounts of the tenants file's entry "
        "`tenant`. A query naming another account, or from a tenant the file does not list, is refused "
        "(`ok: false`, with the reason in `error`).",
        reply=OmsReply,
        reply_name="oms-reply",
    ),
    SubjectSpec(
        Family.RECONCILE,
        f"{PREFIX}.ctl.reconcile.{{venue}}",
        Reconcile,
        "reconcile",
        "order manager (orders stuck without a venue answer)",
        "the venue's connector",
        "Core NATS request/reply; the answer's events go to the event stream with their original ids.",
        "Ask a connector to re-publish the venue's latest state of some orders.",
        reply=ReconcileReply,
        reply_name="reconcile-reply",
    ),
    SubjectSpec(
        Family.RISK_CONTROL,
        f"{PREFIX}.ctl.risk",
        RiskRequest,
        "risk-request",
        "tradebus risk limits, operators",
        "risk",
        "Core NATS request/reply; the state itself lives in the KV bucket tradebus_risk and survives restarts.",
        "Set or read the trading state of an account or of the whole fleet (the kill switch); read the "
        "risk limits in force.",
        # The name of version 1, when trading states were the only reply.
        reply=RiskReply,
        reply_name="trading-state",
    ),
    SubjectSpec(
        Family.SIZING,
        f"{PREFIX}.ctl.sizing",
        SizePosition,
        "size-position",
        "clients, tradebus size",
        "sizing",
        "Core NATS request/reply (a queue group: any sizing instance answers); read-only, safe to retry.",
        "Position sizing: a quantity for a venue account and symbol by fixed fractional, Kelly or ATR sizing, "
        "from the account's equity (the order manager's balances) and the instrument's rules (the connector's "
        "instruments), rounded down to the lot size, with the steps that led to it. A refusal carries a reason "
        "code (`refusal`).",
        reply=SizeReply,
        reply_name="size-reply",
    ),
    SubjectSpec(
        Family.DEAD_LETTER,
        f"{PREFIX}.dlq.{{service}}.{{source}}",
        None,
        "dead-letter",
        "every service",
        "operators (e.g. `nats sub 'tradebus.dlq.>'`)",
        "Core NATS, at most once, best effort: nothing is stored, and a service drops a dead letter rather than "
        "wait for the bus. Headers: Tradebus-Origin (the subject, or `$KV.<bucket>.<key>` of a bucket entry), "
        "Tradebus-Error (why it was unreadable), Tradebus-Size (the original length: a body longer than the "
        "bus allows is cut short).",
        "Quarantined input: a message or bucket entry a service could not decode. The service logged it, counted "
        "it in tradebus_decode_errors_total{family} and went on; `source` is that family (e.g. `command`, "
        "`order_event`, `trading_state`).",
        raw_body="The unreadable message's bytes exactly as the service received them (any content, not JSON).",
    ),
)

SPECS: dict[Family, SubjectSpec] = {spec.family: spec for spec in SUBJECTS}


def command(venue: str, account: str) -> str:
    return f"{PREFIX}.cmd.{_name(venue, 'venue')}.{_name(account, 'account')}"


def route(venue: str, account: str) -> str:
    return f"{PREFIX}.route.{_name(venue, 'venue')}.{_name(account, 'account')}"


def order_events(venue: str, account: str) -> str:
    return f"{PREFIX}.evt.order.{_name(venue, 'venue')}.{_name(account, 'account')}"


def account_events(venue: str, account: str) -> str:
    return f"{PREFIX}.evt.account.{_name(venue, 'venue')}.{_name(account, 'account')}"


def rejections(venue: str, account: str) -> str:
    return f"{PREFIX}.evt.reject.{_name(venue, 'venue')}.{_name(account, 'account')}"


def answers(venue: str, account: str) -> tuple[str, str]:
    """Where every answer to a command of this venue account arrives: the venue's order
    events and risk's rejections. Whoever waits for an answer subscribes to both."""
    return order_events(venue, account), rejections(venue, account)


def market_data(venue: str, kind: MarketDataKind, symbol: str) -> str:
    return f"{PREFIX}.md.{_name(venue, 'venue')}.{kind.value}.{encode_token(symbol)}"


def market_data_filter(venue: str | None = None, kind: MarketDataKind | None = None, symbol: str | None = None) -> str:
    """A subscription subject; None means any (`*`)."""
    venue_token = "*" if venue is None else _name(venue, "venue")
    kind_token = "*" if kind is None else kind.value
    symbol_token = "*" if symbol is None else encode_token(symbol)
    return f"{PREFIX}.md.{venue_token}.{kind_token}.{symbol_token}"


def market_data_control(venue: str) -> str:
    return f"{PREFIX}.ctl.md.{_name(venue, 'venue')}"


def instruments(venue: str) -> str:
    return f"{PREFIX}.ctl.instruments.{_name(venue, 'venue')}"


def status(service: str, instance: str) -> str:
    return f"{PREFIX}.status.{_name(service, 'service')}.{_name(instance, 'instance')}"


def status_filter(service: str) -> str:
    """The heartbeats of every instance of one service (a connector's instance is its venue)."""
    return f"{PREFIX}.status.{_name(service, 'service')}.*"


def reconcile(venue: str) -> str:
    return f"{PREFIX}.ctl.reconcile.{_name(venue, 'venue')}"


def oms_tenant_query(tenant: str) -> str:
    return f"{PREFIX}.ctl.oms.tenant.{_name(tenant, 'tenant')}"


def dead_letter(service: str, source: str) -> str:
    return f"{PREFIX}.dlq.{_name(service, 'service')}.{_name(source, 'source')}"


PING = f"{PREFIX}.ctl.ping"
ALL_STATUS = f"{PREFIX}.status.>"
OMS_QUERY = f"{PREFIX}.ctl.oms"
OMS_TENANT_QUERIES = f"{PREFIX}.ctl.oms.tenant.*"
ALL_ANSWERS = (f"{PREFIX}.evt.order.>", f"{PREFIX}.evt.reject.>")
"""Every venue account's answers to commands (`answers` of each)."""
RISK_CONTROL = f"{PREFIX}.ctl.risk"
SIZING = f"{PREFIX}.ctl.sizing"
RISK_EVENTS = f"{PREFIX}.evt.risk"


@dataclass(frozen=True)
class ParsedSubject:
    family: Family
    venue: str | None = None
    account: str | None = None
    kind: MarketDataKind | None = None
    symbol: str | None = None
    service: str | None = None
    instance: str | None = None
    source: str | None = None
    tenant: str | None = None


def parse(subject: str) -> ParsedSubject:
    """Parse a concrete subject of the registry; raise ValueError for anything else."""
    tokens = subject.split(".")
    if not tokens or tokens[0] != PREFIX:
        raise ValueError(f"not a {PREFIX} subject: {subject!r}")
    match tokens[1:]:
        case ["cmd", venue, account]:
            return ParsedSubject(Family.COMMAND, venue=_name(venue, "venue"), account=_name(account, "account"))
        case ["route", venue, account]:
            return ParsedSubject(Family.ROUTE, venue=_name(venue, "venue"), account=_name(account, "account"))
        case ["evt", "order", venue, account]:
            return ParsedSubject(Family.ORDER_EVENT, venue=_name(venue, "venue"), account=_name(account, "account"))
        case ["evt", "account", venue, account]:
            return ParsedSubject(Family.ACCOUNT_EVENT, venue=_name(venue, "venue"), account=_name(account, "account"))
        case ["evt", "reject", venue, account]:
            return ParsedSubject(Family.REJECTION, venue=_name(venue, "venue"), account=_name(account, "account"))
        case ["md", venue, kind, symbol]:
            return ParsedSubject(
                Family.MARKET_DATA, venue=_name(venue, "venue"), kind=MarketDataKind(kind), symbol=decode_token(symbol)
            )
        case ["ctl", "md", venue]:
            return ParsedSubject(Family.MARKET_DATA_CONTROL, venue=_name(venue, "venue"))
        case ["ctl", "instruments", venue]:
            return ParsedSubject(Family.INSTRUMENTS, venue=_name(venue, "venue"))
        case ["status", service, instance]:
            return ParsedSubject(Family.STATUS, service=_name(service, "service"), instance=_name(instance, "instance"))
        case ["ctl", "ping"]:
            return ParsedSubject(Family.PING)
        case ["evt", "risk"]:
            return ParsedSubject(Family.RISK_EVENT)
        case ["ctl", "oms"]:
            return ParsedSubject(Family.OMS_QUERY)
        case ["ctl", "oms", "tenant", tenant]:
            return ParsedSubject(Family.OMS_TENANT_QUERY, tenant=_name(tenant, "tenant"))
        case ["ctl", "reconcile", venue]:
            return ParsedSubject(Family.RECONCILE, venue=_name(venue, "venue"))
        case ["ctl", "risk"]:
            return ParsedSubject(Family.RISK_CONTROL)
        case ["ctl", "sizing"]:
            return ParsedSubject(Family.SIZING)
        case ["dlq", service, source]:
            return ParsedSubject(Family.DEAD_LETTER, service=_name(service, "service"), source=_name(source, "source"))
    raise ValueError(f"unknown subject {subject!r}")
