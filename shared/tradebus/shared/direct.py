"""Reading streams and KV buckets without a consumer: JetStream direct gets.

Creating a consumer is a write: it is state on the server, and a consumer its creator may
configure freely is a write primitive (a push consumer's deliver subject can point into any
stream). So whatever only reads — risk following ROUTE and EVENTS, the order manager and
risk loading their buckets, a connector reading its journal, `tradebus oms rebuild`,
`tradebus status`, a takeover looking at heartbeats — reads through
`$JS.API.DIRECT.GET.<stream>` (every stream and bucket allows direct access): nothing to
create, bind or clean up, and one read-only permission per stream. A batched request
(nats-server 2.11 or newer) answers up to `batch` messages in one round trip, then an
end-of-batch status that says how many more match.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import APIError, NotFoundError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE

from .bus import Bus, StoredMessage, _header_time
from .retry import Backoff

log = logging.getLogger(__name__)

BATCH = 2000  # messages per direct get request
TIMEOUT = 5.0  # seconds to wait for the next answer
RETRY = 0.5  # seconds: bound of the first wait while JetStream is not back yet after a reconnect
RETRY_CAP = 1.0  # ... and of every later one (retry.py: jittered, so the fleet's readers spread out)


class StreamMissing(NotFoundError):
    """Nobody answers direct gets on the stream: it does not exist (or JetStream is down)."""


class _Reader:
    """Direct get requests on one stream, answered on one inbox. Answers are collected by a
    callback and handed over a batch at a time: nats-py's `next_msg` costs a timer and two
    tasks per message, which would double the time a start-up spends reading."""

    def __init__(self, nc: NATS, stream: str, timeout: float) -> None:
        self.nc = nc
        self.stream = stream
        self.timeout = timeout
        self.pending = 0  # after a batched request: matching messages beyond those answered
        self._inbox = nc.new_inbox()
        self._subscription: Any = None
        self._answers: list[Msg] = []
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> _Reader:
        self._subscription = await self.nc.subscribe(self._inbox, cb=self._on_answer, pending_msgs_limit=-1,
                                                     pending_bytes_limit=-1)
        return self

    async def __aexit__(self, *_: object) -> None:
        if not self.nc.is_closed:
            await self._subscription.unsubscribe()

    async def _on_answer(self, msg: Msg) -> None:
        self._answers.append(msg)
        self._arrived.set()

    async def get(self, request: Mapping[str, Any]) -> AsyncIterator[list[StoredMessage]]:
        """The messages answering `request`, in stream order, as they arrive (a list at a
        time: a start-up reads thousands). A batched or multi-last request ends with a
        status (end of batch, or none found); a single get is one message or a not-found
        status. Raises TimeoutError when the server stops answering."""
        batched = "batch" in request or "multi_last" in request
        self._answers.clear()
        await self.nc.publish(f"$JS.API.DIRECT.GET.{self.stream}", json.dumps(request).encode(), reply=self._inbox)
        self.pending = 0
        while True:
            if not self._answers:
                self._arrived.clear()
                async with asyncio.timeout(self.timeout):
                    await self._arrived.wait()
            answers, self._answers = self._answers, []
            messages = []
            for msg in answers:
                headers = msg.headers or {}
                status = headers.get("Status")
                if status is None:
                    messages.append(StoredMessage(headers["Nats-Subject"], msg.data, int(headers["Nats-Sequence"]),
                                                  _header_time(headers["Nats-Time-Stamp"]), headers))
                    if batched:
                        continue
                    yield messages
                    return
                yield messages
                if status == "204":  # end of batch
                    self.pending = int(headers.get("Nats-Num-Pending", 0))
                    return
                if status == "404":  # nothing matches
                    return
                if status == "503":  # no responders
                    raise StreamMissing(description=f"stream {self.stream} does not exist or JetStream is unavailable")
                raise APIError.from_msg(msg)
            yield messages


async def read_stored(nc: NATS, stream: str, subject_filter: str, first: int = 1, last: int | None = None, *,
                      batch: int = BATCH, timeout: float = TIMEOUT) -> AsyncIterator[StoredMessage]:
    """The messages of `stream` on `subject_filter` with sequences `first`..`last` (with no
    `last`: up to whatever the stream holds when the read gets there), in stream order.
    Messages gone from the stream meanwhile are skipped."""
    async with _Reader(nc, stream, timeout) as reader:
        while last is None or first <= last:
            answered = 0
            size = batch if last is None else min(batch, last - first + 1)
            async for messages in reader.get({"seq": first, "next_by_subj": subject_filter, "batch": size}):
                for message in messages:
                    if last is not None and message.seq > last:
                        return
                    yield message
                    first, answered = message.seq + 1, answered + 1
            if not answered or not reader.pending:
                return  # nothing (more) on the subject


async def last_seq(nc: NATS, stream: str, subject_filter: str, *, timeout: float = TIMEOUT) -> int:
    """The stream sequence of the newest message on `subject_filter` (0 if there is none)."""
    async with _Reader(nc, stream, timeout) as reader:
        async for messages in reader.get({"last_by_subj": subject_filter}):
            if messages:
                return messages[0].seq
    return 0


async def last_per_subject(nc: NATS, stream: str, subject_filter: str, *,
                           timeout: float = TIMEOUT) -> list[StoredMessage]:
    """The newest message of each subject matching `subject_filter`, in stream order. The
    server answers at most 1024 subjects at once (more: APIError 413, Too Many Results)."""
    async with _Reader(nc, stream, timeout) as reader:
        return [message async for messages in reader.get({"multi_last": [subject_filter]}) for message in messages]


def bucket_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def bucket_subjects(bucket: str) -> str:
    return f"$KV.{bucket}.>"


def bucket_key(bucket: str, subject: str) -> str:
    return subject.removeprefix(f"$KV.{bucket}.")


def bucket_value(message: StoredMessage | Msg) -> bytes | None:
    """A KV entry's value; None for a deletion or purge marker."""
    return None if (message.headers or {}).get(KV_OP) in (KV_DEL, KV_PURGE) else message.data


