"""Every JetStream stream and durable consumer of the fleet, declared in one place.

Streams hold what must never be lost: commands (CMD), risk-approved commands (ROUTE) and
events (EVENTS). Market data and heartbeats stay on core NATS: they are superseded within
milliseconds and replaying them would be wrong. The one exception is STATUS: it keeps only
the latest heartbeat of each service instance, in memory, for an hour, so that a watcher
started after a service went silent (`tradebus status`) still sees it and how long ago it
was last heard of, instead of silently not listing it.

`tradebus provision` (the `provision` identity) creates or updates all of it: streams,
buckets and every durable consumer. Services change none of it: on start-up each checks
that what it uses exists and creates only what is missing, so an unsecured local bus still
starts in any order; on a secured bus, where creating is refused, a service with something
missing refuses to start and names the command (`ensure_*` below). For production, run the
server with `sync_interval: always` and use `replicas: 3` (see deploy/nats/); the defaults
below suit one embedded server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypedDict, TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client as NATS
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from tradebus.schemas.subjects import PREFIX

from .bus import StoredMessage
from .busaccess import PermissionRefused
from .config import StartRefused
from .direct import last_per_subject

log = logging.getLogger(__name__)

DAY = 24 * 3600.0


class StreamSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Operator-tunable parts of the topology (the `[streams]` config section)."""

    replicas: int = 1
    duplicate_window: float = 3600.0  # seconds a Nats-Msg-Id is remembered
    command_max_age: float = 7 * DAY
    event_max_age: float = 0.0  # 0 = keep forever: the OMS rebuilds from the event stream


@dataclass(frozen=True)
class Stream:
    name: str
    subjects: tuple[str, ...]
    description: str
    latest_only_for: float | None = None  # seconds to keep only each subject's latest message, in memory

    def config(self, settings: StreamSettings) -> StreamConfig:
        if self.latest_only_for is not None:
            max_age, storage, per_subject = self.latest_only_for, StorageType.MEMORY, 1
        else:
            max_age = settings.event_max_age if self.name == EVENTS.name else settings.command_max_age
            storage, per_subject = StorageType.FILE, -1
        return StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=storage,
            discard=DiscardPolicy.OLD,
            num_replicas=settings.replicas,
            duplicate_window=min(settings.duplicate_window, max_age) if max_age else settings.duplicate_window,
            max_age=max_age,
            max_msgs_per_subject=per_subject,
            allow_direct=True,
        )


COMMANDS = Stream("CMD", (f"{PREFIX}.cmd.>",), "Order commands from clients, before risk.")
ROUTE = Stream("ROUTE", (f"{PREFIX}.route.>",), "Risk-approved commands for connectors.")
EVENTS = Stream("EVENTS", (f"{PREFIX}.evt.>",), "Order, fill and account events.")
STATUS = Stream("STATUS", (f"{PREFIX}.status.>",), "The latest heartbeat of every service instance seen lately.",
                latest_only_for=3600.0)
STREAMS = (COMMANDS, ROUTE, EVENTS, STATUS)


@dataclass(frozen=True)
class Consumer:
    stream: Stream
    durable: str
    filter_subject: str
    ack_wait: float = 30.0
    max_ack_pending: int = 10_000

    def config(self, *, start_seq: int | None = None) -> ConsumerConfig:
        """`start_seq`: deliver from that stream sequence on (a takeover, see takeover.py).
        With `name` set (the durable's), nats-py creates it on
        `$JS.API.CONSUMER.CREATE.<stream>.<durable>.<filter>`, which a permission can pin;
        with `durable_name` alone it would use the legacy DURABLE.CREATE subject, which names
        no filter. The server refuses a filter that differs from the subject's."""
        return ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            filter_subject=self.filter_subject,
            deliver_policy=DeliverPolicy.ALL if start_seq is None else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start_seq,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_ack_pending=self.max_ack_pending,
            # Never give up on a command: a poison message is terminated by its handler
            # (with a rejection event), not silently dropped after N tries.
            max_deliver=-1,
        )


RISK_COMMANDS = Consumer(COMMANDS, "risk", f"{PREFIX}.cmd.>")
OMS_ROUTES = Consumer(ROUTE, "oms-route", f"{PREFIX}.route.>")
OMS_EVENTS = Consumer(EVENTS, "oms-events", f"{PREFIX}.evt.>")
AUDIT_CONSUMERS = (
    Consumer(COMMANDS, "audit-cmd", f"{PREFIX}.cmd.>"),
    Consumer(ROUTE, "audit-route", f"{PREFIX}.route.>"),
    Consumer(EVENTS, "audit-events", f"{PREFIX}.evt.>"),
)

