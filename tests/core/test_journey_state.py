"""A journey engine restarted from its serialised state carries on as if it had never stopped."""

from __future__ import annotations

from pathlib import Path

import orjson

from motwatch.core.clock import PartitionClock
from motwatch.core.engine import JourneyEngine
from motwatch.core.events import Touchpoint
from motwatch.core.journey import JourneyState
from motwatch.core.moments import Moment
from motwatch.core.validation import validate_touchpoint
from tests.journeys import CUSTOMER, Feed, medley, ms, other, touch

DATA = Path(__file__).resolve().parents[1] / "data"


def _records(moments: list[Moment]) -> list[dict]:
    return [m.to_dict() for m in moments]


def test_a_restart_from_serialised_state_gives_the_same_moments():
    events = medley()
    whole = Feed()
    whole(*events)
    whole.flush()

    for cut in range(1, len(events)):
        before = Feed()
        before(*events[:cut])
        # A new engine whose store holds only what a changelog would: the serialised states.
        store = {k: JourneyState.from_json(s.to_json()) for k, s in before.engine.store.items()}
        clock = PartitionClock.from_dict(before.engine.clock.to_dict())
        after = Feed()
        after.engine = JourneyEngine(before.engine.settings, store=store, clock=clock)
        after.engine.restore()
        after(*events[cut:])
        after.flush()
        assert _records(before.moments + after.moments) == _records(whole.moments), f"cut at {cut}"
        assert before.duplicates + after.duplicates == whole.duplicates == 1


def test_dedupe_memory_survives_serialisation():
    state = JourneyState(key="k")
    state.last_seen_ms = 50
    for i in range(5):
        state.remember(f"id{i}", i * 10, max_ids=3, window_ms=10_000)
    again = JourneyState.from_json(state.to_json())
    assert again.seen == state.seen == {"id2": 20, "id3": 30, "id4": 40}
    assert again.to_json() == state.to_json()


def test_a_packed_state_reads_back_the_same_and_plain_json_still_reads():
    f = Feed()
    f(touch("checkout_started", 0, cart_id="c1"), touch("chat_message", 5, sender="customer", chat_id="h1"))
    state = f.engine.store[CUSTOMER]
    packed = state.pack()
    assert len(packed) < len(state.to_json())
    assert JourneyState.unpack(packed).to_json() == state.to_json()
    assert JourneyState.unpack(state.to_json()).to_json() == state.to_json()
    # Empty collections are left out of the stored form and read back as empty.
    empty = JourneyState(key="k", first_seen_ms=1, last_seen_ms=2)
    assert orjson.loads(empty.to_json()) == {"v": 1, "key": "k", "first_seen_ms": 1, "last_seen_ms": 2}
    assert JourneyState.unpack(empty.pack()) == empty


def test_held_events_read_back_are_written_again_as_they_were_stored():
    """Read back, a held event keeps the form it was stored in, and that form is its own dump."""
    events = [validate_touchpoint(raw) for raw in (DATA / "examples.jsonl").read_bytes().splitlines()]
    events = [e for e in events if isinstance(e, Touchpoint)]
    assert len({e.type for e in events}) >= 10
    state = JourneyState(key="k", first_seen_ms=1, last_seen_ms=2, pending=events)
    again = JourneyState.unpack(state.pack())
    assert [e.event_id for e in again.pending] == [e.event_id for e in events]
    for held, original in zip(again.pending, events, strict=True):
        assert "stored" in vars(held)  # kept from the read, not dumped again on the next write
        assert held.stored == original.stored
        assert held == original
        assert held.model_dump(mode="json", exclude_none=True) == held.stored
    assert again.pack() == state.pack()


def test_restore_rebuilds_the_timers():
    f = Feed()
    f(touch("checkout_started", 0, cart_id="c1"), other(10))
    engine = JourneyEngine(f.engine.settings, store=dict(f.engine.store), clock=f.engine.clock)
    assert engine.advance(ms(5000)).moments == []  # no timer index yet
    engine.restore()
    assert [m.kind for m in engine.advance(ms(5001)).moments] == ["abandoned_checkout"]


def test_the_restored_timer_index_holds_the_stores_own_keys():
    """Restored from packed states, the index shares the store's key strings instead of copies."""
    f = Feed()
    f(touch("checkout_started", 0, cart_id="c1"), other(10))
    packed = {"".join(k): s.pack() for k, s in f.engine.store.items()}  # fresh key objects

    class Packed(dict):
        def get(self, key, default=None):
            raw = super().get(key)
            return default if raw is None else JourneyState.unpack(raw)

    engine = JourneyEngine(f.engine.settings, store=Packed(packed), clock=f.engine.clock)
    engine.restore()
    own = {id(k) for k in packed}
    index = engine._due
    held = [key for _, key in index._heap] + [key for keys in index._wheel.values() for key in keys]
    assert held and all(id(key) in own for key in held)
    assert len(index) == len(packed) and all(id(key) in own for key in index._due)
