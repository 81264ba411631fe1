"""The partition Kafka's default partitioner gives a key: murmur2 of its bytes, modulo the count.

What Kafka's Java producer (and aiokafka, and ``motwatch produce``) do with a
keyed record, written out here so that the core knows where a journey lives
without a Kafka client. Other clients' defaults differ (librdkafka's is
CRC32): a touchpoint keyed by one of them lands elsewhere and is re-keyed.
"""

from __future__ import annotations

from functools import lru_cache

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data``, as an unsigned 32-bit integer."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length - whole
    if rest:
        if rest == 3:
            h ^= data[whole + 2] << 16
        if rest >= 2:
            h ^= data[whole + 1] << 8
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@lru_cache(maxsize=1 << 16)
def partition_for_key(key: str, partitions: int) -> int:
    """The partition of ``partitions`` that Kafka's default partitioner gives the key (UTF-8;
    bytes that were not, escaped by ``surrogateescape``, as they were). The journeys of the
    moment are asked again and again (every touchpoint): the last 65,536 keys are remembered."""
    return (murmur2(key.encode("utf-8", "surrogateescape")) & 0x7FFFFFFF) % partitions
