"""Raw client ceiling: a plain aiokafka consumer loop that reads the topic and only decodes the JSON.

``python -m bench.raw_client BOOTSTRAP TOPIC EXPECT``: reads every partition
from the beginning (no consumer group, aiokafka's default fetch settings),
``orjson.loads`` each value, and stops after ``EXPECT`` records (reading the topic
again while less than ``--min-seconds`` went by, so that a small topic still
gives a stable figure). Timed from the first record to the last. Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition


async def measure(bootstrap: str, topic: str, expect: int, timeout: float, min_seconds: float) -> dict:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count = decoded = passes = 0
        first = None
        deadline = time.monotonic() + timeout
        loads = orjson.loads
        while time.monotonic() < deadline:
            read = 0
            while read < expect and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                if first is None and batches:
                    first = time.perf_counter()
                for messages in batches.values():
                    for message in messages:
                        try:
                            loads(message.value)
                            decoded += 1
                        except orjson.JSONDecodeError:
                            pass
                        read += 1
            count += read
            passes += 1
            # A small topic is read again until the figure rests on enough time.
            if read < expect or first is None or time.perf_counter() - first >= min_seconds:
                break
            await consumer.seek_to_beginning(*tps)
        seconds = time.perf_counter() - first if first is not None else 0.0
        return {
            "events": count,
            "passes": passes,
            "decoded": decoded,
            "partitions": len(tps),
            "seconds": round(seconds, 3),
            "events_per_s": round(count / seconds, 1) if seconds > 0 else None,
            "complete": count >= expect * passes,
        }
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("expect", type=int)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="read a small topic again until then")
    args = parser.parse_args()
    result = asyncio.run(measure(args.bootstrap, args.topic, args.expect, args.timeout, args.min_seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
