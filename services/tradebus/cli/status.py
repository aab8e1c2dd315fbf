"""`tradebus status`: every service the bus has heard of lately, judged by its heartbeats.

Three sources: answers to a ping and heartbeats during the observation window (services
alive now, whatever their host's clock says), and the STATUS stream, which keeps each
instance's last heartbeat for an hour. The stream is what lets a service that died or hung
before this command started keep its row, marked `down` with the age of its last heartbeat.
On a NATS cluster a second table lists its nodes (clusterview.py); a node offline for a
stream makes the command exit 1, as a service down does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import msgspec
import nats
import nats.aio.msg
from nats.js.errors import NotFoundError

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, decoder, reply_decoder
from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.subjects import Family
from tradebus.shared.busaccess import PermissionRefused
from tradebus.shared.topology import last_heartbeats

from .busclient import connect_client
from .clusterview import OFFLINE, cluster_nodes, node_table
from .liveness import DOWN, Watch, service_key, status_table

_ping_decoder = reply_decoder(Family.PING)
_heartbeat_decoder = decoder(Family.STATUS)
HISTORY_TIMEOUT = 2.0


async def collect_statuses(nc: nats.NATS, wait: float) -> Watch:
    """Ping the fleet, listen to heartbeats for `wait` seconds and read the last known ones."""
    watch = Watch()

    def heard(data: bytes, status_decoder: msgspec.json.Decoder[ServiceStatus]) -> ServiceStatus | None:
        try:
            return status_decoder.decode(data)
        except DecodeError:
            return None  # not a heartbeat we understand: not evidence either way

    def observe_live(data: bytes, status_decoder: msgspec.json.Decoder[ServiceStatus]) -> None:
        status = heard(data, status_decoder)
        if status is not None:  # alive now, whatever its host's clock says: stamped with ours
            watch.observe(msgspec.structs.replace(status, ts_event=time.time_ns()))

    async def on_answer(msg: nats.aio.msg.Msg) -> None:
        observe_live(msg.data, _ping_decoder)

    async def on_heartbeat(msg: nats.aio.msg.Msg) -> None:
        observe_live(msg.data, _heartbeat_decoder)

    inbox = nc.new_inbox()
    answers = await nc.subscribe(inbox, cb=on_answer)
    heartbeats = await nc.subscribe(subjects.ALL_STATUS, cb=on_heartbeat)
    await nc.publish(subjects.PING, b"", reply=inbox)
    history, _ = await asyncio.gather(_last_heartbeats(nc), asyncio.sleep(wait))
    for data in history:
        status = heard(data, _heartbeat_decoder)
        if status is not None and service_key(status) not in watch.latest:  # silent since: judged by its age
            watch.observe(status)
    await answers.unsubscribe()
    await heartbeats.unsubscribe()
    return watch


async def _last_heartbeats(nc: nats.NATS) -> list[bytes]:
    """Each instance's last heartbeat from the STATUS stream; none if this identity may not
    read it (the deployed `client` user) or the fleet is older than the stream."""
    try:
        return [message.data for message in await last_heartbeats(nc, subjects.ALL_STATUS, timeout=HISTORY_TIMEOUT)]
    except NotFoundError:  # StreamMissing too
        return []
    except PermissionRefused as exc:
        print(f"tradebus: no heartbeat history ({exc}): services that stopped are not listed", file=sys.stderr)
        return []
    except (nats.errors.Error, TimeoutError) as exc:
        print(f"tradebus: no heartbeat history ({type(exc).__name__}): services that stopped are not listed",
              file=sys.stderr)
        return []


async def status(args: argparse.Namespace) -> int:
    nc = await connect_client(args, "tradebus-status")
    try:
        watch = await collect_statuses(nc, args.wait)
        nodes = await cluster_nodes(nc)
    finally:
        await nc.close()
    if not watch.latest:
        print("no service answered", file=sys.stderr)
        return 1
    rows = watch.rows()
    print(status_table(rows))
    if nodes:
        print()
        print(node_table(nodes))
    node_down = any(node.state == OFFLINE for node in nodes)
    return 1 if node_down or any(row.state == DOWN for row in rows) else 0
