"""AsyncAPI 3.0 document of the whole wire contract, generated from the subject registry.

Pure (no I/O): `asyncapi()` returns the document as a dict; `tradebus schema asyncapi FILE`
writes it with `jsonschema.render` and the committed copy is `schemas/asyncapi.json` (a test
fails when it drifts from the code).

Structure:
- `channels`: one per registry subject, keyed by the family in camelCase; `address` is the
  subject pattern, `parameters` its `{}` tokens (shared definitions in
  `components.parameters`), `messages` the payload's message. Request/reply subjects get a
  second channel `<id>Reply` with a null address: the requester's NATS inbox.
- `operations`: one per subject, from the point of view of a tradebus client application
  (any program written against the contract, a fleet service included): `send` for the
  subjects a client publishes to or sends requests on, `receive` for the ones it subscribes
  to. Who publishes and who consumes in the fleet is in the description (and in the
  `x-publishers` / `x-consumers` extensions). Requests carry a `reply`.
- `components.messages`: one per payload of the registry (plus the empty `ping`); messages
  on JetStream subjects declare the `Nats-Msg-Id` de-duplication header.
- `components.schemas`: msgspec's `schema_components` of every payload: the tagged unions
  under their payload names (`order-command`, ...), the structs and enums under their class
  names. AsyncAPI's Schema Object is JSON Schema draft 07 with a string `discriminator`, so
  msgspec's OpenAPI-style discriminator of a tagged union becomes `oneOf` (the members are
  disjoint by their `type` tag) plus an `x-discriminator` extension holding the mapping.
- `x-delivery` on each channel: transport (JetStream or Core NATS), stream, guarantee.
"""

from __future__ import annotations

import copy
import re
import typing
from typing import Any

import msgspec

from . import CONTRACT_VERSION
from .commands import OrderCommand
from .jsonschema import add_field_rules, optional_nested_tags, portable, schema_hook
from .subjects import SUBJECTS, SubjectSpec
from .values import MarketDataKind

ASYNCAPI_VERSION = "3.0.0"
SCHEMA_REF = "#/components/schemas/{name}"
MSG_ID_HEADER = "Nats-Msg-Id"
PING_MESSAGE = "ping"

PARAMETERS: dict[str, dict[str, Any]] = {
    "venue": {
        "description": "Venue name: 1-32 of `a-z 0-9 _` (e.g. `paper`, `binance`). Connector processes are "
        "one per venue.",
        "examples": ["paper", "binance"],
    },
    "account": {
        "description": "Account name at the venue: 1-32 of `A-Z a-z 0-9 _ -`.",
        "examples": ["demo"],
    },
    "kind": {
        "description": "Market-data stream kind. `book` carries snapshots and deltas; gap / reconnected markers "
        "travel in the stream they concern.",
        "enum": [kind.value for kind in MarketDataKind],
    },
    "symbol": {
        "description": "The unified symbol encoded into one subject token: characters other than "
        "`A-Z a-z 0-9 _ / : -` (including `.`, `*`, `>`, white space, `~` and any non-ASCII) become `~XX`, the "
        "upper-case hex of each UTF-8 byte. The encoding is canonical and reversible: `BRK.B` -> `BRK~2EB`, "
        "`M&M` -> `M~26M`, `BTC/USDT:USDT` stays as it is. The payload's `symbol` field carries the decoded symbol.",
        "examples": ["BTC/USDT", "BTC/USDT:USDT", "BRK~2EB", "M~26M"],
    },
    "service": {
        "description": "Service name: 1-32 of `A-Z a-z 0-9 _ -` (`risk`, `oms`, `audit`, `connector`, ...).",
        "examples": ["risk", "oms", "audit", "connector"],
    },
    "instance": {
        "description": "Instance of the service: 1-32 of `A-Z a-z 0-9 _ -` (a venue name for connectors, "
        "else the host name unless configured).",
        "examples": ["paper"],
    },
    "tenant": {
        "description": "Tenant name from the tenants file: 1-32 of `a-z 0-9 _ -`, starting with a letter. Written "
        "by the server's subject mapping of the tenant's NATS account, never by the client.",
        "examples": ["alpha"],
    },
    "source": {
        "description": "What the quarantined input was: the family of its subject (`command`, `route`, "
        "`order_event`, ...) or the bucket it was read from (`trading_state`, `orders_bucket`).",
        "examples": ["command", "order_event", "trading_state"],
    },
}

_PARAM = re.compile(r"\{(\w+)\}")
_STREAM = re.compile(r"JetStream stream (\w+)")


def _camel(text: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text) if w]
    return words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:])


def channel_id(spec: SubjectSpec) -> str:
    return _camel(spec.family.value)


def message_id(payload_name: str) -> str:
    return _camel(payload_name)


def address_parameters(address: str) -> list[str]:
    return _PARAM.findall(address)