# Key-value buckets (JetStream KV): readable by any client, kept across restarts.
ORDERS_BUCKET = "tradebus_orders"  # the order manager's OrderRecord per `venue.account.client_order_id`
RISK_BUCKET = "tradebus_risk"  # trading states: key `fleet` and `account.<name>`
BUCKETS = (ORDERS_BUCKET, RISK_BUCKET)


def bucket_config(bucket: str, settings: StreamSettings) -> KeyValueConfig:
    """File storage, one value per key, direct gets allowed (read without a consumer)."""
    return KeyValueConfig(bucket=bucket, history=1, storage=StorageType.FILE, replicas=settings.replicas, direct=True)


def connector_consumer(venue: str) -> Consumer:
    """The connector of `venue` consumes every account's routed commands, in order.

    A restarted connector takes the consumer over from its ack floor at once (takeover.py);
    `ack_wait` is kept short for the rare case it cannot (another instance looked alive).
    """
    return Consumer(ROUTE, f"connector-{venue}", f"{PREFIX}.route.{venue}.>", ack_wait=10.0)


def fleet_consumers(venues: list[str]) -> list[Consumer]:
    """Every durable consumer of a fleet running connectors for `venues`."""
    return [RISK_COMMANDS, OMS_ROUTES, OMS_EVENTS, *AUDIT_CONSUMERS, *map(connector_consumer, venues)]


# --- provisioning: `tradebus provision` ------------------------------------------------------

class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    KEPT = "kept"
    REFUSED = "refused"  # the server would not make the change (e.g. a replica count it cannot serve)


@dataclass(frozen=True)
class Provisioned:
    kind: str  # stream, bucket, consumer
    name: str
    outcome: Outcome
    detail: str = ""  # the settings changed, or why the change was refused

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.outcome.value}" + (f" ({self.detail})" if self.detail else "")


async def provision(js: JetStreamContext, settings: StreamSettings, venues: list[str]) -> list[Provisioned]:
    """Create or update every stream, bucket and durable consumer of a fleet with connectors
    for `venues`, as declared above. Idempotent: what already is as declared is kept."""
    done = [await _provision_stream(js, stream.config(settings)) for stream in STREAMS]
    done += [await _provision_bucket(js, bucket_config(bucket, settings)) for bucket in BUCKETS]
    done += [await _provision_consumer(js, consumer) for consumer in fleet_consumers(venues)]
    return done


async def _provision_stream(js: JetStreamContext, config: StreamConfig) -> Provisioned:
    assert config.name is not None
    try:
        current = (await js.stream_info(config.name)).config
    except ServiceUnavailableError:
        raise RuntimeError("JetStream is not enabled on the bus: start nats-server with -js") from None
    except NotFoundError:
        await js.add_stream(config)
        return Provisioned("stream", config.name, Outcome.CREATED)
    return await _update_stream(js, "stream", current, config, _differing(current.as_dict(), config.as_dict()))


class _BucketStreamSettings(TypedDict):
    """The StreamConfig fields a KeyValueConfig sets, by their StreamConfig names."""

    allow_direct: bool | None
    num_replicas: int | None
    max_msgs_per_subject: int


async def _provision_bucket(js: JetStreamContext, config: KeyValueConfig) -> Provisioned:
    try:
        current = (await js.stream_info(f"KV_{config.bucket}")).config
    except NotFoundError:
        await js.create_key_value(config)
        return Provisioned("bucket", config.bucket, Outcome.CREATED)
    # What the bucket's settings make of its stream; the rest is nats-py's KV layout.
    wanted: _BucketStreamSettings = {
        "allow_direct": config.direct, "num_replicas": config.replicas, "max_msgs_per_subject": config.history,
    }
    changed = _differing({name: getattr(current, name) for name in wanted}, wanted)
    return await _update_stream(js, "bucket", current, replace(current, **wanted), changed, name=config.bucket)


