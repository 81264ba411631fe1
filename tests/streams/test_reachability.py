"""Kafka's reachability as the worker sees it, without a broker: a fake probe, a fake clock.

``KafkaReachability`` turns probe results into the ``motwatch_kafka_*``
series and two log lines per outage; ``metadata_probe`` asks the brokers of a
(fake) client in turn. The real probe against a real cluster taken down and
brought back is tests/faults/test_broker_failures.py.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient, ConnectionGroup
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import BrokerMetadata
from faust.exceptions import NotReady

from motwatch.settings import Settings
from motwatch.streams import reachability
from motwatch.streams.app import create_app
from motwatch.streams.faust_internals import aiokafka_producer
from motwatch.streams.metrics import Metrics
from motwatch.streams.reachability import KafkaReachability, NoBrokerAnswered, NotAsked, metadata_probe

# 2026-12-07T01:02:03Z
WALL_START = 1796605323.0


class Clock:
    """A monotonic clock and a wall clock that move together, only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_START + (self.now - 1000.0)


class Probe:
    """Answers, or fails with ``error``, as the test says."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def value(metrics: Metrics, name: str) -> float:
    got = metrics.registry.get_sample_value(name)
    assert got is not None, name
    return got


def series(metrics: Metrics) -> dict[str, float]:
    names = (
        "motwatch_kafka_reachable",
        "motwatch_kafka_unreachable_seconds",
        "motwatch_kafka_outages_total",
        "motwatch_kafka_last_outage_seconds",
        "motwatch_kafka_last_outage_end_timestamp_seconds",
    )
    return {name.removeprefix("motwatch_kafka_"): value(metrics, name) for name in names}


@pytest.fixture
def watched(metrics: Metrics, probe: Probe, clock: Clock) -> KafkaReachability:
    return KafkaReachability(metrics, probe, monotonic=clock.monotonic, wall=clock.wall)


async def test_nothing_is_known_before_the_first_probe_then_an_answer_is_reachable(
    watched: KafkaReachability, metrics: Metrics
) -> None:
    before = series(metrics)
    assert math.isnan(before.pop("reachable"))
    assert before == {
        "unreachable_seconds": 0.0,
        "outages_total": 0.0,
        "last_outage_seconds": 0.0,
        "last_outage_end_timestamp_seconds": 0.0,
    }
    assert await watched.check() is True
    assert series(metrics)["reachable"] == 1.0


async def test_an_outage_is_counted_once_measured_while_it_lasts_and_kept_when_it_ends(
    watched: KafkaReachability, metrics: Metrics, probe: Probe, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="motwatch.kafka")
    assert await watched.check() is True
    clock.now += 1
    probe.error = NoBrokerAnswered("none of 3 brokers answered: NodeNotReadyError")
    assert await watched.check() is False  # sent at 01:02:04: one unanswered probe is no outage yet
    assert series(metrics)["reachable"] == 1.0 and series(metrics)["outages_total"] == 0.0
    clock.now += 1
    assert await watched.check() is False  # the second in a row: an outage since the first
    down = series(metrics)
    assert (down["reachable"], down["outages_total"], down["unreachable_seconds"]) == (0.0, 1.0, 1.0)
    for _ in range(29):  # a probe a second, none answered
        clock.now += 1
        assert await watched.check() is False
    clock.now += 0.5
    during = series(metrics)
    assert during["unreachable_seconds"] == pytest.approx(30.5)  # read when scraped, not when probed
    assert during["outages_total"] == 1.0 and during["last_outage_seconds"] == 0.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "Kafka unreachable since 2026-12-07T01:02:04Z (none of 3 brokers answered: NodeNotReadyError)"
    ]

    clock.now += 0.7
    probe.error = None
    assert await watched.check() is True
    after = series(metrics)
    assert after == {
        "reachable": 1.0,
        "unreachable_seconds": 0.0,
        "outages_total": 1.0,
        "last_outage_seconds": pytest.approx(31.2),
        "last_outage_end_timestamp_seconds": clock.wall(),
    }
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["Kafka reachable again after 31.2s"]

    clock.now += 100  # a second, shorter outage: counted, and the last one is now it
    probe.error = KafkaConnectionError()
    assert await watched.check() is False
    clock.now += 1
    assert await watched.check() is False
    clock.now += 3
    probe.error = None
    assert await watched.check() is True
    again = series(metrics)
    assert again["outages_total"] == 2.0 and again["last_outage_seconds"] == pytest.approx(4.0)
    assert [r.getMessage() for r in caplog.records][-2:] == [
        "Kafka unreachable since 2026-12-07T01:04:15Z (KafkaConnectionError)",
        "Kafka reachable again after 4.0s",
    ]


async def test_a_probe_that_does_not_answer_in_time_is_no_answer(metrics: Metrics) -> None:
    async def silent() -> None:
        await asyncio.Event().wait()

    watched = KafkaReachability(metrics, silent, timeout_s=0.01)
    assert await watched.check() is False
    assert await watched.check() is False
    assert series(metrics)["reachable"] == 0.0 and series(metrics)["outages_total"] == 1.0


async def test_a_probe_that_could_not_ask_changes_nothing(
    watched: KafkaReachability, metrics: Metrics, probe: Probe
) -> None:
    assert await watched.check() is True
    probe.error = NotAsked("not started")
    assert await watched.check() is None
    assert series(metrics)["reachable"] == 1.0 and series(metrics)["outages_total"] == 0.0


async def test_probes_lost_one_at_a_time_are_no_outage(
    watched: KafkaReachability, metrics: Metrics, probe: Probe, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A busy machine or a broker slow for a moment loses a probe now and then; answers between."""
    caplog.set_level(logging.INFO, logger="motwatch.kafka")
    for n in range(20):
        clock.now += 1
        probe.error = TimeoutError() if n % 2 else None
        await watched.check()
        assert series(metrics)["reachable"] == 1.0 and series(metrics)["unreachable_seconds"] == 0.0
    assert series(metrics)["outages_total"] == 0.0 and not caplog.records


