"""The collector in-process: its aiohttp app behind a test client, writing to a sink that records.

The recording sink stands in for Kafka: it keeps every record a request
would produce (topic, key, value), and can be told to fail (Kafka not
acknowledging) or to report itself down (/health).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from motwatch.collector.access import Cors, WriteKeys
from motwatch.collector.app import build_app
from motwatch.collector.metrics import CollectorMetrics
from motwatch.collector.sink import NotStored, Outgoing
from motwatch.collector.state import Collector
from motwatch.settings import Settings
from tests.adapters.examples import at

KEY = "test-write-key-1"
OTHER_KEY = "second-key-22"
NOW = at("2026-11-22T10:16:00Z")
PREFIX = "c."
TOUCHPOINTS = f"{PREFIX}touchpoints"
DEADLETTER = f"{PREFIX}deadletter"


class RecordingSink:
    """Keeps what would be produced; ``fail`` (a sentence) makes every write fail, ``up`` is /health."""

    def __init__(self) -> None:
        self.records: list[Outgoing] = []
        self.writes = 0
        self.fail: str | None = None
        self.up = True

    async def write(self, records: Sequence[Outgoing]) -> None:
        self.writes += 1
        if self.fail is not None:
            raise NotStored(self.fail)
        self.records.extend(records)

    async def healthy(self) -> bool:
        return self.up

    def on(self, topic: str) -> list[Outgoing]:
        return [r for r in self.records if r.topic == topic]

    def touchpoints(self) -> list[dict[str, Any]]:
        """Values produced to the touchpoints topic, each checked to be keyed by its journey."""
        events = []
        for record in self.on(TOUCHPOINTS):
            event = orjson.loads(record.value)
            assert record.key == (event.get("customer_id") or event["anonymous_id"]).encode()
            events.append(event)
        return events

    def dead_letters(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.on(DEADLETTER)]


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


def basic(user: str, password: str = "") -> dict[str, str]:
    """An Authorization header for HTTP basic auth."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@asynccontextmanager
async def collector_client(
    sink: RecordingSink,
    *,
    keys: Sequence[str] = (KEY, OTHER_KEY),
    open: bool = False,
    shop: bool = False,
    cors: Sequence[str] = (),
    clock: datetime = NOW,
    **settings: Any,
) -> AsyncIterator[TestClient]:
    """A test client of a collector writing to ``sink``; ``client.app_collector`` is its state."""
    collector = Collector(
        Settings(topic_prefix=PREFIX, **settings),
        sink,
        WriteKeys(keys, open=open),
        Cors(cors),
        CollectorMetrics(),
        clock=lambda: clock,
    )
    client = TestClient(TestServer(build_app(collector, shop=shop)))
    await client.start_server()
    client.app_collector = collector  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        await client.close()


def sample(client: TestClient, name: str, labels: dict[str, str]) -> float:
    """A metric's value in the collector's registry (0 when it has no such series)."""
    registry = client.app_collector.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value(name, labels) or 0.0
