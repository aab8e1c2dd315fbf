"""A command the connector executed comes again as a first delivery when nats-server lost
the consumer's state (kill -9 right after the connector's events were stored, before its
ack and the consumer's state reached disk): the delivery count starts over at 1.

Found by the chaos test (seeds 1 and 3): a resting place accepted 12 ms before the kill
came back 3 s after the restart with `num_delivered` 1 and was answered
`duplicate_client_order_id`, which a client's ticket takes as the end of a live order.
The connector process that survived the bus restart knows it was given that stream
sequence already. Here the server's loss is reproduced exactly: the durable is re-created
from the stream's start while the connector runs.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import nats

from tradebus.schemas import subjects
from tradebus.schemas.commands import CancelOrder, PlaceOrder
from tradebus.schemas.events import CommandRejected, OrderAccepted, OrderCancelled
from tradebus.schemas.values import OrderType, Side
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.topology import connector_consumer

from .helpers import a_quote, collect, event_decoder, outcome, paper_settings, route, running_connector, wait_until


async def test_commands_delivered_again_as_first_deliveries_are_recognized(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
    async with running_connector(paper_settings(nats_server.url)) as connector:
        price = (await a_quote(nc) * Decimal("0.95")).quantize(Decimal("0.01"))
        await route(nc, PlaceOrder(client_order_id="rests", venue="paper", account="demo", symbol="ETH/USDT",
                                   side=Side.BUY, order_type=OrderType.LIMIT, quantity=Decimal("0.01"), price=price))
        await route(nc, PlaceOrder(client_order_id="gone", venue="paper", account="demo", symbol="ETH/USDT",
                                   side=Side.BUY, order_type=OrderType.LIMIT, quantity=Decimal("0.01"), price=price))
        await route(nc, CancelOrder(client_order_id="gone", venue="paper", account="demo"))
        await outcome(events, "rests", (OrderAccepted,))
        await outcome(events, "gone", (OrderCancelled,))
        consumer = connector_consumer("paper")
        await wait_until(lambda: connector.skipped_redeliveries == 0 and len(events.items) == 3, "the three answers")
        answered = len(events.items)

        # What the restarted server remembers of the consumer: nothing delivered yet.
        await js.delete_consumer(consumer.stream.name, consumer.durable)
        await js.add_consumer(consumer.stream.name, consumer.config(start_seq=1))
        await wait_until(lambda: connector.skipped_redeliveries == 3, "the three commands recognized", timeout=15)
        # they are acknowledged once their batch is through (just after the count): within a second
        deadline = time.monotonic() + 1.0
        while True:
            info = await js.consumer_info(consumer.stream.name, consumer.durable)
            if (info.num_ack_pending, info.ack_floor.stream_seq) == (0, 3) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert info.num_ack_pending == 0 and info.ack_floor.stream_seq == 3

    assert len(events.items) == answered, [m for m in events.messages[answered:]]
    assert not [m for m in events.messages if isinstance(m, CommandRejected)]
    await nc.close()
