"""A durable re-created by a takeover (from its ack floor, deliver policy by start sequence)
is ensured again by the next instance as it is: the server refuses to change a deliver
policy, and a service that cannot ensure its consumer never starts.

Found by the chaos test (seed 5): the paper connector killed, taken over, killed again;
every later start failed with "deliver policy can not be updated" (nats-py reports the
policy as a plain string, which the check compared by identity with the enum member), so
the venue stayed down for good. Risk ensures its durable the same way.
"""

from __future__ import annotations

import nats
import pytest
from nats.js.api import DeliverPolicy

from tradebus.shared.natsserver import NatsServer
from tradebus.shared.topology import (
    RISK_COMMANDS,
    Consumer,
    StreamSettings,
    connector_consumer,
    ensure_consumer,
    ensure_streams,
)


@pytest.mark.parametrize("consumer", [connector_consumer("paper"), RISK_COMMANDS], ids=lambda c: c.durable)
async def test_a_durable_taken_over_is_ensured_again_as_it_is(nats_server: NatsServer, consumer: Consumer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_streams(js, StreamSettings())
    await ensure_consumer(js, consumer)
    # What take_over does with a predecessor's unacknowledged commands.
    await js.delete_consumer(consumer.stream.name, consumer.durable)
    await js.add_consumer(consumer.stream.name, consumer.config(start_seq=71))

    await ensure_consumer(js, consumer)  # the next instance's start

    config = (await js.consumer_info(consumer.stream.name, consumer.durable)).config
    assert (DeliverPolicy(config.deliver_policy), config.opt_start_seq) == (DeliverPolicy.BY_START_SEQUENCE, 71)
    await nc.close()