async def read_bucket_entries(nc: NATS, bucket: str, *, timeout: float = TIMEOUT) -> dict[str, bytes | None]:
    """Every key of a KV bucket with its value as of now; None for a key deleted or purged.
    Each key's messages are read in stream order, so the newest value wins also in a bucket
    that keeps history. Not nats-py's key watcher: it is a consumer, and it can announce "no
    more values" before values that arrive quickly."""
    entries: dict[str, bytes | None] = {}
    async for message in read_stored(nc, bucket_stream(bucket), bucket_subjects(bucket), timeout=timeout):
        entries[bucket_key(bucket, message.subject)] = bucket_value(message)
    return entries


async def read_bucket(nc: NATS, bucket: str, *, timeout: float = TIMEOUT) -> list[tuple[str, bytes]]:
    """Every (key, value) a KV bucket holds now, deleted keys left out."""
    entries = await read_bucket_entries(nc, bucket, timeout=timeout)
    return [(key, value) for key, value in entries.items() if value is not None]


class BucketFollower:
    """A KV bucket's entries now and every change after, without a consumer: loaded with
    direct gets, then followed through a core subscription to the bucket's subjects (a put
    or a delete is a publish there), and loaded again after every reconnect (what changed
    meanwhile was published to nobody). Changes that arrive during a load are applied after
    it: they are in publish order, so the newest value is applied last."""

    def __init__(self, bus: Bus, bucket: str, apply: Callable[[str, bytes | None], None]) -> None:
        self.bus = bus
        self.bucket = bucket
        self.apply = apply  # (key, value; None for a deleted key)
        self._held: list[Msg] | None = None  # changes that arrived during a load
        self._subscription: Any = None
        self._reloading: asyncio.Task[None] | None = None
        self._following = False

    async def start(self) -> None:
        """Subscribe, then apply every entry the bucket holds (returns once applied)."""
        self._subscription = await self.bus.nc.subscribe(bucket_subjects(self.bucket), cb=self._on_change,
                                                         pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self._load()
        self._following = True
        self.bus.connection_listeners.append(self._on_connection)

    async def stop(self) -> None:
        self._following = False
        if self._on_connection in self.bus.connection_listeners:
            self.bus.connection_listeners.remove(self._on_connection)
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloading
        if self._subscription is not None and not self.bus.nc.is_closed:
            await self._subscription.unsubscribe()

    async def _on_change(self, msg: Msg) -> None:
        if self._held is not None:
            self._held.append(msg)
        else:
            self.apply(bucket_key(self.bucket, msg.subject), bucket_value(msg))

    async def _load(self) -> None:
        self._held = []
        try:
            entries = await read_bucket_entries(self.bus.nc, self.bucket)
            for key, value in entries.items():
                self.apply(key, value)
        finally:
            held, self._held = self._held, None
        for msg in held:
            await self._on_change(msg)

    def _on_connection(self, connected: bool) -> None:
        if connected and self._following:
            if self._reloading is not None:
                self._reloading.cancel()
            self._reloading = asyncio.create_task(self._reload(), name=f"reload-{self.bucket}")

    async def _reload(self) -> None:
        backoff = Backoff(RETRY, cap=RETRY_CAP)
        while self._following:  # also when a cancellation was lost in a race with an answer
            try:
                await self._load()
                log.info("bucket loaded again after a reconnect", extra={"bucket": self.bucket})
                return
            except (nats.errors.Error, TimeoutError) as exc:  # JetStream still recovering
                log.warning("bucket not loaded after a reconnect yet", extra={"bucket": self.bucket, "error": repr(exc)})
                await backoff.wait()
