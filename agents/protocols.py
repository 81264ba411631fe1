"""What the agents need of the app, as Protocols: ``Motwatch`` (``streams/app.py``) is one.

The agents reach the Faust app, its consumer and producer, the re-keyed
topic, the two tables and the records only through these, so the tests can
drive them with small classes of their own. Faust's value types (``TP``)
are used as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar, runtime_checkable

from faust.types import TP

from motwatch.settings import Settings
from motwatch.streams.metrics import Metrics
from motwatch.streams.writebehind import ChangelogTable

V_co = TypeVar("V_co", covariant=True)

Headers = Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None


@runtime_checkable
class AgentMessage(Protocol):
    """Where a record was read: its topic, partition and offset, and its timestamp (seconds)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> float | None: ...

    @property
    def tp(self) -> TP: ...


@runtime_checkable
class AgentEvent(Protocol):
    """A record as an agent's stream hands it out."""

    @property
    def message(self) -> AgentMessage: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Headers: ...


@runtime_checkable
class EventStream(Protocol):
    """The journey agent's stream: its records, taken in batches."""

    def take_events(self, max_: int, within: float) -> AsyncIterator[Sequence[AgentEvent]]: ...


@runtime_checkable
class AgentConsumer(Protocol):
    """The worker's consumer: the partitions assigned here, their ends and positions."""

    def assignment(self) -> Iterable[TP]: ...

    def highwater(self, tp: TP) -> int | None: ...

    def last_fetched(self, tp: TP) -> int | None: ...

    async def position(self, tp: TP) -> int | None: ...

    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]: ...

    def topic_partitions(self, topic: str) -> int | None: ...


@runtime_checkable
class AgentProducer(Protocol):
    """The worker's producer, as far as the agents wait on it."""

    async def flush(self) -> None: ...


@runtime_checkable
class RecordTopic(Protocol):
    """A topic the agents send records to (the re-keyed topic)."""

    async def send(
        self, *, key: bytes | None, value: bytes, partition: int, headers: list[tuple[str, bytes]]
    ) -> Any: ...


@runtime_checkable
class RebalanceSignal(Protocol):
    """``on_partitions_assigned`` and ``on_partitions_revoked``: handlers connect to them."""

    def connect(self, fun: Callable[..., Awaitable[None]]) -> Any: ...


@runtime_checkable
class Sleeper(Protocol):
    """What a repeated action asks of the app: whether to stop, and a sleep that ends when it does."""

    @property
    def should_stop(self) -> bool: ...

    async def sleep(self, n: float) -> None: ...


@runtime_checkable
class AgentRuntime(Sleeper, Protocol):
    """The Faust app as the agents use it (a ``faust.App`` is one)."""

    @property
    def producer(self) -> AgentProducer: ...

    @property
    def consumer(self) -> AgentConsumer: ...

    @property
    def on_partitions_assigned(self) -> RebalanceSignal: ...

    @property
    def on_partitions_revoked(self) -> RebalanceSignal: ...

    def agent(self, channel: Any, *, name: str) -> Callable[[Callable[[Any], Awaitable[None]]], object]: ...

    def timer(
        self, interval: float, on_leader: bool = False, *, name: str
    ) -> Callable[[Callable[[], Awaitable[None]]], object]: ...

    def task(self, fun: Callable[[], Awaitable[None]]) -> object: ...


@runtime_checkable
class AgentTable(ChangelogTable, Protocol[V_co]):
    """A changelog-backed table as the agents read it (a ``faust.Table`` is one)."""

    def get(self, key: str, /) -> V_co | None: ...

    def keys(self) -> Iterable[str]: ...


@runtime_checkable
class AgentApp(Protocol):
    """Everything the agents share: what they need of ``Motwatch``."""

    @property
    def settings(self) -> Settings: ...

    @property
    def app(self) -> AgentRuntime: ...

    @property
    def journey_inputs(self) -> object:
        """The channel the journey agent reads (a Faust topic), for ``app.agent``."""
        ...

    @property
    def by_journey(self) -> RecordTopic: ...

    @property
    def journeys(self) -> AgentTable[bytes]:
        """Journey states as their changelog bytes (``JourneyState.pack``), by journey key."""
        ...

    @property
    def clocks(self) -> AgentTable[bytes]:
        """Each journey partition's clock (``PartitionClock.to_json``), by partition number."""
        ...

    @property
    def metrics(self) -> Metrics: ...

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None: ...

    async def written(self, topic: str | None = None) -> None:
        """Return once every record sent so far (to ``topic``, if given) is on the broker (failed
        ones are sent again)."""
        ...

    def writes_failing(self) -> bool:
        """Whether a write failed and waits to be sent again."""
        ...

    def guard_commits(
        self, guard: Callable[[], AbstractAsyncContextManager[Callable[[], Awaitable[None]]]]
    ) -> None:
        """Every offset commit of the worker's consumer goes through ``guard()``: entered while
        the offsets are chosen; what it gives is awaited before they are committed."""
        ...

    async def send_batch(
        self,
        topic: str,
        partition: int,
        records: list[tuple[bytes, bytes | None]],
        on_written: Callable[[int], None],
    ) -> None:
        """``streams/writebehind.py``'s ``SendBatch``: a table's changed keys to its changelog."""
        ...
