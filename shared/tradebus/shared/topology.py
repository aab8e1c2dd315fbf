"""Every JetStream stream and durable consumer of the fleet, declared in one place.

Streams hold what must never be lost: commands (CMD), risk-approved commands (ROUTE) and
events (EVENTS). Market data and heartbeats stay on core NATS: they are superseded within
milliseconds and replaying them would be wrong. The one exception is STATUS: it keeps only
the latest heartbeat of each service instance, in memory, for an hour, so that a watcher
started after a service went silent (`tradebus status`) still sees it and how long ago it
was last heard of, instead of silently not listing it.

Declaring is idempotent: every service declares what it uses on start-up, so the fleet can
start in any order. For production, run the server with `sync_interval: always` and use
`replicas: 3` (see deploy/nats/); the defaults below suit one embedded server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import msgspec
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RawStreamMsg,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from tradebus.schemas.subjects import PREFIX

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
        """`start_seq`: deliver from that stream sequence on (a takeover, see takeover.py)."""
        return ConsumerConfig(
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


def connector_consumer(venue: str) -> Consumer:
    """The connector of `venue` consumes every account's routed commands, in order.

    A restarted connector takes the consumer over from its ack floor at once (takeover.py);
    `ack_wait` is kept short for the rare case it cannot (another instance looked alive).
    """
    return Consumer(ROUTE, f"connector-{venue}", f"{PREFIX}.route.{venue}.>", ack_wait=10.0)


async def ensure_streams(js: JetStreamContext, settings: StreamSettings) -> None:
    for stream in STREAMS:
        config = stream.config(settings)
        try:
            await js.stream_info(stream.name)
        except ServiceUnavailableError:
            raise RuntimeError("JetStream is not enabled on the bus: start nats-server with -js") from None
        except NotFoundError:
            await js.add_stream(config)
            log.info("stream created", extra={"stream": stream.name})
            continue
        try:
            await js.update_stream(config)
        except BadRequestError as exc:  # e.g. a replica change the server refuses: keep serving
            log.warning("stream update refused", extra={"stream": stream.name, "error": str(exc)})


async def ensure_consumer(js: JetStreamContext, consumer: Consumer) -> None:
    """Create the durable, or update it to `consumer`'s settings. A durable re-created from
    its ack floor by a takeover keeps its start sequence: the server refuses to change a
    deliver policy."""
    try:
        info = await js.consumer_info(consumer.stream.name, consumer.durable)
    except NotFoundError:
        await js.add_consumer(consumer.stream.name, consumer.config())
        return
    # nats-py reports the policy as the server's string, not as the enum member.
    by_start_sequence = DeliverPolicy(info.config.deliver_policy) is DeliverPolicy.BY_START_SEQUENCE
    started_at = info.config.opt_start_seq if by_start_sequence else None
    await js.add_consumer(consumer.stream.name, consumer.config(start_seq=started_at))


async def last_heartbeats(js: JetStreamContext, subject_filter: str) -> list[RawStreamMsg]:
    """The latest heartbeat the STATUS stream keeps of each instance matching `subject_filter`."""
    info = await js.stream_info(STATUS.name, subjects_filter=subject_filter)
    return [await js.get_last_msg(STATUS.name, subject) for subject in (info.state.subjects or {})]


async def ensure_bucket(js: JetStreamContext, bucket: str, settings: StreamSettings) -> KeyValue:
    """Open a KV bucket, creating it (file storage, one value per key) if it is missing."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=bucket, history=1, storage=StorageType.FILE,
                                                        replicas=settings.replicas))
