"""One partition of a table's store, and the journey engine's timer index kept beside it.

A write-behind view (``streams/writebehind.py``) reads and writes one
partition of a table. Faust's RocksDB store takes the partition of a read or
a write from the record being handled, which is not always the view's (the
flush after a batch of several partitions, a revocation, a timer), so
:func:`partition_table` hands the view that partition's database itself
(:class:`RocksPartition`). Other stores (in memory) are used as they are.

A worker restarted on a RocksDB store finds its journeys on disk and reads
only the changelog's tail. What it has left to rebuild is the journey
engine's timer index (when each journey next needs it), which reading every
stored state would take about a minute for a million journeys.
:class:`KeptDueTimes` keeps each journey's due time and open-timeout count
in a database beside the partition's, with a checksum of the stored state
they were computed for, and the store's persisted offset at which they all
held. :func:`restore_index` trusts them when Faust's recovery found the store
at that offset (it read nothing new into it): then only the journeys of the
last flush are read. Otherwise (the changelog had records from elsewhere, the
worker died between two writes) it compares each stored state with its
checksum, and reads the ones that differ. The kept due times are a cache,
never the truth: lost, stale, or made by other settings or another version
of the core, they are computed again from the states.
"""

from __future__ import annotations

import logging
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from hashlib import blake2b
from pathlib import Path
from typing import Any

from faust.serializers import codecs
from faust.types import TP
from faust.types.codecs import CodecArg

import motwatch.core
from motwatch.core.engine import JourneyEngine
from motwatch.core.partitioner import partition_for_key
from motwatch.settings import Settings
from motwatch.streams.faust_internals import recovered_partitions, rocksdb_partition
from motwatch.streams.writebehind import ChangelogTable, ChangelogTopic, PackedWriteBehind, TableStore

log = logging.getLogger("motwatch.tables")

# Settings that never change when a journey is due: how the worker connects, and where it runs.
_NOT_TIMING = {
    "broker",
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "sasl_password_file",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "replication_factor",
    "web_port",
    "web_bind",
    "explain_from_network",
    "store",
    "data_dir",
    "deadletter_retention_days",
    "auto_create_topics",
    "metadata_refresh_s",
    "shutdown_grace_s",
    "instance_id",
    "session_timeout_s",
}

# A kept entry: the stored state's CRC-32 and length, the open-timeout count, then the due time as text.
_CHECK = struct.Struct("<II")
_COUNT = struct.Struct("<i")
_DUE_AT = _CHECK.size + _COUNT.size
# The journal's keys, what computed the due times and the offset at which they held: after every
# journey key (UTF-8 never has these bytes; a stored key that is not UTF-8 is set aside, never kept).
_SPECIAL = b"\xff\xfc"
_JOURNAL = b"\xff\xfc"
_JOURNAL_END = b"\xff\xfd"
_FINGERPRINT_KEY = b"\xff\xfefingerprint"
_HELD_AT_KEY = b"\xff\xfeheld-at"
# Kept entries are written in batches of at most this many (and whenever a changelog write is acknowledged).
_BATCH = 2000
# The write buffer of a partition's databases: what a start after a kill may replay of their logs.
_WRITE_BUFFER = 8 * 1024 * 1024


def _check(value: bytes) -> bytes:
    return _CHECK.pack(zlib.crc32(value), len(value))


@cache
def _core_digest() -> bytes:
    """A digest of the core's code: when a journey is due is the core's to say."""
    root = Path(motwatch.core.__file__).parent
    digest = blake2b(digest_size=16)
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.digest()


def fingerprint(settings: Settings) -> bytes:
    """What the due times of journeys depend on besides their states: the core's code and the settings."""
    digest = blake2b(_core_digest(), digest_size=16)
    digest.update(settings.model_dump_json(exclude=_NOT_TIMING).encode())
    return digest.digest()


def _open(path: Path) -> Any:
    from rocksdict import Options, Rdict

    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(_WRITE_BUFFER)
    options.set_max_write_buffer_number(2)
    return Rdict(str(path), options=options)


