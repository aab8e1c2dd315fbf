"""A consumer-group member as a process of its own, for tests that SIGKILL it:
`python kafkamember.py BOOTSTRAP TOPIC GROUP COMMIT_AFTER`.

It prints one JSON line per record received (`{"offset": ..., "value": ...}`), commits the
offset after the COMMIT_AFTER-th record once it has printed it (a commit after processing),
prints `{"committed": offset}`, and goes on receiving without committing until it is killed.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiokafka import AIOKafkaConsumer, TopicPartition

# Short group timings, so that a killed member's partitions move on within about a second.
GROUP_TIMINGS = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 200, "rebalance_timeout_ms": 1000}


async def member(bootstrap: str, topic: str, group: str, commit_after: int) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", **GROUP_TIMINGS)
    await consumer.start()
    received = 0
    async for record in consumer:
        print(json.dumps({"offset": record.offset, "value": record.value.decode()}), flush=True)
        received += 1
        if received == commit_after:
            await consumer.commit({TopicPartition(record.topic, record.partition): record.offset + 1})
            print(json.dumps({"committed": record.offset + 1}), flush=True)


if __name__ == "__main__":
    asyncio.run(member(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
