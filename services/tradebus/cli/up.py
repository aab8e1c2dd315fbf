"""`tradebus up`: the whole fleet on one machine.

Starts an embedded nats-server with JetStream, then every service as its own process
(exactly what `tradebus run` would start in a container), restarts a service that dies,
shows a live status table fed by the services' heartbeats, and stops everything cleanly
on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import nats

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, decoder
from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.subjects import Family
from tradebus.services.settings import load_settings
from tradebus.shared.config import EXIT_CONFIG, ConfigError
from tradebus.shared.natsserver import NatsServer, NatsServerError

from .emulatedfleet import EMULATED_ACCOUNT, EmulatedVenues
from .status import status_table

_status_decoder = decoder(Family.STATUS)
STOP_GRACE = 10.0
MAX_RESTART_DELAY = 30.0


@dataclass
class Child:
    """One supervised service process."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    restart_at: float = 0.0
    own_env: dict[str, str] = field(default_factory=dict)  # this child's alone (an emulated venue's credentials)

    def start(self, env: dict[str, str]) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env={**env, **self.own_env})

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()


@dataclass
class Watch:
    """The latest heartbeat of every service, and message rates derived from two of them."""

    latest: dict[str, ServiceStatus] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)

    def observe(self, status: ServiceStatus) -> None:
        key = f"{status.service}.{status.instance}"
        previous = self.latest.get(key)
        if previous is not None and status.ts_event > previous.ts_event and status.pid == previous.pid:
            moved = sum(status.counters.values()) - sum(previous.counters.values())
            self.rates[key] = max(0.0, moved / ((status.ts_event - previous.ts_event) / 1e9))
        self.latest[key] = status


def _nats_port(args: argparse.Namespace) -> int:
    """--nats-port, else the port of --nats-url / TRADEBUS_NATS_URL, else 4222."""
    if args.nats_port:
        return args.nats_port
    url = args.nats_url or os.environ.get("TRADEBUS_NATS_URL")
    return (urlparse(url).port if url else None) or 4222


ORDER_PATH = ("risk", "oms", "audit")


def _children(args: argparse.Namespace, log_dir: Path, nats_url: str, config_path: str | None,
              venue_env: dict[str, dict[str, str]]) -> list[Child]:
    """The order path (risk, order manager, audit logger) and one connector per venue."""
    run = [sys.executable, "-m", "tradebus.cli.main", "run"]
    config = ["--config", config_path] if config_path else []
    services = [Child(name, [*run, name, "--nats-url", nats_url, *config], log_dir / f"{name}.log") for name in ORDER_PATH]
    return services + [
        Child(f"connector.{venue}", [*run, "connector", "--venue", venue, "--nats-url", nats_url, *config],
              log_dir / f"connector.{venue}.log", own_env=venue_env.get(venue, {}))
        for venue in (args.venue or ["paper"])
    ]


def _restart_delay(restarts: int) -> float:
    return min(MAX_RESTART_DELAY, 2.0 ** min(restarts, 5))


async def _supervise(children: list[Child], env: dict[str, str], nats_url: str, stop: asyncio.Event) -> None:
    watch = Watch()
    nc = await nats.connect(nats_url, name="tradebus-up")

    async def on_status(msg: nats.aio.msg.Msg) -> None:
        try:
            watch.observe(_status_decoder.decode(msg.data))
        except DecodeError:
            pass

    await nc.subscribe(subjects.ALL_STATUS, cb=on_status)
    interactive = sys.stdout.isatty()
    last_printed = ""
    try:
        while not stop.is_set():
            _restart_dead(children, env)
            table = status_table(list(watch.latest.values()), rates=watch.rates)
            states = [(s.service, s.instance, s.state) for s in watch.latest.values()]
            if interactive:
                sys.stdout.write("\x1b[H\x1b[2J" + _banner(nats_url) + table + "\n")
            elif str(states) != last_printed:  # a log-friendly line only when states change
                print(table, flush=True)
                last_printed = str(states)
            sys.stdout.flush()
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
    finally:
        await nc.close()


def _restart_dead(children: list[Child], env: dict[str, str]) -> None:
    now = time.monotonic()
    for child in children:
        code = child.exited()
        if code is None:
            continue
        if child.restart_at == 0.0:
            child.restart_at = now + _restart_delay(child.restarts)
            print(f"{child.name} exited with {code}; restarting (log: {child.log_path})", file=sys.stderr)
        elif now >= child.restart_at:
            child.restarts += 1
            child.restart_at = 0.0
            child.start(env)


def _banner(nats_url: str) -> str:
    return f"tradebus up: NATS at {nats_url}. Ctrl-C stops the fleet.\n\n"


def _stop_children(children: list[Child]) -> None:
    for child in children:
        if child.exited() is None and child.process is not None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{child.name} did not stop in {STOP_GRACE:g}s; killing it", file=sys.stderr)
            child.process.kill()
            child.process.wait()


async def _up(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)  # refuse a bad config before starting anything
    except ConfigError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    data_dir = Path(args.data_dir or settings.data_dir)
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    fleet = EmulatedVenues(args.config or os.environ.get("TRADEBUS_CONFIG"))
    if args.emulate:
        refusal = fleet.create([venue for venue in (args.venue or []) if venue != "paper"])
        if refusal is not None:
            print(refusal, file=sys.stderr)
            return 2
    server = NatsServer(store_dir=data_dir / "nats", port=_nats_port(args), log_file=log_dir / "nats-server.log")
    try:
        server.start()
    except NatsServerError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 2
    print(f"tradebus up: NATS at {server.url}, data in {data_dir}, service logs in {log_dir}", flush=True)
    env = {**os.environ, "TRADEBUS_NATS_URL": server.url}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    children: list[Child] = []
    try:
        config_path = await fleet.start(data_dir) if fleet.emulators else args.config
        for venue, url in fleet.urls().items():
            print(f"tradebus up: {venue} emulated at {url} (account {EMULATED_ACCOUNT})", flush=True)
        children = _children(args, log_dir, server.url, config_path, fleet.credential_env)
        for child in children:
            child.start(env)
        await _supervise(children, env, server.url, stop)
    finally:
        print("tradebus up: stopping", flush=True)
        # in a thread: the emulated venues served from this loop must keep answering while
        # their connectors close their connections
        await asyncio.to_thread(_stop_children, children)
        await fleet.stop()
        server.stop()
        print("tradebus up: stopped", flush=True)
    return 0


def up(args: argparse.Namespace) -> int:
    return asyncio.run(_up(args))
