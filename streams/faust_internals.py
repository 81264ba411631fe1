"""Every private Faust, mode and aiokafka attribute motwatch relies on, in one place.

Faust's public API does not reach everything the worker needs: the aiokafka
producer under Faust's (for whole produce batches), the consumer thread, the
offsets Faust last committed, the worker's signal handling, the way Faust
picks a table's codecs, the database of one partition of a RocksDB table, the
partition the in-memory store recovered each key from. Each is read here,
by one small typed function; the methods motwatch's subclasses override
that are private, or hooks of Faust's internals rather than extension
points, are listed in ``OVERRIDDEN``. ``tests/streams/test_faust_internals.py``
checks each against the installed faust-streaming, mode and aiokafka, so an
upgrade that moves one fails there, by name, and nowhere else in motwatch
touches their underscore names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any, cast

import faust
import mode
from aiokafka import AIOKafkaProducer
from aiokafka.producer.transaction_manager import NO_PRODUCER_EPOCH, NO_PRODUCER_ID, PidAndEpoch
from aiokafka.structs import TopicPartition
from aiokafka.util import create_future
from faust.assignor import PartitionAssignor
from faust.exceptions import ProducerSendError
from faust.serializers import codecs
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP


def aiokafka_producer(app: faust.App) -> AIOKafkaProducer:
    """The aiokafka producer Faust's started producer sends with (``Producer._ensure_producer()``).

    Raises ``faust.exceptions.NotReady`` before the producer has started.
    """
    return cast(aiokafka_driver.Producer, app.producer)._ensure_producer()


def restart_idempotence(producer: AIOKafkaProducer) -> bool:
    """Give the idempotent producer a new producer id, its sequence numbers starting afresh.

    aiokafka numbers a batch when it sends it, and never takes the number back:
    after a write that failed for good (refused, or timed out in flight) the
    broker refuses every later batch of that partition as out of order
    (OutOfOrderSequenceNumber), for ever. Its ``TransactionManager`` keeps the
    id (``_pid_and_epoch``), the future the sender waits on for one
    (``_pid_waiter``) and the numbers (``_sequence_numbers``); with the id
    unset, the sender asks the broker for a new one before its next batch.
    Returns False when the producer is not idempotent or has no id yet.
    """
    manager = producer._txn_manager
    if manager is None or manager.transactional_id is not None or not manager.has_pid():
        return False
    manager._pid_and_epoch = PidAndEpoch(NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
    manager._pid_waiter = create_future()
    manager._sequence_numbers.clear()
    return True


def consumer_thread(consumer: object) -> aiokafka_driver.AIOKafkaConsumerThread:
    """The thread Faust's aiokafka consumer runs aiokafka's consumer in (``Consumer._thread``)."""
    return cast(aiokafka_driver.AIOKafkaConsumerThread, cast(aiokafka_driver.Consumer, consumer)._thread)


def aiokafka_consumer(consumer: object) -> Any:
    """aiokafka's consumer under Faust's (``AIOKafkaConsumerThread._ensure_consumer``: raises if it
    has not started)."""
    return consumer_thread(consumer)._ensure_consumer()


def group_coordinator(consumer: object) -> Any:
    """aiokafka's ``GroupCoordinator`` of the consumer (``AIOKafkaConsumer._coordinator``), which
    ``streams/committed.py`` asks for the group's committed offsets; the consumer must be started."""
    return aiokafka_consumer(consumer)._coordinator


async def ask_coordinator(coordinator: Any, request: Any) -> Any:
    """Send ``request`` to the group coordinator aiokafka's ``GroupCoordinator`` knows
    (``_send_req``: raises if it knows none, and forgets one a send to fails)."""
    return await coordinator._send_req(request)


def leave_group_on_stop(consumer: object) -> bool:
    """Make the consumer leave its group when it stops, static member though it is.

    aiokafka sends no LeaveGroup for a member with a ``group_instance_id``
    (``GroupCoordinator._group_instance_id``): a static member's partitions
    wait for it for the session timeout. Forgetting the id before the stop
    makes it leave by its member id, which the broker accepts. Returns False
    when the consumer has not started (there is no group to leave).
    """
    client = cast(aiokafka_driver.AIOKafkaConsumerThread, consumer_thread(consumer))._consumer
    coordinator = getattr(client, "_coordinator", None) if client is not None else None
    if coordinator is None:
        return False
    coordinator._group_instance_id = None
    return True


