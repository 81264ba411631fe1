"""A write-behind view of one partition of a changelog-backed table.

The journey engine assigns a journey's state after every change; through the
table itself each assignment is a changelog record of the whole state. This
view keeps the changes of a batch pending (reads see them) and writes each
changed key to the table's store and changelog once, when the batch is
flushed, which the agent does before the batch's offsets can be committed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

from faust.serializers import codecs
from faust.types import TP

log = logging.getLogger("motwatch.tables")

_DELETED = object()


class WriteBehind(MutableMapping[str, Any]):
    """Pending writes of one table partition over the table's store."""

    def __init__(self, table: Any, partition: int) -> None:
        self.table = table
        self.partition = partition
        self.data = table.data
        self.pending: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self.pending.get(key, None)
        if value is None:
            return self.data[key]
        if value is _DELETED:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        value = self.pending.get(key, None)
        if value is None:
            return self.data.get(key, default)
        return default if value is _DELETED else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.pending[key] = _DELETED

    def __contains__(self, key: object) -> bool:
        value = self.pending.get(key, None)  # type: ignore[call-overload]
        if value is None:
            return key in self.data
        return value is not _DELETED

    def __iter__(self) -> Iterator[str]:
        pending = self.pending
        for key in list(self.data.keys()):
            if key not in pending:
                yield key
        for key, value in list(pending.items()):
            if value is not _DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    async def flush(self) -> int:
        """Write every pending key to the store and its changelog partition; return how many."""
        if not self.pending:
            return 0
        pending, self.pending = self.pending, {}
        table = self.table
        producer = table.app.producer
        topic = table.changelog_topic.get_topic_name()
        tp = TP(topic, self.partition)
        key_codec, value_codec = table.key_serializer, table.value_serializer
        for key, value in pending.items():
            if value is _DELETED:
                self.data.pop(key, None)
                body = None
            else:
                self.data[key] = value
                body = codecs.dumps(value_codec, value)
            fut = await producer.send(topic, codecs.dumps(key_codec, key), body, self.partition, None, None)
            fut.add_done_callback(lambda f: _persisted(self.data, tp, f))
        return len(pending)


def _persisted(store: Any, tp: TP, fut: Any) -> None:
    """Tell the store how far its changelog is written (RocksDB recovers from there)."""
    if fut.cancelled() or fut.exception() is not None:
        return
    store.set_persisted_offset(tp, fut.result().offset)
