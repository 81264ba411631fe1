"""A partition of a RocksDB table read and written in its own database; the timer index kept beside it.

Real RocksDB databases in a temporary data dir, under a Faust app that is
never started (no broker): a partition's journeys go to that partition's
database whatever record is being handled; an engine over the same store
restores the very timer index the last one had without reading a state,
reads only states changed behind its back, and writes the last flush's
journeys to the changelog again; due times kept under other settings are
not trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from motwatch.core.dispatch import Inbound, JourneyDispatch
from motwatch.core.engine import JourneyEngine
from motwatch.core.journey import JourneyState, UnreadableStateError
from motwatch.settings import Settings
from motwatch.simulation import SimulationConfig, simulate
from motwatch.streams.app import create_app
from motwatch.streams.faust_internals import rocksdb_partition
from motwatch.streams.partitionstore import RocksPartition, partition_table, restore_index
from motwatch.streams.writebehind import PackedWriteBehind

Sent = list[tuple[bytes, bytes | None]]


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        **{"store": "rocksdb://", "data_dir": str(tmp_path / "data"), "partitions": 1, **overrides}
    )


class Changelog:
    """Where the views' changelog records go; acknowledged at once unless ``hold``."""

    def __init__(self) -> None:
        self.records: Sent = []
        self.hold = False

    async def send_batch(
        self, topic: str, partition: int, records: Sent, on_written: Callable[[int], None]
    ) -> None:
        self.records.extend(records)
        if not self.hold:
            on_written(len(self.records) - 1)


def _view(table: faust.Table, changelog: Changelog, settings: Settings) -> PackedWriteBehind:
    return PackedWriteBehind(
        partition_table(table, 0, keep_due_times=settings),
        0,
        changelog.send_batch,
        pack=JourneyState.pack,
        unpack=JourneyState.unpack,
        count=JourneyState.open_timeouts,
        hot=lambda state: bool(state.pending),
        unreadable=UnreadableStateError,
    )


def _engine(view: PackedWriteBehind, settings: Settings) -> JourneyEngine:
    engine = JourneyEngine(settings, store=view)
    restore_index(engine, view, 0, 1)
    return engine


def _feed(engine: JourneyEngine, settings: Settings, lines: list[bytes]) -> None:
    dispatch = JourneyDispatch(settings, lambda _: engine, partitions=1, direct=True)
    for n, line in enumerate(lines):
        for _ in dispatch.loop_back(dispatch.touchpoint(Inbound(line, 0, topic="feed", offset=n))):
            pass


def _index(engine: JourneyEngine, view: PackedWriteBehind) -> dict[str, int]:
    return {key: due for key in view if (due := engine.due_time(key)) is not None}


async def test_a_partition_is_read_and_written_in_its_own_database(tmp_path: Path) -> None:
    mw = create_app(_settings(tmp_path, partitions=4))
    store = mw.journeys.data
    two = partition_table(mw.journeys, 2).data
    assert isinstance(two, RocksPartition)
    two["journée-1"] = b"state"  # no record is being handled: Faust's own store would refuse
    assert two.get("journée-1") == b"state" and "journée-1" in two
    assert list(two.keys()) == ["journée-1"]
    database = rocksdb_partition(store, 2)
    assert database is not None and database().get("journée-1".encode()) == b"state"
    assert partition_table(mw.journeys, 1).data.get("journée-1", None) is None
    changelog = TP(mw.journeys.changelog_topic.get_topic_name(), 2)
    two.set_persisted_offset(changelog, 41)
    assert store.persisted_offset(changelog) == 41  # where Faust's recovery reads on from
    assert list(two.keys()) == ["journée-1"]  # the offset is not a key
    assert two.pop("journée-1") == b"state" and "journée-1" not in two
    assert two.pop("journée-1", "gone") == "gone"


async def test_another_store_is_used_as_it_is(tmp_path: Path) -> None:
    mw = create_app(Settings(data_dir=str(tmp_path)))
    assert partition_table(mw.journeys, 0, keep_due_times=mw.settings) is mw.journeys