def _partition_state(consumer: object, tp: TP) -> Any:
    """aiokafka's ``TopicPartitionState`` of ``tp``, reached through the consumer's
    ``_fetcher._subscriptions``; None for a partition not assigned, or a consumer not started."""
    client = consumer_thread(consumer)._consumer
    if client is None:
        return None
    subscription = client._fetcher._subscriptions.subscription
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:
        return None
    return assignment.state_value(TopicPartition(tp.topic, tp.partition))


def has_position(consumer: object, tp: TP) -> bool:
    """Whether aiokafka knows where it reads ``tp`` from (``TopicPartitionState.has_valid_position``);
    False for a partition not assigned, or a consumer not started."""
    state = _partition_state(consumer, tp)
    return state is not None and state.has_valid_position


def last_fetched(consumer: object, tp: TP) -> int | None:
    """When the fetch response that told ``tp``'s high watermark came (``TopicPartitionState.timestamp``,
    wall-clock ms, set by every fetch response for the partition); None before the first one, for
    a partition not assigned, or a consumer not started."""
    state = _partition_state(consumer, tp)
    return None if state is None else state.timestamp


def committed_offsets(consumer: object) -> Mapping[TP, int | None]:
    """The offset Faust last committed, or found committed, for each partition
    (``Consumer._committed_offset``; a partition it knows none for reads as None)."""
    return cast(aiokafka_driver.Consumer, consumer)._committed_offset


def take_over_commit_count(consumer: object) -> int | None:
    """Turn off the commit Faust's fetch loop runs itself every ``broker_commit_every``
    acknowledged records (``Consumer._commit_every``; the loop awaits that commit, so no record
    is delivered until it is done); the count it used, for the consumer to act on instead."""
    faust_consumer = cast(aiokafka_driver.Consumer, consumer)
    every = faust_consumer._commit_every
    faust_consumer._commit_every = None
    return every


def acknowledged_since_commit(consumer: object, reset: bool = False) -> int:
    """Records acknowledged since Faust last counted from zero (``Consumer._n_acked``, which its
    ``ack`` raises by one per record counted); ``reset``: count from zero again."""
    faust_consumer = cast(aiokafka_driver.Consumer, consumer)
    count = faust_consumer._n_acked
    if reset:
        faust_consumer._n_acked = 0
    return count


def committable_offsets(consumer: object, topics: Any = None) -> dict[TP, int]:
    """The offsets Faust's ``force_commit`` would commit now, taken from what was acknowledged
    (``Consumer._filter_tps_with_pending_acks`` and ``_filter_committable_offsets``, which
    consume the acknowledgements up to each partition's first gap)."""
    faust_consumer = cast(aiokafka_driver.Consumer, consumer)
    tps = list(faust_consumer._filter_tps_with_pending_acks(topics))
    return faust_consumer._filter_committable_offsets(tps)


async def commit_offsets(consumer: object, offsets: Mapping[TP, int], start_new_transaction: bool) -> bool:
    """Commit ``offsets`` as Faust's ``force_commit`` commits what it chose: the records attached
    to them first (``Consumer._handle_attached``; a failed send crashes the consumer), then the
    offsets of partitions still assigned (``Consumer._commit_offsets``)."""
    if not offsets:
        return False
    faust_consumer = cast(aiokafka_driver.Consumer, consumer)
    try:
        await faust_consumer._handle_attached(offsets)
    except ProducerSendError as exc:
        await faust_consumer.crash(exc)
        return False
    return await faust_consumer._commit_offsets(offsets, start_new_transaction=start_new_transaction)


def shutdown_signalled(worker: mode.Worker) -> bool:
    """Whether the worker has had its stop signal: mode's ``Worker._signal_stop_time`` is set by
    the first ``_schedule_shutdown``."""
    return bool(worker._signal_stop_time)


