"""Producers nobody here wrote: confluent-kafka's (librdkafka), the client other teams run.

librdkafka's default partitioner puts a keyed record on CRC32 of its key
(``consistent_random``: confluent-kafka in Python, Go and .NET and
node-rdkafka all use it), not on Kafka's murmur2 as ``motwatch produce``
does; a record without a key goes to one partition a batch at a time
(sticky). Each producer sends its lines in one burst, as fast as it can.

Records librdkafka is given before it knows the topic wait in a queue of
their own and can reach their partition after records given later: a
partition out of the file's order (by an hour of event time, seen), whose
events come late however the worker reads them. So the producer first
learns the topic, as a producer that has been running does.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence

from confluent_kafka import KafkaError, Producer

from motwatch.core.validation import journey_key_of
from tests.workers import wait_until


def journey_key(line: bytes) -> bytes | None:
    """The journey key a producer keys the line by; None for a message that is not a touchpoint."""
    key = journey_key_of(line)
    return None if key is None else key.encode()


def crc32_partition(key: str, partitions: int) -> int:
    """The partition librdkafka's default partitioner gives a key."""
    return zlib.crc32(key.encode()) % partitions


def wait_known(producer: Producer, topic: str, timeout_s: float = 30.0) -> None:
    """Return once the broker librdkafka asks knows ``topic`` with leaders for its partitions.

    A topic just created is known first to the controller and the broker that created it; on
    a cluster the others learn of it a moment later, and a producer asking one of them is told
    it does not exist (yet).
    """

    def known() -> bool:
        metadata = producer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        return metadata is not None and metadata.error is None and bool(metadata.partitions)

    wait_until(known, timeout_s, f"the producer's broker to know {topic}")


def produce_with_librdkafka(
    bootstrap: str,
    topic: str,
    lines: Iterable[bytes],
    *,
    keyed: bool,
    key_of: Callable[[int, bytes], bytes | None] | None = None,
    headers: Sequence[list[tuple[str, bytes]]] | None = None,
) -> int:
    """Send every line with confluent-kafka's producer and its default partitioner; wait for the acks.

    Keyed by journey (``keyed``), or by ``key_of(index, line)`` when given; the i-th record with
    ``headers[i]`` when given.
    """
    # Idempotent, as Kafka's own clients are by default: a retried request cannot land after a later one,
    # so each partition keeps the order it was given the records in (a loaded machine retries).
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True}
    )
    wait_known(producer, topic)
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(error)

    sent = 0
    for i, line in enumerate(lines):
        key = key_of(i, line) if key_of is not None else journey_key(line) if keyed else None
        while True:
            try:
                extra = {} if headers is None else {"headers": headers[i]}
                producer.produce(topic, value=line, key=key, on_delivery=delivered, **extra)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
        producer.poll(0)
        sent += 1
    assert producer.flush(60) == 0, "confluent-kafka could not deliver every record"
    assert not failures, failures[:3]
    return sent
