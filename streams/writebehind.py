"""A write-behind view of one partition of a changelog-backed table.

The journey engine assigns a journey's state after every change; through the
table itself each assignment is a changelog record of the whole state. This
view keeps the changes of a batch pending (reads see them) and writes each
changed key to the table's store and changelog once, when it is flushed,
which the agent does before the offsets it covers can be committed: in two
steps when the agent should not wait, ``stage`` (into the store, as records)
and ``write`` (the records to the changelog). Between flushes, ``spill``
packs the pending values as the store keeps them, still unsent: the
changes of many batches wait for one flush without being held as objects.

:class:`PackedWriteBehind` goes further for journey states: between batches
the store keeps each state as its changelog bytes (a sixth of the memory of
the objects), and a read unpacks it. Only journeys a batch touches are
objects, and only until the batch is flushed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from faust.serializers import codecs
from faust.types import TP
from faust.types.codecs import CodecArg

log = logging.getLogger("motwatch.tables")


@dataclass(frozen=True)
class Unreadable:
    """A stored value that could not be read: its key, its bytes as stored, and why."""

    key: str
    raw: bytes
    reason: str


_DELETED = object()


@dataclass(frozen=True)
class Staged:
    """Changelog records of one table partition, taken from a view and not yet sent."""

    topic: str
    partition: int
    records: list[tuple[bytes, bytes | None]]


# (topic, partition, [(key, value)], on_written(last offset)): ``Motwatch.send_batch``.
SendBatch = Callable[[str, int, list[tuple[bytes, bytes | None]], Callable[[int], None]], Awaitable[None]]


@runtime_checkable
class TableStore(Protocol):
    """A table's store as a write-behind view uses it: the values by key, and how far the
    changelog is written (a RocksDB store recovers from there)."""

    def get(self, key: str, default: Any, /) -> Any: ...

    def pop(self, key: str, default: Any, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...

    def __setitem__(self, key: str, value: Any, /) -> None: ...

    def __contains__(self, key: object, /) -> bool: ...

    def set_persisted_offset(self, tp: TP, offset: int) -> None: ...


@runtime_checkable
class ChangelogTopic(Protocol):
    def get_topic_name(self) -> str: ...


@runtime_checkable
class ChangelogTable(Protocol):
    """A changelog-backed table as a write-behind view uses it (a ``faust.Table`` is one)."""

    @property
    def data(self) -> TableStore: ...

    @property
    def changelog_topic(self) -> ChangelogTopic: ...

    @property
    def key_serializer(self) -> CodecArg: ...

    @property
    def value_serializer(self) -> CodecArg: ...


class WriteBehind(MutableMapping[str, Any]):
    """Pending writes of one table partition over the table's store."""

    def __init__(self, table: ChangelogTable, partition: int, send_batch: SendBatch) -> None:
        self.table = table
        self.partition = partition
        self.send_batch = send_batch
        self.data = table.data
        self.pending: dict[str, Any] = {}
        # Values packed as the store keeps them (spill) and not yet staged for the changelog:
        # the store itself gets them only when they are (a store on disk never runs ahead of it).
        self.unsent: dict[str, Any] = {}
        self.unsent_bytes = 0

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _DELETED)
        if value is _DELETED:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        value = self.pending.get(key, None)
        if value is None:
            return self._stored(key, default)
        return default if value is _DELETED else value

    def _stored(self, key: str, default: Any) -> Any:
        value = self.unsent.get(key, _DELETED)
        return self.data.get(key, default) if value is _DELETED else value

    def _packed(self, key: str, value: Any) -> Any:
        """What the store keeps for ``value``."""
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.pending[key] = _DELETED

    def __contains__(self, key: object) -> bool:
        value = self.pending.get(key, None)  # type: ignore[call-overload]
        if value is None:
            return key in self.unsent or key in self.data
        return value is not _DELETED

    def __iter__(self) -> Iterator[str]:
        pending, unsent = self.pending, self.unsent
        for key in list(self.data.keys()):
            if key not in pending and key not in unsent:
                yield key
        for key in list(unsent):
            if key not in pending:
                yield key
        for key, value in list(pending.items()):
            if value is not _DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def spill(self) -> int:
        """Pack every pending value as the store keeps it, to wait unsent for :meth:`stage` (a
        deletion stays pending); the bytes of what waits unsent now.

        What a batch changed is then held packed rather than as objects, and
        still written once, at the next stage, however often it changes.
        """
        unsent, deleted = self.unsent, {}
        size = self.unsent_bytes
        for key, value in self.pending.items():
            if value is _DELETED:
                deleted[key] = value
                continue
            size -= _size(unsent.get(key))
            packed = unsent[key] = self._packed(key, value)
            size += _size(packed)
        self.pending, self.unsent_bytes = deleted, size
        return size

    def stage(self) -> Staged | None:
        """Move every pending and unsent key into the store and return its changelog records,
        which :meth:`write` sends; None if none waits. Reads see the staged values at once."""
        if not self.pending and not self.unsent:
            return None
        pending, self.pending = self.pending, {}
        unsent, self.unsent, self.unsent_bytes = self.unsent, {}, 0
        table = self.table
        topic = table.changelog_topic.get_topic_name()
        key_codec, value_codec = table.key_serializer, table.value_serializer
        records: list[tuple[bytes, bytes | None]] = []
        for key, packed in unsent.items():
            if key not in pending:
                self.data[key] = packed
                records.append((codecs.dumps(key_codec, key), codecs.dumps(value_codec, packed)))
        for key, value in pending.items():
            if value is _DELETED:
                self.data.pop(key, None)
                self._forgotten(key)
                body = None
            else:
                stored = self.data[key] = self._packed(key, value)
                body = codecs.dumps(value_codec, stored)
            records.append((codecs.dumps(key_codec, key), body))
        return Staged(topic, self.partition, records)

    async def write(self, staged: Staged) -> None:
        """Hand staged records to the producer; once written, the store knows how far its
        changelog is (a RocksDB store recovers from there)."""
        data = self.data
        tp = TP(staged.topic, staged.partition)

        def written(offset: int) -> None:
            data.set_persisted_offset(tp, offset)

        await self.send_batch(staged.topic, staged.partition, staged.records, written)

    async def flush(self) -> int:
        """Write every pending key to the store and its changelog partition; return how many."""
        staged = self.stage()
        if staged is None:
            return 0
        await self.write(staged)
        return len(staged.records)

    def _forgotten(self, key: str) -> None:
        """``key`` was deleted from the store."""


