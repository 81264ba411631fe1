"""Write-behind views: spilled values wait packed and unsent, read as themselves, and are written once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from motwatch.streams.writebehind import PackedWriteBehind, Staged


class Store(dict[str, Any]):
    """A table's store in memory, which remembers how far its changelog is written."""

    persisted: dict[TP, int]

    def __init__(self) -> None:
        super().__init__()
        self.persisted = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


@dataclass
class Topic:
    def get_topic_name(self) -> str:
        return "journeys-changelog"


@dataclass
class Table:
    data: Store = field(default_factory=Store)
    changelog_topic: Topic = field(default_factory=Topic)
    key_serializer: str = "raw"
    value_serializer: str = "raw"


def _view() -> tuple[PackedWriteBehind, list[Staged]]:
    """A view packing dicts as JSON, and what its writes sent."""
    sent: list[Staged] = []

    async def send_batch(
        topic: str, partition: int, records: list[tuple[bytes, bytes | None]], done: Any
    ) -> None:
        sent.append(Staged(topic, partition, records))
        done(len(records) - 1)

    view = PackedWriteBehind(
        Table(),
        0,
        send_batch,
        pack=lambda value: json.dumps(value).encode(),
        unpack=json.loads,
        count=lambda value: value.get("open", 0),
        hot=lambda value: False,
    )
    return view, sent


def test_spilled_values_are_read_as_they_were_and_leave_the_store_alone() -> None:
    view, _ = _view()
    view.data["old"] = b'{"n": 0}'
    view["a"], view["old"] = {"n": 1}, {"n": 2}
    size = view.spill()
    assert view.pending == {} and size == view.unsent_bytes == len(b'{"n": 1}') + len(b'{"n": 2}')
    assert dict(view.data) == {"old": b'{"n": 0}'}  # the store gets them only with the changelog
    assert view["a"] == {"n": 1} and view.get("old") == {"n": 2} and "a" in view
    assert sorted(view) == ["a", "old"] and len(view) == 2
    view["a"] = {"n": 33}
    assert view["a"] == {"n": 33}  # the pending object, newer than the packed one
    assert view.spill() == len(b'{"n": 33}') + len(b'{"n": 2}')  # a key spilled again counts once


async def test_a_stage_writes_each_spilled_or_pending_key_once_with_its_last_value() -> None:
    view, sent = _view()
    view["a"], view["b"], view["c"] = {"n": 1}, {"n": 1}, {"n": 1, "open": 2}
    view.spill()
    view["b"] = {"n": 2}
    del view["c"]
    assert "c" not in view and view.get("c") is None and sorted(view) == ["a", "b"]
    await view.flush()
    assert len(sent) == 1
    assert sorted(sent[0].records) == [(b"a", b'{"n": 1}'), (b"b", b'{"n": 2}'), (b"c", None)]
    assert dict(view.data) == {"a": b'{"n": 1}', "b": b'{"n": 2}'}
    assert view.unsent == {} and view.unsent_bytes == 0 and view.total() == 0
    assert view.data.persisted == {TP("journeys-changelog", 0): 2}
    assert await view.flush() == 0  # nothing waits


def test_a_deletion_stays_pending_through_a_spill() -> None:
    view, _ = _view()
    view.data["gone"] = b'{"n": 5}'
    del view["gone"]
    assert view.spill() == 0 and "gone" in view.pending and "gone" not in view