def codec_type(codec: str) -> type:
    """A stand-in type that tells Faust which codec a table's keys or values use.

    Faust takes a table's codecs from its key and value types: it reads
    ``typ._options.serializer`` (a Faust model's options), then decodes with
    ``typ.from_data``; it builds the changelog topic and the store from them
    when the table is declared.
    """
    return type(
        f"StoredAs_{codec}",
        (),
        {"_options": SimpleNamespace(serializer=codec), "from_data": staticmethod(lambda data, **_: data)},
    )


def rocksdb_partition(store: object, partition: int) -> Callable[[], Any] | None:
    """How to get the database (a ``rocksdict.Rdict``, raw bytes in and out) Faust's RocksDB store
    keeps one table partition in, as Faust has it at the time (``Store._db_for_partition``: opened
    on first use, and again after a revocation let it go); None when ``store`` is not Faust's
    RocksDB store."""
    from faust.stores import rocksdb as faust_rocksdb

    if not isinstance(store, faust_rocksdb.Store):
        return None
    return partial(store._db_for_partition, partition)


def recovered_partitions(store: object) -> Mapping[Any, int] | None:
    """The changelog partition Faust's in-memory store read each key from in its recovery
    (``Store._key_partition``; keys written since are not in it); None for another store."""
    from faust.stores import memory as faust_memory

    if not isinstance(store, faust_memory.Store):
        return None
    return store._key_partition


@dataclass(frozen=True)
class Override:
    """A method of a Faust or mode class that a motwatch subclass overrides, calling it with super().

    ``parameters``: the method's parameters as ``base`` declares them, self
    aside (the override takes the same); ``coroutine``: whether it is a
    coroutine function; ``by``: the overriding class, as ``module:Class``.
    """

    base: type
    name: str
    coroutine: bool
    parameters: tuple[str, ...]
    by: str


_PROMPT_CONSUMER = "motwatch.streams.consumer:PromptConsumer"
_REJOINING_ASSIGNOR = "motwatch.streams.assignor:RejoiningAssignor"

OVERRIDDEN: tuple[Override, ...] = (
    # An idempotent producer that waits for every in-sync replica, outside transactions too.
    Override(
        aiokafka_driver.Producer, "_settings_extra", False, (), "motwatch.streams.app:IdempotentProducer"
    ),
    # The deadline on shutdown: what mode's worker calls on SIGTERM and SIGINT.
    Override(faust.Worker, "_schedule_shutdown", False, ("signal",), "motwatch.streams.worker:BoundedWorker"),
    # Table keys as text: what Faust's codec dumps and loads call.
    Override(codecs.Codec, "_dumps", False, ("s",), "motwatch.streams.app:TextCodec"),
    Override(codecs.Codec, "_loads", False, ("s",), "motwatch.streams.app:TextCodec"),
    # Deliveries without tasks, seeks that lose no record: public names, but hooks of Faust's
    # fetch loop and recovery rather than extension points.
    Override(aiokafka_driver.Consumer, "perform_seek", True, (), _PROMPT_CONSUMER),
    # What a fetch brings back and Faust drops, from a changelog: fetched again.
    Override(aiokafka_driver.Consumer, "_getmany", True, ("active_partitions", "timeout"), _PROMPT_CONSUMER),
    # Faust's livelock check, which crashed on a partition without a position.
    Override(aiokafka_driver.Consumer, "verify_event_path", False, ("now", "tp"), _PROMPT_CONSUMER),
    Override(aiokafka_driver.Consumer, "seek_to_committed", True, (), _PROMPT_CONSUMER),
    Override(aiokafka_driver.Consumer, "wait_first", True, ("coros", "timeout"), _PROMPT_CONSUMER),
    # Every commit inside the agents' guard: the state it covers is written first.
    Override(
        aiokafka_driver.Consumer, "force_commit", True, ("topics", "start_new_transaction"), _PROMPT_CONSUMER
    ),
    # Acknowledgements of records fetched in an earlier generation of the group.
    Override(aiokafka_driver.Consumer, "ack", False, ("message",), _PROMPT_CONSUMER),
    # Faust's count of acknowledged records taken over (its fetch loop would await the commit).
    Override(aiokafka_driver.Consumer, "__post_init__", False, (), _PROMPT_CONSUMER),
    # A static member's assignment, taken back under another web address.
    Override(PartitionAssignor, "on_assignment", False, ("assignment",), _REJOINING_ASSIGNOR),
)
