"""Each private Faust, mode and aiokafka name motwatch relies on, against the installed libraries.

``streams/faust_internals.py`` reads them, and lists the methods motwatch's
subclasses override; each test here checks one on real objects (an app made
on the running loop, never started: no broker), so an upgrade that renames,
removes or changes one fails here, by name. The last test keeps them in
that one module.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_type_hints

import faust
import pytest
from aiokafka import AIOKafkaProducer
from faust.exceptions import NotReady
from faust.serializers import codecs
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from motwatch.settings import Settings
from motwatch.streams.app import create_app
from motwatch.streams.faust_internals import (
    OVERRIDDEN,
    Override,
    acknowledged_since_commit,
    aiokafka_producer,
    codec_type,
    commit_offsets,
    committable_offsets,
    committed_offsets,
    consumer_thread,
    has_position,
    last_fetched,
    leave_group_on_stop,
    recovered_partitions,
    restart_idempotence,
    rocksdb_partition,
    shutdown_signalled,
    take_over_commit_count,
)

REPO = Path(__file__).resolve().parents[2]


async def test_aiokafka_producer_is_the_one_faust_started() -> None:
    """``Producer._ensure_producer()``: a plain method returning the aiokafka producer, which
    refuses before the producer has started."""
    app = create_app(Settings()).app
    producer = app.producer
    assert isinstance(producer, aiokafka_driver.Producer)
    ensure = type(producer)._ensure_producer
    assert inspect.isfunction(ensure) and not inspect.iscoroutinefunction(ensure)
    assert list(inspect.signature(ensure).parameters) == ["self"]
    assert get_type_hints(ensure)["return"] is AIOKafkaProducer
    with pytest.raises(NotReady):
        aiokafka_producer(app)


async def test_consumer_thread_is_the_thread_of_this_consumer() -> None:
    """``Consumer._thread``: set by ``__init__`` to the aiokafka consumer thread, which seeks
    partitions to their beginning with a coroutine."""
    consumer = create_app(Settings()).app.consumer
    thread = consumer_thread(consumer)
    assert isinstance(thread, aiokafka_driver.AIOKafkaConsumerThread)
    assert thread.consumer is consumer
    seek = thread.seek_to_beginning
    assert inspect.iscoroutinefunction(seek)
    assert [(p.name, p.kind) for p in inspect.signature(seek).parameters.values()] == [
        ("partitions", inspect.Parameter.VAR_POSITIONAL)
    ]


async def test_committed_offsets_are_where_faust_found_its_partitions_committed() -> None:
    """``Consumer._committed_offset``: a mapping Faust fills with what ``seek_to_committed``
    returns when it seeks (and commits); a partition it knows nothing of reads as None."""

    class Committed(aiokafka_driver.Consumer):
        async def seek_to_committed(self) -> Mapping[TP, int]:  # what the broker would say
            return {TP("touchpoints", 0): 7, TP("touchpoints", 1): 3}

    app = faust.App("internals", broker="kafka://localhost:1")
    app.transport.Consumer = Committed
    consumer = app.consumer
    assert isinstance(consumer, Committed)
    committed = committed_offsets(consumer)
    assert committed.get(TP("touchpoints", 0)) is None
    await consumer.perform_seek()
    assert committed_offsets(consumer) is committed
    assert {tp: committed.get(tp) for tp in (TP("touchpoints", p) for p in range(3))} == {
        TP("touchpoints", 0): 7,
        TP("touchpoints", 1): 3,
        TP("touchpoints", 2): None,
    }


async def test_committable_offsets_are_faust_s_choice_up_to_the_first_gap() -> None:
    """``Consumer._filter_tps_with_pending_acks`` and ``_filter_committable_offsets``: the offset
    after the acknowledged run that follows the committed one, per partition, the run taken from
    the acknowledgements (``_acked``); nothing past a gap."""
    consumer = create_app(Settings()).app.consumer
    consumer.app.topics.acks_enabled_for = lambda topic: True  # as once the app has started
    whole, gapped, other = TP("touchpoints", 0), TP("touchpoints", 1), TP("moments", 0)
    committed_offsets(consumer)[whole] = 9  # type: ignore[index]
    committed_offsets(consumer)[gapped] = 9  # type: ignore[index]
    for tp, offset in [(whole, 10), (whole, 11), (gapped, 12), (other, 0)]:
        consumer.ack(_message(tp, offset))
    assert committable_offsets(consumer, {"touchpoints"}) == {whole: 12}
    assert committable_offsets(consumer, {"touchpoints"}) == {}  # taken: the next commit's are new ones
    assert committable_offsets(consumer) == {other: 1}


async def test_faust_s_fetch_loop_commits_on_its_count_of_acknowledged_records() -> None:
    """``Consumer._commit_every`` (``broker_commit_every``) is what the fetch loop compares with
    ``_n_acked``, which ``ack`` raises by one per record counted; taken over, the loop has none."""
    loop_source = inspect.getsource(aiokafka_driver.Consumer._drain_messages)
    assert "commit_every = self._commit_every" in loop_source
    assert "if commit_every is not None:" in loop_source and "self._n_acked >= commit_every" in loop_source
    app = create_app(Settings(commit_every_events=1000)).app
    plain = aiokafka_driver.Consumer(
        app.transport,
        callback=lambda message: None,
        on_partitions_revoked=lambda revoked: None,
        on_partitions_assigned=lambda assigned: None,
    )
    assert plain._commit_every == 1000
    assert take_over_commit_count(plain) == 1000 and plain._commit_every is None
    plain.app.topics.acks_enabled_for = lambda topic: True
    for offset in range(3):
        assert plain.ack(_message(TP("touchpoints", 0), offset))
    assert acknowledged_since_commit(plain) == 3
    assert acknowledged_since_commit(plain, reset=True) == 3 and acknowledged_since_commit(plain) == 0


async def test_commit_offsets_commits_the_assigned_partitions_as_faust_does() -> None:
    """``Consumer._handle_attached`` and ``_commit_offsets``: records attached to the offsets are
    published first; offsets of partitions no longer assigned are dropped; committed ones are
    remembered as committed."""
    consumer = create_app(Settings()).app.consumer
    held, gone = TP("touchpoints", 0), TP("touchpoints", 1)
    consumer.assignment = lambda: {held}
    calls: list[object] = []

    async def commit(offsets: Mapping[TP, int]) -> bool:
        calls.append(dict(offsets))
        return True

    async def no_attachments(tp: TP, offset: int) -> list[object]:
        calls.append(("attached", tp, offset))
        return []

    consumer._commit = commit
    consumer.app._attachments.publish_for_tp_offset = no_attachments
    consumer.app.producer.flush = _nothing
    assert await commit_offsets(consumer, {held: 5, gone: 7}, True)
    assert calls == [("attached", held, 5), ("attached", gone, 7), {held: 5}]
    assert committed_offsets(consumer).get(held) == 5
    assert not await commit_offsets(consumer, {}, True)


async def _nothing() -> None:
    pass


def _message(tp: TP, offset: int) -> Any:
    from faust.types.tuples import Message

    return Message(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None, tp=tp)


async def _stopped(worker: faust.Worker) -> None:
    """Wait until the stop the worker scheduled on its signal is done."""
    await asyncio.wait_for(worker.wait_until_stopped(), 10)


async def test_shutdown_signalled_once_the_first_stop_signal_came() -> None:
    """``Worker._signal_stop_time``: unset on a new worker, set by the first ``_schedule_shutdown``."""
    worker = faust.Worker(create_app(Settings()).app, quiet=True, loop=asyncio.get_running_loop())
    assert not shutdown_signalled(worker)
    worker._schedule_shutdown(signal.SIGTERM)
    assert shutdown_signalled(worker)
    await _stopped(worker)
    assert shutdown_signalled(worker)


async def test_a_stop_signal_reaches_schedule_shutdown() -> None:
    """``Worker._schedule_shutdown`` is what the worker's own SIGTERM handler calls (BoundedWorker
    overrides it to put a deadline on the shutdown)."""
    signalled: list[tuple[object, bool]] = []

    class Recording(faust.Worker):  # overrides it as BoundedWorker does, without the deadline
        def _schedule_shutdown(self, signal: Any) -> None:
            signalled.append((signal, shutdown_signalled(self)))
            super()._schedule_shutdown(signal)

    loop = asyncio.get_running_loop()
    worker = Recording(create_app(Settings()).app, quiet=True, loop=loop)
    before = signal.getsignal(signal.SIGTERM)
    worker.install_signal_handlers()
    try:
        # Never sent to a process that does not catch it: it would end the test run.
        assert signal.getsignal(signal.SIGTERM) is not before, "the worker handles SIGTERM itself"
        os.kill(os.getpid(), signal.SIGTERM)
        await _stopped(worker)
    finally:
        for handled in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
            loop.remove_signal_handler(handled)
    assert signalled == [(signal.SIGTERM, False)]


def test_faust_codecs_dumps_and_loads_go_through_the_private_methods() -> None:
    """``Codec._dumps``/``_loads``: what Faust's ``dumps``/``loads`` call, so the "text" codec
    the tables' keys use is motwatch's TextCodec."""
    assert codecs.dumps("text", "journée-1") == "journée-1".encode()
    assert codecs.loads("text", "journée-1".encode()) == "journée-1"


async def test_tables_take_their_codecs_from_the_codec_types() -> None:
    """``typ._options.serializer``: where Faust looks for a table's codecs (and the store decodes
    through ``typ.from_data``)."""
    mw = create_app(Settings())
    journeys, clocks = mw.journeys, mw.clocks
    assert (journeys.key_serializer, journeys.value_serializer) == ("text", "raw")
    assert (clocks.key_serializer, clocks.value_serializer) == ("text", "raw")
    serializers = mw.app.serializers
    assert serializers.loads_key(journeys.key_type, b"journey-1", serializer="text") == "journey-1"
    # Raw: a stored clock that is not JSON reaches motwatch (which sets it aside), not Faust's recovery.
    assert serializers.loads_value(clocks.value_type, b"\xff{not json", serializer="raw") == b"\xff{not json"
    assert faust.Table(mw.app, name="plain", key_type=codec_type("text")).key_serializer == "text"


async def test_a_consumer_leaves_its_group_on_stop_once_it_forgets_its_instance_id() -> None:
    """``GroupCoordinator._group_instance_id``: aiokafka sends no LeaveGroup while it is set; the
    consumer thread's ``_consumer`` is None until the consumer starts."""
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    leave = inspect.getsource(GroupCoordinator._maybe_leave_group)
    assert "self._group_instance_id is None" in leave and "LeaveGroupRequest" in leave
    app = create_app(Settings(), instance_id="worker-1").app
    assert app.conf.consumer_group_instance_id == "worker-1"
    assert consumer_thread(app.consumer)._consumer is None
    assert leave_group_on_stop(app.consumer) is False  # not started: nothing to leave


