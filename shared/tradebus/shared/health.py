"""Prometheus metrics and the liveness/readiness endpoints of a service.

The HTTP server is a deliberately tiny HTTP/1.1 responder, one request per connection. It
runs on a thread and event loop of its own, not on the service's: a service whose loop is
blocked still gets an answer, and that answer is 503 (the service's liveness check reads how
long its loop has been unresponsive, loopwatch.py). Only a process that cannot run this
thread either (stopped, or a C call holding the GIL) does not answer at all: there the
probe's own timeout is what fails it, so every probe must have one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8 * 1024
"""Longest accepted request line + headers; probes and scrapers send a few hundred bytes."""


class ServiceMetrics:
    """The metrics of one service, in a registry of its own.

    Not the process-global registry: tests (and the in-process launcher) run several
    services in one process, and each must expose only its own numbers.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        info = Info("tradebus_service", "The service these metrics belong to.", registry=self.registry)
        info.info({"service": service})
        self.received = self.counter(
            "tradebus_messages_received_total", "Messages received from the bus.", ("family",)
        )
        self.published = self.counter(
            "tradebus_messages_published_total", "Messages published to the bus.", ("family",)
        )
        self.decode_errors = self.counter(
            "tradebus_decode_errors_total",
            "Received messages and stored entries that could not be decoded (quarantined: tradebus.dlq.<service>.<family>).",
            ("family",),
        )
        self.handler_errors = self.counter(
            "tradebus_handler_errors_total", "Received messages whose handler raised.", ("family",)
        )

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
        return Counter(name, documentation, labelnames, registry=self.registry)

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:
        return Histogram(name, documentation, labelnames, registry=self.registry, buckets=buckets)

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
        return Gauge(name, documentation, labelnames, registry=self.registry)

    def counter_reading(self, name: str, documentation: str, labels: dict[str, str], read: Callable[[], float]) -> None:
        """A counter whose value `read` returns at each scrape: for counts a hot path already
        keeps as a plain integer, where a Prometheus counter's lock would cost per message."""
        self.registry.register(_ReadCounter(name, documentation, labels, read))

    def totals(self) -> dict[str, int]:
        """The bus counters summed over their labels: the compact form heartbeats carry."""
        return {
            "received": _total(self.received),
            "published": _total(self.published),
            "decode_errors": _total(self.decode_errors),
            "handler_errors": _total(self.handler_errors),
        }


class _ReadCounter(Collector):
    def __init__(self, name: str, documentation: str, labels: dict[str, str], read: Callable[[], float]) -> None:
        self._name, self._documentation, self._labels, self._read = name, documentation, labels, read

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=list(self._labels))
        family.add_metric(list(self._labels.values()), self._read())
        yield family


def _total(counter: Counter) -> int:
    return int(sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")))


@dataclass(frozen=True)
class _Response:
    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"


def _status(status: HTTPStatus, word: str) -> _Response:
    return _Response(status, msgspec.json.encode({"status": word}))


_NOT_FOUND = _status(HTTPStatus.NOT_FOUND, "not found")
_NOT_ALLOWED = _status(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")
_BAD_REQUEST = _status(HTTPStatus.BAD_REQUEST, "bad request")
_TIMEOUT = _status(HTTPStatus.REQUEST_TIMEOUT, "request timeout")
_ERROR = _status(HTTPStatus.INTERNAL_SERVER_ERROR, "error")


class HealthServer:
    """Serves GET /metrics, /healthz and /readyz from a thread of its own.

    `is_live` and `is_ready` are called per request, on that thread; one that raises counts
    as "no". `request_timeout` bounds how long a client may take to send its request head.
    """

    def __init__(
        self,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        registry: CollectorRegistry,
        is_live: Callable[[], bool],
        is_ready: Callable[[], bool],
        request_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.is_live = is_live
        self.is_ready = is_ready
        self.request_timeout = request_timeout
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._open: set[asyncio.BaseTransport] = set()  # accepted connections, from the accept on
        self._routes: dict[str, Callable[[], _Response]] = {
            "/metrics": self._metrics,
            "/healthz": lambda: _probe(self.is_live, "live"),
            "/readyz": lambda: _probe(self.is_ready, "ready"),
        }

    async def start(self) -> None:
        """Listen; afterwards `port` is the bound port (useful with port=0)."""
        listening: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(listening,), name="health-server", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(listening)

    def _run(self, listening: concurrent.futures.Future[None]) -> None:
        """The thread: listen, report it (or why not), serve until `stop`."""
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._listen())
        except BaseException as exc:  # a taken port: raised by `start` in the service's loop
            listening.set_exception(exc)
            self._loop.close()
            return
        listening.set_result(None)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self._open, self._serve, loop), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop connections still in progress (a stuck client must not
        delay shutdown); the thread ends with its loop."""
        if self._thread is None or self._loop is None:
            return
        if self._thread.is_alive():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close(), self._loop))
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join)
        self._thread = self._loop = None

    async def _close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for transport in list(self._open):
            transport.close()
        # this loop serves this server alone: what else runs on it are its connections
        connections = asyncio.all_tasks() - {asyncio.current_task()}
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, response = await self._handle(reader)
            writer.write(_encode(response, include_body=method != "HEAD"))
            await writer.drain()
        except ConnectionError:
            pass  # the client went away; nothing to answer
        except Exception:
            log.exception("health server failed to answer a request")
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[str, _Response]:
        """(request method, response); never raises for a malformed or slow request."""
        try:
            async with asyncio.timeout(self.request_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            return "", _TIMEOUT
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            return "", _BAD_REQUEST  # too long, or the client hung up mid-request
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "", _BAD_REQUEST
        method, target, _ = parts
        try:
            return method, self._route(method, target.split("?", 1)[0])
        except Exception:
            log.exception("health endpoint %s failed", target)
            return method, _ERROR

    def _route(self, method: str, path: str) -> _Response:
        if path not in self._routes:
            return _NOT_FOUND
        if method not in ("GET", "HEAD"):
            return _NOT_ALLOWED
        return self._routes[path]()

    def _metrics(self) -> _Response:
        return _Response(HTTPStatus.OK, generate_latest(self.registry), CONTENT_TYPE_LATEST)


class _Connection(asyncio.StreamReaderProtocol):
    """A stream connection known to the server from its accept on, before its task first
    runs: a stop closes it even when that task never got to run."""

    def __init__(self, open_transports: set[asyncio.BaseTransport],
                 serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(asyncio.StreamReader(limit=MAX_HEAD_BYTES, loop=loop), serve, loop=loop)
        self._open_transports = open_transports
        self._own_transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._own_transport = transport
        self._open_transports.add(transport)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._open_transports.discard(self._own_transport)
        super().connection_lost(exc)


def _probe(check: Callable[[], bool], word: str) -> _Response:
    try:
        ok = bool(check())
    except Exception:
        log.exception("%s check raised; answering 'not %s'", word, word)
        ok = False
    return _status(HTTPStatus.OK, word) if ok else _status(HTTPStatus.SERVICE_UNAVAILABLE, f"not {word}")


def _encode(response: _Response, *, include_body: bool) -> bytes:
    head = (
        f"HTTP/1.1 {response.status.value} {response.status.phrase}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (response.body if include_body else b"")