def is_jetstream(spec: SubjectSpec) -> bool:
    return spec.delivery.startswith("JetStream")


def action(spec: SubjectSpec) -> str:
    """`send` when a client application publishes (or requests) on the subject, else `receive`."""
    return "send" if spec.reply is not None or "clients" in spec.publishers else "receive"


def _members(payload: Any) -> list[type[msgspec.Struct]]:
    return list(typing.get_args(payload)) or [payload]


def _dedupe_id(name: str, payload: Any) -> str:
    if payload is OrderCommand:
        return (
            "`command_dedupe_id(command)`: `<venue>.<account>.<client_order_id>.place.<digest>` (digest: 16 hex "
            "digits of the sha256 of the place's JSON without `ts_created` and `ttl_ms`, see docs/raw-protocol.md), "
            "`<venue>.<account>.<client_order_id>.modify.<modify_id>`, "
            "`<venue>.<account>.<client_order_id>.cancel.<cancel_id>` (`.cancel` alone without a `cancel_id`) "
            "or `<venue>.<account>.cancel_all.<request_id>`. The same command sent twice has the same id. "
            "The older place id `<venue>.<account>.<client_order_id>.place` still works, but then JetStream also "
            "drops a place reusing the client order id with other terms within its window, without an answer."
        )
    if all("event_id" in cls.__struct_fields__ for cls in _members(payload)):
        return "The event's `event_id`, unique and stable across re-publications."
    raise ValueError(f"{name} travels on JetStream but has no known Nats-Msg-Id rule: add one to asyncapi.py")


def _headers(name: str, payload: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            MSG_ID_HEADER: {
                "type": "string",
                "description": "JetStream de-duplication id: a message published again with the same id within "
                f"the stream's duplicate window is stored once. {_dedupe_id(name, payload)}",
            }
        },
        "required": [MSG_ID_HEADER],
    }