def _size(packed: Any) -> int:
    """Bytes a packed value holds (0 for a value kept as it is)."""
    return len(packed) if isinstance(packed, bytes | bytearray | memoryview) else 0


class PackedWriteBehind(WriteBehind):
    """A write-behind view whose store keeps each value as bytes (the table's codec is raw).

    ``pack``/``unpack`` turn a value into its changelog bytes and back.
    Values for which ``hot`` is true (journeys with events waiting for the
    watermark: they are touched again within the allowed lateness) are also
    kept as objects beside the store, so the busiest journeys are not
    unpacked over and over; the others are unpacked afresh on every read.
    Whoever changes a value assigns it again (the journey engine always
    does), which makes it pending until the flush. ``count`` is kept per key
    for the values read or written, so a gauge can sum it without unpacking
    every value (``total``).

    A stored value that ``unpack`` refuses with ``unreadable`` reads as
    absent (its journey starts afresh): it is kept in ``quarantined`` for
    whoever flushes the view to set aside first, and deleted from the store
    and, at the flush, from the changelog, so it is met only once.
    """

    def __init__(
        self,
        table: ChangelogTable,
        partition: int,
        send_batch: SendBatch,
        pack: Callable[[Any], bytes],
        unpack: Callable[[bytes], Any],
        count: Callable[[Any], int],
        hot: Callable[[Any], bool],
        unreadable: type[Exception] = ValueError,
    ) -> None:
        super().__init__(table, partition, send_batch)
        self.pack, self.unpack, self.count, self.is_hot = pack, unpack, count, hot
        self.unreadable = unreadable
        self.quarantined: list[Unreadable] = []
        self.counts: dict[str, int] = {}
        self.hot: dict[str, Any] = {}

    def _stored(self, key: str, default: Any) -> Any:
        value = self.hot.get(key, None)
        if value is not None:
            return value
        raw = self.unsent.get(key, None)
        if raw is None:
            raw = self.data.get(key, None)
        if raw is None:
            return default
        try:
            key.encode()  # a key that was not UTF-8 (its bytes escaped): its record is unreadable too
            value = self.unpack(raw)
        except (self.unreadable, UnicodeEncodeError) as exc:
            self.quarantined.append(Unreadable(key, bytes(raw), str(exc) or type(exc).__name__))
            self.pending[key] = _DELETED
            return default
        self._counted(key, value)
        return value

    def _packed(self, key: str, value: Any) -> Any:
        self._counted(key, value)
        if self.is_hot(value):
            self.hot[key] = value
        else:
            self.hot.pop(key, None)
        return self.pack(value)

    def _counted(self, key: str, value: Any) -> None:
        n = self.count(value)
        if n:
            self.counts[key] = n
        else:
            self.counts.pop(key, None)

    def _forgotten(self, key: str) -> None:
        self.counts.pop(key, None)
        self.hot.pop(key, None)

    def total(self) -> int:
        """The sum of ``count`` over the values read or written through this view."""
        return sum(self.counts.values())