# ---------------------------------------------------------------- the metadata probe


class FakeClient:
    """Brokers by node id; each answers, fails with an error, or never answers."""

    def __init__(self, brokers: dict[int, str]) -> None:
        self.brokers = brokers  # node id -> "ok", "refused" or "silent"
        self.asked: list[int] = []
        self.cluster = SimpleNamespace(
            brokers=lambda: {BrokerMetadata(n, "127.0.0.1", 9092 + n, None) for n in self.brokers}
        )

    async def send(self, node_id: int, request: object, *, group: ConnectionGroup) -> object:
        assert isinstance(request, MetadataRequest)
        assert group == ConnectionGroup.COORDINATION  # not behind the producer's requests
        self.asked.append(node_id)
        state = self.brokers[node_id]
        if state == "refused":
            raise NodeNotReadyError(f"node {node_id}")
        if state == "silent":
            await asyncio.Event().wait()
        return object()


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClient]:
    fake = FakeClient({1: "ok", 2: "ok", 3: "ok"})
    monkeypatch.setattr(reachability, "aiokafka_producer", lambda app: SimpleNamespace(client=fake))
    yield fake


async def test_the_probe_returns_at_the_first_answer_and_asks_that_broker_first_next_time(
    client: FakeClient,
) -> None:
    probe = metadata_probe(app=None, broker_timeout_s=0.05)  # type: ignore[arg-type]
    client.brokers[1] = "refused"
    client.brokers[2] = "silent"
    await probe()
    assert client.asked == [1, 2, 3]  # refused, no answer within the broker timeout, answered
    client.asked.clear()
    await probe()
    assert client.asked == [3]


async def test_the_probe_fails_when_no_broker_answers_naming_how(client: FakeClient) -> None:
    probe = metadata_probe(app=None, broker_timeout_s=0.05)  # type: ignore[arg-type]
    client.brokers.update({1: "refused", 2: "silent", 3: "refused"})
    with pytest.raises(
        NoBrokerAnswered, match=r"^none of 3 brokers answered: NodeNotReadyError, TimeoutError$"
    ):
        await probe()
    assert sorted(client.asked) == [1, 2, 3]
    client.brokers.clear()
    with pytest.raises(NoBrokerAnswered, match="no broker known"):
        await probe()


async def test_the_probe_does_not_ask_before_the_producer_has_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_started(app: object) -> None:
        raise NotReady("producer not started")

    monkeypatch.setattr(reachability, "aiokafka_producer", not_started)
    with pytest.raises(NotAsked):
        await metadata_probe(app=None)()  # type: ignore[arg-type]


async def test_the_producers_client_offers_what_the_probe_uses() -> None:
    """aiokafka's public ``AIOKafkaProducer.client``: known brokers by ``nodeId`` in
    ``cluster.brokers()``, and ``send(node_id, request, group=...)`` with a connection group the
    producer uses only inside transactions (so the probe never waits behind its produce requests)."""
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")
    client = producer.client
    assert isinstance(client, AIOKafkaClient)
    assert client.cluster.brokers() == set()  # filled once the producer has bootstrapped
    assert "nodeId" in BrokerMetadata._fields
    send = inspect.signature(AIOKafkaClient.send).parameters
    assert inspect.iscoroutinefunction(AIOKafkaClient.send)
    assert list(send)[:3] == ["self", "node_id", "request"]
    assert send["group"].kind is inspect.Parameter.KEYWORD_ONLY
    assert ConnectionGroup.COORDINATION != ConnectionGroup.DEFAULT
    with pytest.raises(NotReady):  # Faust's producer, not started
        aiokafka_producer(create_app(Settings()).app)