async def test_an_idempotent_producer_restarts_its_sequence_with_a_new_id() -> None:
    """``TransactionManager._pid_and_epoch``, ``_pid_waiter``, ``_sequence_numbers``: unset, the
    sender asks for a new id (``has_pid``/``wait_for_pid``) before it numbers the next batch."""
    from aiokafka.structs import TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", enable_idempotence=True)
    manager = producer._txn_manager
    assert restart_idempotence(producer) is False  # no id yet: nothing to restart
    manager.set_pid_and_epoch(7, 0)
    tp = TopicPartition("moments", 0)
    manager.increment_sequence_number(tp, 5)
    assert restart_idempotence(producer) is True
    assert not manager.has_pid() and manager.sequence_number(tp) == 0
    waiting = asyncio.ensure_future(manager.wait_for_pid())
    await asyncio.sleep(0)
    assert not waiting.done()
    manager.set_pid_and_epoch(8, 0)  # what the sender does with the broker's answer
    await waiting
    assert manager.producer_id == 8
    assert restart_idempotence(AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")) is False


async def test_a_partition_without_a_position_is_told_apart_before_faust_reads_it() -> None:
    """``TopicPartitionState.position`` asserts there is one (what crashed Faust's livelock check
    in a rebalance); ``has_valid_position`` says so without; the consumer's ``_fetcher`` holds the
    ``_subscriptions``."""
    from aiokafka.consumer.fetcher import Fetcher
    from aiokafka.consumer.subscription_state import TopicPartitionState

    assert "assert self._position is not None" in inspect.getsource(TopicPartitionState.position.fget)
    assert "_subscriptions" in inspect.getsource(Fetcher.__init__)
    state = TopicPartitionState(None)
    assert state.has_valid_position is False
    app = create_app(Settings()).app
    assert has_position(app.consumer, TP("motwatch.touchpoints", 0)) is False  # not started


async def test_the_time_of_the_last_fetch_is_set_with_the_high_watermark_by_each_response() -> None:
    """``last_fetched`` reads ``TopicPartitionState.timestamp``, which the fetcher sets beside the
    high watermark from every answered fetch of the partition (the input topic's news relies on a
    new value meaning a new fetch)."""
    from aiokafka.consumer.fetcher import Fetcher
    from aiokafka.consumer.subscription_state import TopicPartitionState

    answer = inspect.getsource(Fetcher._proc_fetch_request)
    assert "tp_state.highwater = highwater" in answer and "tp_state.timestamp = now_ms" in answer
    assert TopicPartitionState(None).timestamp is None
    app = create_app(Settings()).app
    assert last_fetched(app.consumer, TP("motwatch.touchpoints", 0)) is None  # not started
    assert app.consumer.last_fetched(TP("motwatch.touchpoints", 0)) is None


async def test_the_producer_is_idempotent_and_waits_for_every_in_sync_replica() -> None:
    app = create_app(Settings()).app
    extra = app.producer._settings_extra()
    assert extra["acks"] == "all" and extra["enable_idempotence"] is True


async def test_rocksdb_partition_is_the_database_faust_keeps_the_partition_in(tmp_path: Path) -> None:
    """``Store._db_for_partition``: opens the partition's database at ``partition_path`` once, raw
    bytes in and out, where Faust keeps the partition's persisted offset (``offset_key``) too."""
    store = create_app(Settings(store="rocksdb://", data_dir=str(tmp_path))).journeys.data
    database = rocksdb_partition(store, 3)
    assert database is not None and database() is database()
    assert Path(database().path()) == store.partition_path(3)
    store.set_persisted_offset(TP("journeys-changelog", 3), 12)
    assert database().get(store.offset_key) == b"12"
    assert rocksdb_partition(create_app(Settings(data_dir=str(tmp_path))).journeys.data, 3) is None


async def test_recovered_partitions_are_where_the_memory_store_read_each_key() -> None:
    """``Store._key_partition``: the in-memory store's recovery notes each key's changelog partition."""
    store = create_app(Settings()).journeys.data

    def record(key: bytes, partition: int) -> SimpleNamespace:
        message = SimpleNamespace(key=key, value=b"state", partition=partition)
        return SimpleNamespace(key=key, value=b"state", message=message)

    store.apply_changelog_batch([record(b"a", 2), record(b"b", 0)], bytes.decode, lambda v: v)
    assert dict(recovered_partitions(store)) == {"a": 2, "b": 0}
    assert recovered_partitions(object()) is None


def _parameters(method: Any) -> list[tuple[str, Any]]:
    """A method's parameters, self aside: (name, kind)."""
    return [(p.name, p.kind) for p in list(inspect.signature(method).parameters.values())[1:]]


@pytest.mark.parametrize("override", OVERRIDDEN, ids=lambda o: f"{o.base.__name__}.{o.name}")
def test_each_overridden_method_is_there_as_motwatch_overrides_it(override: Override) -> None:
    """The base class has it, of the kind and with the parameters listed; the subclass overrides
    it with the same."""
    base = getattr(override.base, override.name)
    assert inspect.iscoroutinefunction(base) == override.coroutine
    assert [name for name, _ in _parameters(base)] == list(override.parameters)
    module, _, name = override.by.partition(":")
    subclass = getattr(importlib.import_module(module), name)
    assert issubclass(subclass, override.base)
    ours = vars(subclass)[override.name]
    assert inspect.iscoroutinefunction(ours) == override.coroutine
    assert _parameters(ours) == _parameters(base)


# Underscore names of Python's own that the Faust shell may use.
PYTHON_OWN = {"_exit", "_replace", "_asdict", "_fields"}
FOREIGN = {"faust", "mode", "aiokafka"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_other_module_reaches_a_private_name_of_faust_mode_or_aiokafka() -> None:
    """In streams/ and agents/, an underscore attribute is motwatch's own, or read in
    streams/faust_internals.py (prometheus_client's: streams/prometheus_internals.py); a private
    method a subclass overrides is in ``OVERRIDDEN``."""
    shell = sorted((REPO / "streams").glob("*.py")) + sorted((REPO / "agents").glob("*.py"))
    shell = [path for path in shell if path.name not in ("faust_internals.py", "prometheus_internals.py")]
    trees = {path: ast.parse(path.read_text(), str(path)) for path in shell}
    own: set[str] = set()  # underscore names motwatch defines: functions, classes, attributes
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                own.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Attribute):
                            own.add(leaf.attr)
                        elif isinstance(leaf, ast.Name):
                            own.add(leaf.id)
    reached = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) in {"getattr", "setattr", "hasattr"}
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
            ):
                name = str(node.args[1].value)
            if name and _private(name) and name not in own | PYTHON_OWN:
                reached.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    assert not reached, "read these through streams/faust_internals.py: " + ", ".join(reached)
    # A private method of a Faust, mode or aiokafka class that a motwatch class overrides.
    listed = {(o.by, o.name) for o in OVERRIDDEN}
    unlisted = []
    for path in shell:
        module = importlib.import_module(f"motwatch.{path.parent.name}.{path.stem}")
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            by = f"{module.__name__}:{cls.__name__}"
            foreign = [b for b in cls.__mro__[1:] if b.__module__.split(".")[0] in FOREIGN]
            for name, method in vars(cls).items():
                if not (inspect.isfunction(method) and _private(name)) or (by, name) in listed:
                    continue
                if any(hasattr(base, name) for base in foreign):
                    unlisted.append(f"{by}.{name}")
    assert not unlisted, "list these in faust_internals.OVERRIDDEN: " + ", ".join(unlisted)