async def _update_stream(js: JetStreamContext, kind: str, current: StreamConfig, wanted: StreamConfig,
                         changed: list[str], *, name: str | None = None) -> Provisioned:
    name = name or current.name or ""
    if not changed:
        return Provisioned(kind, name, Outcome.KEPT)
    try:
        await js.update_stream(wanted)
    except APIError as exc:  # e.g. a replica count the server cannot serve: keep serving as it is
        return Provisioned(kind, name, Outcome.REFUSED, f"{', '.join(changed)}: {exc.description}")
    return Provisioned(kind, name, Outcome.UPDATED, ", ".join(changed))


async def _provision_consumer(js: JetStreamContext, consumer: Consumer) -> Provisioned:
    name = f"{consumer.stream.name}/{consumer.durable}"
    try:
        current = (await js.consumer_info(consumer.stream.name, consumer.durable)).config
    except NotFoundError:
        await js.add_consumer(consumer.stream.name, consumer.config())
        return Provisioned("consumer", name, Outcome.CREATED)
    wanted = consumer.config(start_seq=_taken_over_at(current))
    changed = _differing(current.as_dict(), wanted.as_dict())
    if not changed:
        return Provisioned("consumer", name, Outcome.KEPT)
    try:
        await js.add_consumer(consumer.stream.name, wanted)
    except APIError as exc:
        return Provisioned("consumer", name, Outcome.REFUSED, f"{', '.join(changed)}: {exc.description}")
    return Provisioned("consumer", name, Outcome.UPDATED, ", ".join(changed))


def _taken_over_at(current: ConsumerConfig) -> int | None:
    """The start sequence of a durable a takeover re-created from its ack floor (takeover.py):
    kept, since the server refuses to change a deliver policy. nats-py reports the policy as
    the server's string, not as the enum member."""
    if current.deliver_policy is None or DeliverPolicy(current.deliver_policy) is not DeliverPolicy.BY_START_SEQUENCE:
        return None
    return current.opt_start_seq


def _differing(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    return sorted(name for name, value in wanted.items() if current.get(name) != value)


# --- what a service requires: `ensure_*` -----------------------------------------------------

T = TypeVar("T")


def _missing(what: str) -> StartRefused:
    return StartRefused(f"{what} is missing: run `tradebus provision`")


async def _create(what: str, creating: Awaitable[T]) -> T:
    """Create what a service found missing. A bus that refuses (a permission violation,
    reported as PermissionRefused, or as a timeout by a plain nats-py connection; or a
    JetStream API error) makes the service refuse to start: only provisioning may create it."""
    try:
        created = await creating
    except (PermissionRefused, nats.errors.TimeoutError, TimeoutError, APIError) as exc:
        raise _missing(what) from exc
    log.info("created what was missing", extra={"what": what})
    return created


async def ensure_streams(js: JetStreamContext, settings: StreamSettings) -> None:
    """Every stream exists; one that does not is created as declared (never updated)."""
    for stream in STREAMS:
        try:
            await js.stream_info(stream.name)
        except ServiceUnavailableError:
            raise RuntimeError("JetStream is not enabled on the bus: start nats-server with -js") from None
        except NotFoundError:
            await _create(f"stream {stream.name}", js.add_stream(stream.config(settings)))


async def ensure_consumer(js: JetStreamContext, consumer: Consumer) -> None:
    """The durable exists; it is created as declared if it does not (never updated: a
    durable re-created by a takeover keeps its start sequence)."""
    try:
        await js.consumer_info(consumer.stream.name, consumer.durable)
    except NotFoundError:
        await _create(f"consumer {consumer.durable} of stream {consumer.stream.name}",
                      js.add_consumer(consumer.stream.name, consumer.config()))


async def ensure_bucket(js: JetStreamContext, bucket: str, settings: StreamSettings) -> KeyValue:
    """Open a KV bucket, creating it as declared if it is missing. A bucket from before
    direct gets (nats-py's default refuses them) is given them: without them nobody can
    read it without a consumer."""
    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        return await _create(f"bucket {bucket}", js.create_key_value(bucket_config(bucket, settings)))
    current = (await js.stream_info(f"KV_{bucket}")).config
    if not current.allow_direct:
        await _create(f"direct access to bucket {bucket}", js.update_stream(replace(current, allow_direct=True)))
        kv = await js.key_value(bucket)
    return kv


async def last_heartbeats(nc: NATS, subject_filter: str, *, timeout: float = 5.0) -> list[StoredMessage]:
    """The latest heartbeat the STATUS stream keeps of each instance matching `subject_filter`."""
    return await last_per_subject(nc, STATUS.name, subject_filter, timeout=timeout)