async def test_a_restore_finds_the_index_the_last_engine_had_reading_only_the_last_flush(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    mw = create_app(settings)
    changelog = Changelog()
    view = _view(mw.journeys, changelog, settings)
    engine = _engine(view, settings)
    lines = simulate(SimulationConfig(journeys=60, seed=4)).lines
    _feed(engine, settings, lines[: len(lines) // 3])
    await view.flush()
    written = len(changelog.records)
    _feed(engine, settings, lines[len(lines) // 3 : len(lines) // 2])  # timeouts still open
    await view.flush()
    last = {key.decode() for key, value in changelog.records[written:] if value is not None}
    index = _index(engine, view)
    assert len(index) > 30 and view.total() > 0  # journeys (and aliases) with open timeouts
    assert 0 < len(last) < len(index)

    again = _view(mw.journeys, changelog, settings)
    unread, known, counts = again.data.restorable()  # type: ignore[attr-defined]
    assert set(unread) == last and known == {k: due for k, due in index.items() if k not in last} and counts
    restored = _engine(again, settings)
    assert _index(restored, again) == index
    assert again.total() == view.total()  # the open-timeout gauge, reading only the last flush

    # The changelog had a record from elsewhere (a worker that had the partition meanwhile):
    # Faust's recovery stored it and moved the persisted offset on. That state is read, and
    # every other journey is indexed as it was, checked against its stored state.
    key = next(k for k, due in index.items() if due < 2**62 and k not in last)
    state = again.get(key)
    state.last_seen_ms += 1
    database = rocksdb_partition(mw.journeys.data, 0)
    assert database is not None
    database().put(key.encode(), state.pack())
    mw.journeys.data.set_persisted_offset(TP(mw.journeys.changelog_topic.get_topic_name(), 0), written + 1000)
    third = _view(mw.journeys, changelog, settings)
    unread, known, _ = third.data.restorable()  # type: ignore[attr-defined]
    assert set(unread) == last | {key} and set(known) == set(index) - last - {key}
    fresh = JourneyEngine(settings, store=third)
    fresh.restore([key])
    assert _engine(third, settings).due_time(key) == fresh.due_time(key)
    # Indexed again, the due times hold at the store's offset: the next restore reads the last flush only.
    assert set(_view(mw.journeys, changelog, settings).data.restorable()[0]) == last  # type: ignore[attr-defined]


async def test_due_times_kept_under_other_settings_are_not_trusted(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    mw = create_app(settings)
    changelog = Changelog()
    view = _view(mw.journeys, changelog, settings)
    engine = _engine(view, settings)
    _feed(engine, settings, simulate(SimulationConfig(journeys=20, seed=2)).lines)
    await view.flush()
    other = settings.model_copy(update={"journey_expiry_days": 3})
    unread, known, _ = _view(mw.journeys, changelog, other).data.restorable()  # type: ignore[attr-defined]
    assert known == {} and sorted(unread) == sorted(view)


async def test_the_last_flush_is_written_to_the_changelog_again_after_a_restore(tmp_path: Path) -> None:
    """Killed before the changelog acknowledged a flush, a worker restarts on a store ahead of its
    changelog: the journeys of that flush, as stored (or their deletion), go to it again."""
    settings = _settings(tmp_path)
    mw = create_app(settings)
    changelog = Changelog()
    view = _view(mw.journeys, changelog, settings)
    engine = _engine(view, settings)
    lines = simulate(SimulationConfig(journeys=30, seed=9)).lines
    _feed(engine, settings, lines[:-40])
    await view.flush()
    acknowledged = len(changelog.records)
    _feed(engine, settings, lines[-40:])
    gone = next(iter(view))
    del view[gone]
    changelog.hold = True  # the last flush: stored, never acknowledged
    await view.flush()
    unacknowledged = dict(changelog.records[acknowledged:])
    assert gone.encode() in unacknowledged and len(unacknowledged) < acknowledged

    resent = Changelog()
    again = _view(mw.journeys, resent, settings)
    _engine(again, settings)
    await again.flush()
    assert dict(resent.records) == unacknowledged  # as stored: what the last flush wrote
    assert unacknowledged[gone.encode()] is None  # its deletion, again
