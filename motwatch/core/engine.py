"""The journey engine: one partition's journeys, driven by events and event time.

Events are held in their journey until the watermark reaches them and are
then applied in event-time order, interleaved with the timeouts that fall
between them. So the moments depend only on the events (and on which ones
came later than the allowed lateness), never on the order or the pace in
which they arrived. With no lateness allowed an event is applied as it arrives.

The engine knows nothing of Kafka: the Faust agent and ``motwatch detect`` both
drive it through one dispatch (``motwatch/dispatch.py``), which is why they
agree moment for moment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from motwatch.core.classify import Classifier
from motwatch.core.clock import PartitionClock
from motwatch.core.detectors import Detector, Reporter, build_detectors
from motwatch.core.duetimes import DueTimes
from motwatch.core.events import Touchpoint
from motwatch.core.journey import MOMENT_ORDER, JourneyState
from motwatch.core.moments import Moment
from motwatch.core.records import Progress, input_sources
from motwatch.settings import Settings

# Due time of a journey that waits for a merge: never by the clock, only by the merge.
WAITING = 2**63
# "The journey has no open deadline", as opposed to None, "not computed yet".
_NO_DEADLINE = object()


@dataclass(frozen=True, slots=True)
class Forward:
    """A record for another journey, which may live on another partition.

    ``event``: a touchpoint for the journey ``key``: one arriving at an anonymous
    journey already joined to a customer's;
    ``merge``: the anonymous journey's state handed over when it reached the
    ``identify`` in event time (``state`` is None when there was nothing to hand over);
    ``merge_request``: ask an anonymous journey to hand itself over at once (no longer
    sent by the engine; still accepted).

    An ``identify`` reaches both journeys it joins from where it was read
    (``motwatch/dispatch.py``), never through the other journey: its journeys'
    event time then covers it on both sides.
    """

    key: str
    kind: Literal["event", "merge_request", "merge"]
    event: Touchpoint | None = None
    payload: dict[str, Any] | None = None


@dataclass(slots=True)
class Step:
    """Everything one input caused."""

    moments: list[Moment] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)
    applied: list[Touchpoint] = field(default_factory=list)
    reached: list[str] = field(default_factory=list)
    measurements: list[tuple[str, float]] = field(default_factory=list)
    duplicate: bool = False
    late: bool = False
    expired: int = 0


class JourneyEngine:
    """Applies touchpoints to journeys, fires timeouts, and returns moment events."""

    def __init__(
        self,
        settings: Settings,
        store: MutableMapping[str, JourneyState] | None = None,
        clock: PartitionClock | None = None,
    ) -> None:
        self.settings = settings
        self.store: MutableMapping[str, JourneyState] = {} if store is None else store
        self.clock = clock or PartitionClock(
            lateness_ms=round(settings.allowed_lateness_s * 1000),
            idle_advance_ms=round(settings.idle_advance_s * 1000),
        )
        self.classifier = Classifier(settings.classification)
        self.reporter = Reporter(settings, self.classifier)
        self.detectors: list[Detector] = build_detectors(self.reporter)
        self._timed = [d for d in self.detectors if type(d).next_deadline is not Detector.next_deadline]
        # Detectors per event type, in their order: most events concern one detector or none.
        self._for_type: dict[str, list[Detector]] = {}
        self._expiry_ms = round(settings.journey_expiry_days * 86400 * 1000)
        self._dedupe_window_ms = round(settings.dedupe_window_s * 1000)
        self._due = DueTimes(self.clock.watermark_ms)
        self.stats: Counter[str] = Counter()

    # -- inputs -------------------------------------------------------------
    def process(self, event: Touchpoint, key: str | None = None) -> Step:
        """Take one touchpoint for the journey ``key`` (default: the event's own)."""
        key = key or event.journey_key
        step = self._new_step()
        self.stats["events"] += 1
        state = self.store.get(key)
        if state is not None and state.merged_into is not None:
            if event.type == "identify" and key == event.anonymous_id:
                # Joined already (to this customer or another): nothing more to hand over,
                # but the customer's journey waits for an answer.
                step.forwards.append(self._merge_reply(event, None))
            else:
                step.forwards.append(Forward(state.merged_into, "event", event=event))
            return step
        if state is None:
            state = JourneyState(key=key, first_seen_ms=event.occurred_ms)
        if event.event_id in state.seen:  # held events included (JourneyState.remember)
            step.duplicate = True
            self.stats["duplicates"] += 1
            return step
        step.late = self.clock.is_late(event.occurred_ms)
        self.stats["late"] += step.late
        state.last_seen_ms = max(state.last_seen_ms, event.occurred_ms)
        state.first_seen_ms = min(state.first_seen_ms, event.occurred_ms)
        state.hold(event)
        state.remember(
            event.event_id, event.occurred_ms, self.settings.dedupe_max_ids, self._dedupe_window_ms
        )
        self.store[key] = state  # always reassign: a table writes its changelog only on assignment
        if state.blocked or self._due.get(key) is None:
            self._schedule(state)
        else:
            # Holding an event can only bring the journey's due time forward to the event's.
            self._due.schedule(key, _ready_at(event))
        self.clock.observe(event.occurred_ms)
        self._run_due(step)
        return step

    def control(self, key: str, kind: str, payload: dict[str, Any]) -> Step:
        """A record one journey sent another (see :class:`Forward`)."""
        step = self._new_step()
        if kind == "merge_request":
            self._hand_over(key, payload, step)
        elif kind == "merge":
            self._merge(key, payload.get("state"), payload.get("identify"))
        else:
            raise ValueError(f"unknown control record {kind!r}")
        self._run_due(step)
        return step

    def progress(self, news: Progress) -> Step:
        """Source partitions of the input topic report how far they have read (event time, ms),
        which of them had more records waiting to be read, and which partitions there are."""
        clock, behind = self.clock, news.behind
        clock.learn_inputs(input_sources(news.inputs))
        for source, max_seen_ms in news.reads.items():
            clock.source_progress(source, max_seen_ms, None if behind is None else source in behind)
        for source in news.unread:
            clock.source_unread(source, behind is not None and source in behind)
        return self._run_due(self._new_step())

    def tick(self, wall_ms: int) -> Step:
        """A tick record: lets a quiet partition's watermark follow the wall clock."""
        self.clock.on_tick(wall_ms)
        return self._run_due(self._new_step())

    def advance(self, watermark_ms: int) -> Step:
        """Move the watermark on (end of a file, tests) and fire what is due."""
        self.clock.advance_to(watermark_ms)
        return self._run_due(self._new_step())

    def restore(self, keys: Iterable[str] | None = None, known: Mapping[str, int] | None = None) -> None:
        """Rebuild the in-memory timer index from stored journeys, after a restart or a rebalance.

        ``keys``: the journeys to read (default: every one in the store);
        ``known``: journeys whose due time was kept beside the store (what
        :meth:`due_time` said when their state, unchanged since, was stored):
        indexed as they were, without reading their states. The clock itself
        is restored by whoever persisted it (its snapshot).
        """
        self._due = DueTimes(self.clock.watermark_ms)
        if known:
            schedule = self._due.schedule
            for key, due in known.items():
                schedule(key, due)
        for key in list(self.store.keys()) if keys is None else keys:
            if known and key in known:
                continue
            state = self.store.get(key)
            if state is not None:
                # The index keeps the store's own key, not an equal string read from the state.
                state.key = key
                self._schedule(state)

    def due_time(self, key: str) -> int | None:
        """When the journey ``key`` next needs the engine, as the timer index has it (None: not indexed).

        Kept beside a persistent store with the state it was computed for, it
        lets :meth:`restore` index that journey again without reading it.
        """
        return self._due.get(key)

    def _new_step(self) -> Step:
        step = Step()
        # Durations the detectors observe while this input is applied.
        self.reporter.measurements = step.measurements
        return step

    # -- the due loop -------------------------------------------------------
    def _next_deadline(self, state: JourneyState) -> tuple[int, Detector] | None:
        best: tuple[int, Detector] | None = None
        for detector in self._timed:
            deadline = detector.next_deadline(state)
            if deadline is not None and (best is None or deadline < best[0]):
                best = (deadline, detector)
        return best

    def _due_at(self, state: JourneyState, deadline: Any = None) -> int:
        """When this journey next needs the engine: a held event, a deadline, or expiry.

        A deadline is due once the watermark has passed it (hence +1); an event
        is due once the watermark has reached it. ``deadline``: the journey's
        ``_next_deadline`` when the caller has just computed it.
        """
        if state.blocked:
            return WAITING
        # Expiry only once no deadline is open: a journey is not forgotten while it waits.
        if deadline is None:
            deadline = self._next_deadline(state)
        elif deadline is _NO_DEADLINE:
            deadline = None
        due = state.last_seen_ms + self._expiry_ms + 1 if deadline is None else deadline[0] + 1
        if state.pending:
            ready = _ready_at(state.pending[0])
            if ready < due:
                return ready
        return due

    def _schedule(self, state: JourneyState, deadline: Any = None) -> None:
        self._due.schedule(state.key, self._due_at(state, deadline))

    def _save(self, state: JourneyState, deadline: Any = None) -> None:
        # Always reassign: a table writes its changelog only on assignment.
        state.bound(self.settings.limits.max_state_items)
        self.store[state.key] = state
        self._schedule(state, deadline)

    def _run_due(self, step: Step) -> Step:
        watermark = self.clock.watermark_ms
        for key in self._due.pop_due(watermark):
            state = self.store.get(key)
            if state is not None:
                self._run_journey(state, watermark, step)
        return step

    def _run_journey(self, state: JourneyState, watermark: int, step: Step) -> None:
        changed = False
        # The journey's next deadline as of now, once the loop has computed it (None: not known).
        known: Any = None
        while not state.blocked:
            pending = state.pending
            deadline = self._next_deadline(state)
            if (
                pending
                and _ready_at(pending[0]) <= watermark
                and (deadline is None or pending[0].occurred_ms <= deadline[0])
            ):
                self._apply(state, pending.pop(0), step)
                if state.merged_into is not None:
                    return  # handed over: the store holds its alias now
            elif deadline is not None and deadline[0] < watermark:
                step.moments.extend(deadline[1].on_deadline(state, deadline[0]))
            else:
                known = _NO_DEADLINE if deadline is None else deadline
                break
            changed = True
        if (
            not state.pending
            and not state.blocked
            and known is _NO_DEADLINE
            and state.last_seen_ms + self._expiry_ms < watermark
        ):
            del self.store[state.key]
            step.expired += 1
            self.stats["expired"] += 1
            return
        if changed:
            self._save(state, known)
        else:
            self._schedule(state, known)

    # -- applying one touchpoint ---------------------------------------------
    def _apply(self, state: JourneyState, event: Touchpoint, step: Step) -> None:
        if _joins(event):
            if state.key == event.anonymous_id:
                self._hand_over_at(state, event, step)
                return
            if state.key == event.customer_id:
                early = state.merges.pop(event.event_id, None)
                if early is None:
                    state.merges[event.event_id] = "waiting"
                elif early["state"] is not None:
                    self._absorb(state, JourneyState.from_dict(early["state"]))
        moment, _ = self.classifier.classify(event, state.milestones)
        detectors = self._for_type.get(event.type)
        if detectors is None:
            detectors = self._for_type[event.type] = [
                d for d in self.detectors if d.types is None or event.type in d.types
            ]
        for detector in detectors:
            found = detector.on_event(state, event)
            if found:
                step.moments.extend(found)
        self.note_milestones(state, event)
        if moment not in state.reached and event.type != "identify":
            state.reached.append(moment)
            state.reached.sort(key=MOMENT_ORDER.index)
            step.reached.append(moment)
        step.applied.append(event)
        self.stats["applied"] += 1

    @staticmethod
    def note_milestones(state: JourneyState, event: Touchpoint) -> None:
        """The milestones ``event`` reaches (first product view, first order), kept in ``state``."""
        props: Any = event.properties
        at = event.occurred_ms
        if event.type == "page_view" and props.page_category == "product" and props.http_status < 400:
            if at < state.milestones.get("first_product_view", at + 1):
                state.milestones["first_product_view"] = at
        elif event.type == "order_completed":
            if at < state.milestones.get("first_order", at + 1):
                state.milestones["first_order"] = at
            state.add_order(at, props.cart_id, event.event_id)

    # -- joining an anonymous journey to a customer's ------------------------
    @staticmethod
    def _merge_reply(identify: Touchpoint, state: JourneyState | None) -> Forward:
        return Forward(
            identify.customer_id,  # type: ignore[arg-type]
            "merge",
            payload={
                "state": state.to_dict() if state is not None else None,
                "identify": identify.event_id,
            },
        )

    def _hand_over_at(self, state: JourneyState, identify: Touchpoint, step: Step) -> None:
        """The anonymous journey reached its identify: everything up to it was applied
        here; the rest (held events included) moves to the customer's journey."""
        others = [e for e in state.pending if _joins(e) and e.anonymous_id == state.key]
        state.pending = [e for e in state.pending if e not in others]
        step.forwards.append(self._merge_reply(identify, state))
        # Later identifies of this visitor (the same customer again, or another one on a
        # shared device) find it joined already: the first one wins.
        step.forwards.extend(self._merge_reply(e, None) for e in others)
        state.merged_into = identify.customer_id  # tells _run_journey to stop
        self._save(
            JourneyState(
                key=state.key,
                first_seen_ms=state.first_seen_ms,
                last_seen_ms=state.last_seen_ms,
                merged_into=identify.customer_id,
            )
        )

    def _hand_over(self, key: str, payload: dict[str, Any], step: Step) -> None:
        into, at_ms = payload["into"], payload["at_ms"]
        state = self.store.get(key)
        if state is not None and state.merged_into is not None:
            return
        alias = JourneyState(key=key, first_seen_ms=at_ms, last_seen_ms=at_ms, merged_into=into)
        if state is not None:
            step.forwards.append(Forward(into, "merge", payload={"state": state.to_dict()}))
            alias.first_seen_ms = state.first_seen_ms
            alias.last_seen_ms = max(state.last_seen_ms, at_ms)
        self._save(alias)

    def _merge(self, key: str, other: dict[str, Any] | None, identify: str | None = None) -> None:
        """The state an anonymous journey handed over (None: nothing to hand over).

        It is absorbed exactly where this journey applies the identify: now when the
        journey waits there, else kept until it gets there.
        """
        state = self.store.get(key) or JourneyState(
            key=key,
            first_seen_ms=other["first_seen_ms"] if other else 0,
            last_seen_ms=other["last_seen_ms"] if other else 0,
        )
        if identify is not None and state.merges.get(identify) != "waiting":
            # A repeat (a redelivered identify answered again) never replaces the first answer.
            state.merges.setdefault(identify, {"state": other})
        else:
            state.merges.pop(identify or "", None)
            if other is not None:
                self._absorb(state, JourneyState.from_dict(other))
        self._save(state)

    def _absorb(self, state: JourneyState, other: JourneyState) -> None:
        state.absorb(other)
        for detector in self.detectors:
            detector.on_merge(state)

    # -- introspection --------------------------------------------------------
    def open_timeouts(self) -> int:
        """Open deadlines across the partition's journeys (for the gauge)."""
        return sum(state.open_timeouts() for state in self.store.values())

    def journey_count(self) -> int:
        """Journeys (and aliases) of this partition held in state: each has one timer entry."""
        return len(self._due)

    def journeys(self) -> Iterator[JourneyState]:
        return (s for s in self.store.values() if s.merged_into is None)


def _joins(event: Touchpoint) -> bool:
    """An identify that joins an anonymous journey to another (the customer's)."""
    return event.type == "identify" and event.anonymous_id != event.customer_id


def _ready_at(event: Touchpoint) -> int:
    """When a held event may be applied. An identify waits until the watermark has
    passed it, like a deadline, so that every event of its own time is in: those
    before it (in event id order) stay with the journey they came from."""
    return event.occurred_ms + 1 if _joins(event) else event.occurred_ms
