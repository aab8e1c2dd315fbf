"""ServiceMetrics and HealthServer, exercised over real sockets."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from tradebus.shared.health import MAX_HEAD_BYTES, HealthServer, ServiceMetrics

HOST = "127.0.0.1"


@dataclass
class Probes:
    live: bool = True
    ready: bool = False


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics("test-svc")


@pytest.fixture
def probes() -> Probes:
    return Probes()


@pytest.fixture
async def server(metrics: ServiceMetrics, probes: Probes) -> AsyncIterator[HealthServer]:
    server = HealthServer(
        host=HOST, port=0, registry=metrics.registry, is_live=lambda: probes.live, is_ready=lambda: probes.ready
    )
    await server.start()
    yield server
    await server.stop()


async def send(server: HealthServer, raw: bytes) -> Response:
    """Send raw bytes, read the whole answer (the server closes the connection) and parse it."""
    reader, writer = await asyncio.open_connection(HOST, server.port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return Response(int(status_line.split(" ")[1]), headers, body)


async def get(server: HealthServer, path: str) -> Response:
    return await send(server, f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())


# --- metrics ---------------------------------------------------------------------------------------


async def test_metrics_exposes_counter_values(server: HealthServer, metrics: ServiceMetrics) -> None:
    metrics.received.labels(family="md").inc(3)
    metrics.published.labels(family="orders").inc()
    fills = metrics.counter("oms_fills_total", "Fills applied.", ("venue",))
    fills.labels(venue="paper").inc(2)
    response = await get(server, "/metrics")
    text = response.body.decode()
    assert response.status == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert int(response.headers["Content-Length"]) == len(response.body)
    assert 'tradebus_messages_received_total{family="md"} 3.0' in text
    assert 'tradebus_messages_published_total{family="orders"} 1.0' in text
    assert 'oms_fills_total{venue="paper"} 2.0' in text
    assert 'tradebus_service_info{service="test-svc"} 1.0' in text


def test_totals_sum_over_labels(metrics: ServiceMetrics) -> None:
    metrics.received.labels(family="md").inc(10)
    metrics.received.labels(family="orders").inc(2)
    metrics.decode_errors.labels(family="md").inc()
    assert metrics.totals() == {"received": 12, "published": 0, "decode_errors": 1, "handler_errors": 0}


def test_services_in_one_process_have_separate_registries() -> None:
    first, second = ServiceMetrics("a"), ServiceMetrics("b")
    first.received.labels(family="md").inc(5)
    first.gauge("queue_depth", "Items queued.").set(1)
    second.gauge("queue_depth", "Items queued.").set(2)  # no duplicate-registration error
    assert (first.totals()["received"], second.totals()["received"]) == (5, 0)


def test_histogram_in_the_service_registry(metrics: ServiceMetrics) -> None:
    latency = metrics.histogram("risk_check_seconds", "Risk check latency.", buckets=(0.001, 0.01))
    latency.observe(0.005)
    assert metrics.registry.get_sample_value("risk_check_seconds_bucket", {"le": "0.01"}) == 1.0
    assert metrics.registry.get_sample_value("risk_check_seconds_bucket", {"le": "0.001"}) == 0.0


# --- probes ----------------------------------------------------------------------------------------


async def test_port_zero_binds_a_free_port(server: HealthServer) -> None:
    assert server.port != 0


async def test_healthz(server: HealthServer, probes: Probes) -> None:
    response = await get(server, "/healthz")
    assert (response.status, json.loads(response.body)) == (200, {"status": "live"})
    probes.live = False
    response = await get(server, "/healthz")
    assert (response.status, json.loads(response.body)) == (503, {"status": "not live"})


async def test_readyz_follows_readiness(server: HealthServer, probes: Probes) -> None:
    response = await get(server, "/readyz")
    assert (response.status, json.loads(response.body)) == (503, {"status": "not ready"})
    probes.ready = True
    response = await get(server, "/readyz?verbose=1")
    assert (response.status, json.loads(response.body)) == (200, {"status": "ready"})
    probes.ready = False
    assert (await get(server, "/readyz")).status == 503


async def test_a_raising_check_means_no(metrics: ServiceMetrics) -> None:
    def broken() -> bool:
        raise RuntimeError("check exploded")

    server = HealthServer(host=HOST, registry=metrics.registry, is_live=lambda: True, is_ready=broken)
    await server.start()
    try:
        assert (await get(server, "/readyz")).status == 503
        assert (await get(server, "/healthz")).status == 200
    finally:
        await server.stop()


async def test_unknown_path_is_404(server: HealthServer) -> None:
    response = await get(server, "/nope")
    assert (response.status, json.loads(response.body)) == (404, {"status": "not found"})


async def test_other_methods_are_405(server: HealthServer) -> None:
    assert (await send(server, b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n")).status == 405


async def test_head_has_no_body(server: HealthServer) -> None:
    response = await send(server, b"HEAD /healthz HTTP/1.1\r\n\r\n")
    assert response.status == 200
    assert int(response.headers["Content-Length"]) > 0
    assert response.body == b""


async def test_works_with_a_real_http_client(server: HealthServer, probes: Probes) -> None:
    def fetch(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{server.port}{path}", timeout=5) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    assert await asyncio.to_thread(fetch, "/healthz") == (200, b'{"status":"live"}')
    assert await asyncio.to_thread(fetch, "/readyz") == (503, b'{"status":"not ready"}')
    status, body = await asyncio.to_thread(fetch, "/metrics")
    assert status == 200 and b"tradebus_messages_received_total" in body


# --- bad requests ----------------------------------------------------------------------------------


async def test_oversized_head_is_400_and_server_survives(server: HealthServer) -> None:
    padding = b"X-Pad: " + b"a" * (MAX_HEAD_BYTES + 1024) + b"\r\n"
    response = await send(server, b"GET /healthz HTTP/1.1\r\n" + padding + b"\r\n")
    assert response.status == 400
    assert (await get(server, "/healthz")).status == 200


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\r\n\r\n",
        b"GET /healthz\r\n\r\n",
        b"GET /healthz SPDY/3\r\n\r\n",
        b"\x16\x03\x01\xff\xfe\r\n\r\n",
        b"\r\n\r\n",
    ],
)
async def test_malformed_request_is_400_and_server_survives(server: HealthServer, raw: bytes) -> None:
    assert (await send(server, raw)).status == 400
    assert (await get(server, "/healthz")).status == 200


async def test_client_hanging_up_mid_request(server: HealthServer) -> None:
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.write(b"GET /heal")
    writer.write_eof()
    assert (await asyncio.wait_for(reader.read(), timeout=5)).startswith(b"HTTP/1.1 400 ")
    writer.close()
    assert (await get(server, "/healthz")).status == 200


async def test_silent_client_times_out(metrics: ServiceMetrics) -> None:
    server = HealthServer(
        host=HOST, registry=metrics.registry, is_live=lambda: True, is_ready=lambda: True, request_timeout=0.05
    )
    await server.start()
    try:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        assert (await asyncio.wait_for(reader.read(), timeout=5)).startswith(b"HTTP/1.1 408 ")
        writer.close()
    finally:
        await server.stop()


async def test_stop_does_not_wait_for_idle_clients(metrics: ServiceMetrics) -> None:
    server = HealthServer(host=HOST, registry=metrics.registry, is_live=lambda: True, is_ready=lambda: True)
    await server.start()
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")  # head never finished
    await writer.drain()
    await asyncio.wait_for(server.stop(), timeout=2)
    try:  # dropped without an answer: closed, or reset when the request was still unread
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    except ConnectionResetError:
        pass
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection(HOST, server.port)