class KeptDueTimes:
    """What one partition's store keeps beside it, in a RocksDB database of its own.

    * Each journey's due time and open-timeout count, by stored key, with a
      checksum of the stored state they were computed for. Written in
      batches, with the store's persisted offset at which every entry held
      (:meth:`hold`): each write the changelog acknowledges writes the batch.
    * The keys of the last flush (the journal). A flush writes each changed
      journey to the store, then to its changelog; killed before the
      changelog has all of them, the worker restarts on a store ahead of its
      changelog, and a worker elsewhere would one day recover the journeys
      without the changes. Each key is noted here before its store write; a
      restore writes the noted journeys to the changelog again, as stored.
      The journal is cleared when the next flush begins: a flush begins
      once the one before is acknowledged (the journey agent waits for it).
    """

    def __init__(self, path: Path, fingerprint: bytes) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.db = _open(path)
        if self.db.get(_FINGERPRINT_KEY) != fingerprint:
            # Kept by other settings or another core: no due time here is to be trusted.
            from rocksdict import Options, Rdict

            noted = self.noted()
            self.db.close()
            Rdict.destroy(str(path), Options(raw_mode=True))
            self.db = _open(path)
            self.db.put(_FINGERPRINT_KEY, fingerprint)
            for key in noted:
                self.db.put(_JOURNAL + key, b"")
        # Whether the changelog acknowledged writes since the last key was noted: the next one
        # noted begins a flush.
        self.acknowledged = False
        self._new_batch()

    def _new_batch(self) -> None:
        from rocksdict import WriteBatch

        self.batch = WriteBatch(raw_mode=True)
        self.batched = 0

    def keep(self, key: bytes, value: bytes, due: int, count: int) -> None:
        """``key``'s state, stored as ``value``, is due at ``due`` with ``count`` open timeouts."""
        self.batch.put(key, _check(value) + _COUNT.pack(count) + b"%d" % due)
        self.batched += 1
        if self.batched >= _BATCH:
            self.write()

    def forget(self, key: bytes) -> None:
        self.batch.delete(key)
        self.batched += 1
        if self.batched >= _BATCH:
            self.write()

    def write(self) -> None:
        """Write the batched entries; until the next :meth:`hold`, none is known to hold."""
        if self.batched:
            self.batch.delete(_HELD_AT_KEY)
            self.db.write(self.batch)
            self._new_batch()

    def hold(self, offset: int | None) -> None:
        """Write the batched entries: every entry holds now, at the store's persisted ``offset``."""
        self.batch.put(_HELD_AT_KEY, b"%d" % (-1 if offset is None else offset))
        self.db.write(self.batch)
        self._new_batch()

    def hold_at(self, offset: int | None) -> bool:
        """Whether every entry held when the store's persisted offset was ``offset`` last."""
        held = self.db.get(_HELD_AT_KEY)
        return held is not None and int(held) == (-1 if offset is None else offset)

    def note(self, key: bytes) -> None:
        """``key`` is about to be written to the store, then to its changelog."""
        if self.acknowledged:  # a new flush: the last one is on the changelog
            self.acknowledged = False
            self.db.delete_range(_JOURNAL, _JOURNAL_END)
        self.db.put(_JOURNAL + key, b"")

    def written(self, offset: int) -> None:
        """The changelog acknowledged a write: the store's persisted offset is ``offset`` now."""
        self.acknowledged = True
        self.hold(offset)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every kept entry as written, in key order (the order of the partition's own database)."""
        for key, entry in self.db.items():
            if key >= _SPECIAL:
                return
            yield key, entry

    def noted(self) -> list[bytes]:
        """The keys of the last flush."""
        out = []
        for key in self.db.keys(from_key=_JOURNAL):
            if not key.startswith(_JOURNAL):
                break
            out.append(key[len(_JOURNAL) :])
        return out


# One per database and process: RocksDB opens a database once.
_KEPT: dict[Path, KeptDueTimes] = {}


def kept_due_times(path: Path, fingerprint: bytes) -> KeptDueTimes:
    kept = _KEPT.get(path)
    if kept is not None and kept.fingerprint != fingerprint:
        kept.db.close()
        kept = None
    if kept is None:
        kept = _KEPT[path] = KeptDueTimes(path, fingerprint)
    return kept


class RocksPartition:
    """One partition of a table in Faust's RocksDB store, read and written in that partition's own
    database, whatever record is being handled (a ``TableStore``).

    Keys go through the table's key codec; values are stored as they are
    (bytes: the table's value codec is raw). With ``kept``, every key
    written is noted in its journal first, and keeps the due time and count
    that ``due_of`` and ``count_of`` give for it then (none: forgotten).
    """

    def __init__(
        self,
        store: Any,
        database: Callable[[], Any],
        tp: TP,
        key_codec: CodecArg,
        kept: KeptDueTimes | None,
    ) -> None:
        self.store = store
        # Faust's own database for the partition, as Faust has it now (it opens it again if it had let it go).
        self.database = database
        self.tp = tp
        codec = codecs.get_codec(key_codec) if isinstance(key_codec, str) else key_codec
        self.dumps, self.loads = codec.dumps, codec.loads
        self.offset_key: bytes = store.offset_key
        self.kept = kept
        self.due_of: Callable[[str], int | None] | None = None
        self.count_of: Callable[[str], int | None] = lambda key: None

    def get(self, key: str, default: Any = None) -> Any:
        value = self.database().get(self.dumps(key))
        return default if value is None else value

    def pop(self, key: str, default: Any = None) -> Any:
        db, raw = self.database(), self.dumps(key)
        value = db.get(raw)
        if self.kept is not None:
            self.kept.note(raw)  # its deletion goes to the changelog too
            self.kept.forget(raw)
        if value is None:
            return default
        db.delete(raw)
        return value

    def keys(self) -> Iterator[str]:
        offset_key, loads = self.offset_key, self.loads
        for raw in self.database().keys():  # noqa: SIM118 (a database, not a dict)
            if raw != offset_key:
                yield loads(raw)

    def __setitem__(self, key: str, value: bytes) -> None:
        raw = self.dumps(key)
        kept = self.kept
        if kept is not None:
            kept.note(raw)
        self.database().put(raw, value)
        due_of = self.due_of
        if kept is not None and due_of is not None:
            due = due_of(key)
            if due is None:
                kept.forget(raw)
            else:
                kept.keep(raw, value, due, self.count_of(key) or 0)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.database().get(self.dumps(key)) is not None

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        """The changelog is written up to ``offset``: Faust's recovery reads on from there."""
        self.store.set_persisted_offset(tp, offset)
        if self.kept is not None:
            self.kept.written(offset)

    def persisted_offset(self) -> int | None:
        return self.store.persisted_offset(self.tp)

    def restorable(self) -> tuple[list[str], dict[str, int], dict[str, int]]:
        """The partition's keys whose state must be read to index it; the due time kept for each
        other key, and their open-timeout counts (if any).

        The kept due times are taken as they are when they held at the
        store's persisted offset as Faust's recovery left it (it read no
        record into the store but the one it last wrote); else each is
        taken only for the state it was kept for (its checksum). Either way
        the keys of the last flush are read.
        """
        unread: list[str] = []
        known: dict[str, int] = {}
        counts: dict[str, int] = {}
        kept = self.kept
        if kept is None:
            return list(self.keys()), known, counts
        noted = set(kept.noted())
        loads, count_of = self.loads, _COUNT.unpack_from
        db = self.database()
        if kept.hold_at(self.persisted_offset()):
            for raw, entry in kept.db.items():
                if raw >= _SPECIAL:
                    break
                if raw in noted:
                    continue
                key = loads(raw)
                known[key] = int(entry[_DUE_AT:])
                (count,) = count_of(entry, _CHECK.size)
                if count:
                    counts[key] = count
            unread = [loads(raw) for raw in noted if db.get(raw) is not None]
            return unread, known, counts
        end = (None, b"")
        entries = kept.items()
        kept_key, entry = next(entries, end)
        offset_key, check = self.offset_key, _check
        for raw, value in db.items():
            if raw == offset_key:
                continue
            while kept_key is not None and kept_key < raw:
                kept_key, entry = next(entries, end)
            key = loads(raw)
            if kept_key == raw and raw not in noted and entry[: _CHECK.size] == check(value):
                known[key] = int(entry[_DUE_AT:])
                (count,) = count_of(entry, _CHECK.size)
                if count:
                    counts[key] = count
            else:
                unread.append(key)
        return unread, known, counts

    def keep_now(self, keys: Iterable[str]) -> None:
        """Keep, for each of ``keys`` as stored now, what ``due_of`` and ``count_of`` say of it;
        then every kept entry holds at the store's persisted offset."""
        kept, due_of, count_of = self.kept, self.due_of, self.count_of
        if kept is None or due_of is None:
            return
        db, dumps = self.database(), self.dumps
        for key in keys:
            raw = dumps(key)
            value, due = db.get(raw), due_of(key)
            if value is not None and due is not None:
                kept.keep(raw, value, due, count_of(key) or 0)
        kept.hold(self.persisted_offset())

    def settle(self) -> None:
        """Bound what the next start replays of the databases' write-ahead logs (after a kill, all
        that is not yet in their files): smaller write buffers from now on (Faust opens them with
        64 MiB), and what they hold now (the records a recovery wrote) flushed to the files."""
        db = self.database()
        db.set_options({"write_buffer_size": str(_WRITE_BUFFER)})
        db.flush()
        if self.kept is not None:
            self.kept.db.flush()

    def noted(self) -> list[str]:
        """The keys of the last flush, which the changelog may not have had time to take."""
        return [] if self.kept is None else [self.loads(raw) for raw in self.kept.noted()]


class PartitionTable:
    """A table as the write-behind view of one of its partitions uses it (a ``ChangelogTable``)."""

    def __init__(self, table: ChangelogTable, data: TableStore) -> None:
        self.table = table
        self.data = data

    @property
    def changelog_topic(self) -> ChangelogTopic:
        return self.table.changelog_topic

    @property
    def key_serializer(self) -> CodecArg:
        return self.table.key_serializer

    @property
    def value_serializer(self) -> CodecArg:
        return self.table.value_serializer


def partition_table(
    table: ChangelogTable, partition: int, keep_due_times: Settings | None = None
) -> ChangelogTable:
    """``table`` as the write-behind view of ``partition`` should use it.

    On Faust's RocksDB store (values raw), a table whose store is that
    partition's database; with ``keep_due_times`` (the engine's settings),
    it keeps the journeys' due times beside it too. Any other store: the
    table as it is.
    """
    store = table.data
    database = rocksdb_partition(store, partition)
    if database is None or table.value_serializer != "raw":
        return table
    kept = None
    if keep_due_times is not None:
        path = Path(store.partition_path(partition))  # type: ignore[attr-defined]
        kept = kept_due_times(path.with_name(f"{path.stem}.due-times"), fingerprint(keep_due_times))
    tp = TP(table.changelog_topic.get_topic_name(), partition)
    return PartitionTable(table, RocksPartition(store, database, tp, table.key_serializer, kept))


def partition_keys(store: TableStore, partition: int, partitions: int) -> list[str]:
    """The keys of ``store`` that belong to ``partition``: a key's partition as Faust's recovery
    read it, else as Kafka's default partitioner gives it."""
    recovered = recovered_partitions(store)
    keys = list(store.keys())
    if recovered is None:
        return [k for k in keys if partition_for_key(k, partitions) == partition]
    read_from = recovered.get
    return [
        k for k in keys if (read_from(k) if k in recovered else partition_for_key(k, partitions)) == partition
    ]


# Stands for a deleted journey for a moment, so that the view can delete it again.
_PLACEHOLDER = object()


def restore_index(engine: JourneyEngine, view: PackedWriteBehind, partition: int, partitions: int) -> None:
    """Rebuild ``engine``'s timer index from the journeys of ``partition`` (``view``'s store).

    With due times kept beside the store, only the states they were not kept
    for are read, and from then on the store keeps what ``engine`` says of
    each journey it writes; the journeys of the last flush before the
    restore are written to the changelog again (as stored, or deleted) with
    the next flush. Else every state of the partition is read.
    """
    started = time.perf_counter()
    data = view.data
    again = 0
    if isinstance(data, RocksPartition) and data.kept is not None:
        unread, known, counts = data.restorable()
        view.counts.update(counts)
        engine.restore(unread, known)
        data.due_of, data.count_of = engine.due_time, view.counts.get
        data.keep_now(unread)  # the next restore reads none of them again (unless changed)
        data.settle()
        total, read = len(unread) + len(known), len(unread)
        for key in data.noted():
            if key in view.pending:
                continue  # unreadable: set aside, and deleted with the next flush
            state = view.get(key)
            if state is not None:
                view[key] = state
            else:  # deleted: its deletion is written again (the view deletes only a key it has)
                view[key] = _PLACEHOLDER
                del view[key]
            again += 1
    else:
        keys = partition_keys(data, partition, partitions)
        engine.restore(keys)
        total = read = len(keys)
    log.info(
        "partition %s: timer index of %s journeys rebuilt in %.2fs (%s states read)%s",
        partition,
        total,
        time.perf_counter() - started,
        read,
        f"; {again} of the last flush written to the changelog again" if again else "",
    )
