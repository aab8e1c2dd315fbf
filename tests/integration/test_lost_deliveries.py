"""A delivery lost on its way to a consumer in order (risk's, a connector's) comes again
before anything newer (bus.py `consume_batches` with `on_lost_deliveries`, takeover.py).

On a cluster the loss happens when the node a service is connected through is cut off while
the consumer, led by another node, sends it commands. Here a second puller takes one
delivery away from the consumer, which JetStream then counts as delivered to somebody: the
same gap in the delivery sequence, on one real server."""

from __future__ import annotations

import asyncio
import json

from nats.aio.msg import Msg

from tradebus.schemas.subjects import PREFIX
from tradebus.shared.bus import Bus, consume_batches
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.takeover import restart_from_ack_floor
from tradebus.shared.topology import COMMANDS, Consumer, StreamSettings, ensure_streams

CONSUMER = Consumer(COMMANDS, "lost-deliveries", f"{PREFIX}.cmd.>")


async def consume_with_a_delivery_taken_away(url: str, *, recover: bool) -> list[int]:
    """Stream sequences in the order the handler got them: 1, then (taken away: 2), 3, ..."""
    bus = await Bus.connect(url, name="test")
    try:
        js = bus.js
        await ensure_streams(js, StreamSettings())
        await js.add_consumer(COMMANDS.name, CONSUMER.config())
        await js.publish(f"{PREFIX}.cmd.paper.a1", b"1")
        handled: list[int] = []
        stolen = bus.nc.new_inbox()
        taken = await bus.nc.subscribe(stolen)
        stopping = asyncio.Event()

        async def handler(messages: list[Msg]) -> None:
            for msg in messages:
                handled.append(msg.metadata.sequence.stream)
                await msg.ack_sync()
                if len(handled) == 1:  # the loop's request is used up (batch 1): another takes the next
                    for n in (2, 3):
                        await js.publish(f"{PREFIX}.cmd.paper.a1", str(n).encode())
                    await bus.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{COMMANDS.name}.{CONSUMER.durable}",
                                         json.dumps({"batch": 1}).encode(), reply=stolen)
                    await taken.next_msg(timeout=5)
            if len(handled) >= 3:
                stopping.set()

        lost = (lambda: restart_from_ack_floor(bus, CONSUMER, "lost")) if recover else None
        consuming = asyncio.create_task(consume_batches(bus, stream=COMMANDS.name, durable=CONSUMER.durable,
                                                        handler=handler, batch=1, stopping=stopping,
                                                        on_lost_deliveries=lost))
        try:
            await asyncio.wait_for(stopping.wait(), 5)
        except TimeoutError:
            pass
        stopping.set()
        await consuming
        return handled
    finally:
        await bus.nc.close()


async def test_a_delivery_lost_on_the_way_comes_again_before_newer_ones(nats_server: NatsServer) -> None:
    assert await consume_with_a_delivery_taken_away(nats_server.url, recover=True) == [1, 2, 3]


async def test_without_recovery_the_newer_one_overtakes_it(nats_server: NatsServer) -> None:
    """What the recovery is for: the lost one would come only after the ack wait (30 s)."""
    assert await consume_with_a_delivery_taken_away(nats_server.url, recover=False) == [1, 3]