def _as_asyncapi_schema(node: Any) -> Any:
    """msgspec's JSON Schema -> AsyncAPI Schema Object (draft 07 + string discriminator)."""
    if isinstance(node, list):
        return [_as_asyncapi_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    return _as_asyncapi_object(node)


def _as_asyncapi_object(node: dict[str, Any]) -> dict[str, Any]:
    out = {key: _as_asyncapi_schema(value) for key, value in node.items()}
    discriminator = out.get("discriminator")
    if isinstance(discriminator, dict) and "anyOf" in out:
        out["oneOf"] = out.pop("anyOf")
        out["x-discriminator"] = out.pop("discriminator")
    return out


def _first_paragraph(cls: type) -> str:
    doc = cls.__doc__ or ""
    if not doc.strip() or doc.startswith(f"{cls.__name__}("):
        return ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def _components_schemas(named: dict[str, Any]) -> dict[str, Any]:
    names = sorted(named)
    roots, defs = msgspec.json.schema_components([named[n] for n in names], ref_template=SCHEMA_REF,
                                                 schema_hook=schema_hook)
    schemas: dict[str, Any] = {}
    for name, root in zip(names, roots, strict=True):
        if name in defs:
            raise ValueError(f"payload name {name!r} collides with a type name")
        schemas[name] = {"title": name, **root}
    schemas.update(defs)
    schemas = portable(schemas)
    add_field_rules(schemas, named.values())
    for payload in named.values():
        optional_nested_tags(schemas, payload)
    return _as_asyncapi_object(schemas)


def _delivery(spec: SubjectSpec) -> dict[str, Any]:
    if is_jetstream(spec):
        stream = _STREAM.search(spec.delivery)
        return {
            "transport": "jetstream",
            "stream": stream.group(1) if stream else None,
            "guarantee": "at least once, de-duplicated by the Nats-Msg-Id header: effectively once",
            "details": spec.delivery,
        }
    if spec.reply is not None:
        return {
            "transport": "core-request-reply",
            "guarantee": "at most once: a requester that gets no reply before its timeout retries or fails",
            "details": spec.delivery,
        }
    return {"transport": "core", "guarantee": "at most once", "details": spec.delivery}


def _roles(spec: SubjectSpec) -> str:
    return f"Published by: {spec.publishers}. Consumed by: {spec.consumers}. Delivery: {spec.delivery}"


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every subject in the registry."""
    payload_types: dict[str, Any] = {}
    transports: dict[str, set[bool]] = {}
    for spec in SUBJECTS:
        for name, payload, jetstream in (
            (spec.payload_name, spec.payload, is_jetstream(spec)),
            (spec.reply_name, spec.reply, False),
        ):
            if payload is None or not name:
                continue
            if payload_types.setdefault(name, payload) is not payload:
                raise ValueError(f"payload name {name!r} names two types")
            transports.setdefault(name, set()).add(jetstream)
    mixed = sorted(name for name, kinds in transports.items() if len(kinds) > 1)
    if mixed:
        raise ValueError(f"payloads on both JetStream and Core NATS need separate messages: {mixed}")

    messages: dict[str, Any] = {}
    for name, payload in sorted(payload_types.items()):
        members = _members(payload)
        message: dict[str, Any] = {
            "name": name,
            "title": name,
            "summary": "`type`: " + ", ".join(f"`{cls.__struct_config__.tag}` ({cls.__name__})" for cls in members),
            "contentType": "application/json",
            "payload": {"$ref": SCHEMA_REF.format(name=name)},
        }
        descriptions = [
            f"- `{cls.__struct_config__.tag}` ({cls.__name__})" + (f": {doc}" if (doc := _first_paragraph(cls)) else "")
            for cls in members
        ]
        message["description"] = "\n".join(descriptions)
        if True in transports[name]:
            message["headers"] = _headers(name, payload)
        messages[message_id(name)] = message
    messages[PING_MESSAGE] = {
        "name": PING_MESSAGE,
        "title": PING_MESSAGE,
        "summary": "Empty body.",
        "description": "A ping has no body: every service answers with its ServiceStatus.",
    }
    for spec in SUBJECTS:
        if spec.raw_body:
            messages[message_id(spec.payload_name)] = {
                "name": spec.payload_name,
                "title": spec.payload_name,
                "summary": "Raw bytes.",
                "description": spec.raw_body,
            }

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in SUBJECTS:
        cid = channel_id(spec)
        mid = message_id(spec.payload_name) if spec.payload is not None or spec.raw_body else PING_MESSAGE
        channel: dict[str, Any] = {
            "address": spec.pattern,
            "title": spec.family.value.replace("_", " ").capitalize(),
            "summary": spec.description,
            "description": f"{spec.description}\n\n{_roles(spec)}",
            "messages": {mid: {"$ref": f"#/components/messages/{mid}"}},
            "x-delivery": _delivery(spec),
        }
        params = address_parameters(spec.pattern)
        if params:
            channel["parameters"] = {p: {"$ref": f"#/components/parameters/{p}"} for p in params}
        channels[cid] = channel

        act = action(spec)
        operation: dict[str, Any] = {
            "action": act,
            "channel": {"$ref": f"#/channels/{cid}"},
            "title": (
                f"Request {spec.payload_name or PING_MESSAGE}, reply {spec.reply_name}"
                if spec.reply is not None
                else f"{act.capitalize()} {spec.payload_name}"
            ),
            "summary": spec.description,
            "description": (
                f"A client application {'sends to' if act == 'send' else 'receives from'} `{spec.pattern}`. "
                f"In the fleet: {_roles(spec)}"
            ),
            "messages": [{"$ref": f"#/channels/{cid}/messages/{mid}"}],
            "x-publishers": spec.publishers,
            "x-consumers": spec.consumers,
        }
        if spec.reply is not None and spec.reply_name:
            rid = f"{cid}Reply"
            rmid = message_id(spec.reply_name)
            channels[rid] = {
                "address": None,
                "title": f"Reply to {spec.pattern}",
                "description": "The requester's NATS inbox: the reply subject of the request (`_INBOX.<random>` by "
                f"default), not a fixed subject. Replied by: {spec.consumers}.",
                "messages": {rmid: {"$ref": f"#/components/messages/{rmid}"}},
                "x-delivery": {"transport": "core-request-reply", "guarantee": "at most once", "details": spec.delivery},
            }
            operation["reply"] = {
                "channel": {"$ref": f"#/channels/{rid}"},
                "messages": [{"$ref": f"#/channels/{rid}/messages/{rmid}"}],
            }
        operations[f"{act}{cid[:1].upper()}{cid[1:]}"] = operation

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": f"urn:tradebus:asyncapi:v{CONTRACT_VERSION}",
        "info": {
            "title": "tradebus wire contract",
            "version": str(CONTRACT_VERSION),
            "description": (
                "A fleet of small processes on NATS for trading: one connector per venue, a risk gate, an order "
                "manager, an audit logger, and clients in any language. Every message is a JSON object with a "
                "`type` field naming its kind. Prices, quantities and fees are decimal strings (`\"0.5\"`), "
                "never floats; timestamps are integer nanoseconds since the Unix epoch. Commands and requests "
                "refuse unknown fields; events, market data and replies tolerate them (newer producers may add "
                "optional fields; see docs/schema-evolution.md).\n\n"
                "Operations are written from the point of view of a tradebus client application: `send` where "
                "it publishes or requests, `receive` where it subscribes. The fleet's own roles (who publishes "
                "and who consumes each subject) are in each operation's description."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "The embedded NATS server (with JetStream) of `tradebus up`, default port.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": _components_schemas(payload_types),
            "messages": messages,
            "parameters": copy.deepcopy(PARAMETERS),
        },
    }
