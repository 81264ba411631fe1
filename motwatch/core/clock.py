"""Event time for one partition: the watermark that every timeout waits for.

The watermark is the latest event time of the input stream, less the allowed
lateness. Offline (``motwatch detect``) the file is the one source, and each
event moves the clock. Behind Kafka, a journey partition receives events
from every source partition of the input topic, so its clock follows the
sources' progress instead: the slowest source sets the pace.

Which source partitions exist is known up front (the input topic's metadata,
``learn_inputs``), not learnt from the first news of each: a source not heard
from yet holds event time back until a reader of it has said, once the
input's traffic had begun here, that it has nothing to read, and a whole tick
interval has passed since with nothing from it. A source's first records may
reach the broker, or be read, a moment after another's (a producer's burst
lands partition by partition; a worker on a backlog reads a partition a batch
later), and the events of a partition read later than the others must not
find the watermark past them: a partition empty *now* may hold the next
burst's oldest events. Before any traffic the watermark has nowhere to go,
so a fresh worker waits for every partition however long it idles.

A source that made no progress over a whole tick interval, and whose
reader said so during it, stops holding the others back (Flink's idle
sources), unless it reported records still waiting to be read: a source
with a backlog is slow, not idle. Readers restate every source they read
twice per tick interval for this. A source nobody reported over the
interval is not idle but unread (its reader stopped, and the worker that
takes its partition over has not said anything yet): records may wait in
it that are older than the others' latest, so it holds the pace at its
last time. Once every source is quiet for ``idle_advance``, none has a
backlog and none is still awaited, the watermark follows the wall clock
between ticks.

Ticks and progress are ordinary records that carry their own times, so
replaying the same records replays the same decisions.

Records applied where they were read (``read_here``: the input topic is
partitioned like the journey topics) tell their source's progress outside
that order: the worker may take them before ticks and progress written to
the re-keyed topic before they were read. Their progress holds the pace
between ticks like any other, but a tick judges only by what the re-keyed
topic had told before it: a source heard from only here is still awaited,
and a source a tick lets set the pace does so at what the re-keyed topic
said it had read, not at what was read here since, while the other
sources' news of that time is still on its way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

NEVER = -(2**62)
# An awaited input a reader said has nothing to read: its count starts at the next tick.
DECLARED = 0


@dataclass(slots=True)
class PartitionClock:
    lateness_ms: int
    # True: every observed event moves the clock (one source: a file).
    self_timed: bool = True
    idle_advance_ms: int = 30_000
    max_seen_ms: int = NEVER
    watermark_ms: int = NEVER
    sources: dict[str, int] = field(default_factory=dict)
    # Sources that last reported records still waiting to be read.
    behind: list[str] = field(default_factory=list)
    sources_at_last_tick: dict[str, int] = field(default_factory=dict)
    # Sources a reader reported since the last tick (the only ones a tick may find idle).
    reported: list[str] = field(default_factory=list)
    last_tick_wall_ms: int | None = None
    idle_since_wall_ms: int | None = None
    activity_since_tick: int = 0
    # Every source partition of the input topics, known from metadata.
    inputs: list[str] = field(default_factory=list)
    # Sources' progress from records applied where they were read (not through the re-keyed topic).
    read_here_ms: dict[str, int] = field(default_factory=dict)
    # Inputs not heard from yet -> None (no reader has said it has nothing to read, since the
    # traffic began), DECLARED (one has; the next tick starts the count), or the tick (wall ms)
    # from which it has shown nothing.
    awaited: dict[str, int | None] = field(default_factory=dict)

    def _reach(self, stream_ms: int) -> None:
        if stream_ms > self.max_seen_ms:
            self.max_seen_ms = stream_ms
            self.watermark_ms = max(self.watermark_ms, stream_ms - self.lateness_ms)

    def observe(self, occurred_ms: int) -> None:
        """An event arrived in this partition."""
        self.activity_since_tick += 1
        if self.self_timed:
            self._reach(occurred_ms)

    def learn_inputs(self, sources: Iterable[str]) -> None:
        """The source partitions of the input topics (metadata); those not heard from are awaited."""
        for source in sources:
            if source not in self.inputs:
                self.inputs.append(source)
                if source not in self.sources:
                    self.awaited[source] = None

    def source_progress(self, source: str, max_seen_ms: int, behind: bool | None = None) -> None:
        """A source partition reports the latest event time it has read, and (``behind``)
        whether it had more records waiting to be read; None: no news of that. A report that
        only restates what was known is no activity, but tells that the source is read."""
        self._reported(source)
        if self._set_behind(source, behind):
            self.activity_since_tick += 1
        if max_seen_ms > self.sources.get(source, NEVER):
            self.activity_since_tick += 1
            self.sources[source] = max_seen_ms
            if source not in self.inputs:
                self.inputs.append(source)
            self.awaited.pop(source, None)
        self._reach(self._pace())

    def read_here(self, source: str, max_seen_ms: int) -> None:
        """A record of ``source`` was applied where it was read; ``max_seen_ms``: the latest
        event time read from ``source``. Holds the pace; ticks do not see it (module docstring)."""
        self.activity_since_tick += 1
        if max_seen_ms > self.read_here_ms.get(source, NEVER):
            self.read_here_ms[source] = max_seen_ms
        self._reach(self._pace())

    def source_unread(self, source: str, behind: bool) -> None:
        """A reader of ``source`` has read nothing from it yet; ``behind``: records are waiting."""
        self._reported(source)
        self._set_behind(source, behind)
        if source not in self.inputs:
            self.inputs.append(source)
        if source in self.sources:
            return
        if behind:
            self.awaited[source] = None  # a backlog (again): held until it is read
        elif self.awaited.get(source, DECLARED) is None and self.sources:
            self.awaited[source] = DECLARED

    def _reported(self, source: str) -> None:
        if source not in self.reported:
            self.reported.append(source)

    def _set_behind(self, source: str, behind: bool | None) -> bool:
        """Whether ``source`` has records waiting (None: not said); True if that changed."""
        if behind is None or behind == (source in self.behind):
            return False
        if behind:
            self.behind.append(source)
        else:
            self.behind.remove(source)
        return True

    def _pace(self) -> int:
        here = self.read_here_ms
        if not here:
            if not self.sources or self.awaited:
                return NEVER
            return min(self.sources.values())
        if any(source not in here for source in self.awaited):
            return NEVER
        sources = self.sources
        pace = min(max(at, sources.get(source, NEVER)) for source, at in here.items())
        for source, at in sources.items():
            if at < pace and source not in here:
                pace = at
        return pace

    def _release_awaited(self, wall_ms: int) -> None:
        """Inputs said to have nothing to read stop holding event time a whole tick interval later."""
        for source, since in list(self.awaited.items()):
            if source in self.behind or since is None:
                self.awaited[source] = None
            elif since == DECLARED:
                self.awaited[source] = wall_ms
            elif wall_ms > since:
                del self.awaited[source]

    def is_late(self, occurred_ms: int) -> bool:
        return occurred_ms < self.watermark_ms

    def on_tick(self, wall_ms: int) -> None:
        """A tick record: drop idle sources from the pace; follow the wall clock when all is quiet.

        Idle: no progress since the last tick, no backlog, and reported by its reader since.
        """
        previous = self.last_tick_wall_ms
        if previous is not None and wall_ms <= previous:
            return
        self.last_tick_wall_ms = wall_ms
        if self.awaited:
            self._release_awaited(wall_ms)
        if previous is not None and not self.awaited:
            behind, reported, before = self.behind, self.reported, self.sources_at_last_tick
            active = {
                s: t
                for s, t in self.sources.items()
                if before.get(s) != t or s in behind or s not in reported
            }
            # Quiet sources have delivered everything they read: they no longer hold the pace.
            self._reach(min(active.values()) if active else max(self.sources.values(), default=NEVER))
            if self.activity_since_tick == 0 and not active:
                if self.idle_since_wall_ms is None:
                    self.idle_since_wall_ms = previous
                idle_for = wall_ms - self.idle_since_wall_ms
                if self.max_seen_ms != NEVER and idle_for > self.idle_advance_ms:
                    self.watermark_ms += min(wall_ms - previous, idle_for - self.idle_advance_ms)
            else:
                self.idle_since_wall_ms = None
        else:
            self.idle_since_wall_ms = None
        self.sources_at_last_tick = dict(self.sources)
        self.reported = []
        self.activity_since_tick = 0

    def taken_over(self) -> None:
        """A new holder resumes this clock (a restart, a rebalance): no source counts as reported
        since the last tick until a reader of it reports it again.

        The last holder's reports may be older than records it read and applied after its last
        commit, which the new holder reads again; its ticks that follow in the re-keyed topic
        must not find such a source idle on the strength of them.
        """
        self.reported = []

    def advance_to(self, watermark_ms: int) -> None:
        self.watermark_ms = max(self.watermark_ms, watermark_ms)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartitionClock:
        return cls(**data)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes) -> PartitionClock:
        """A clock from :meth:`to_json`; ValueError if the bytes are not one (corrupt, or another shape)."""
        try:
            clock = cls.from_dict(orjson.loads(raw))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a partition clock: {type(exc).__name__}: {str(exc)[:200]}") from None
        for f in fields(clock):
            value = getattr(clock, f.name)
            expected = _SHAPES.get(f.name, int)
            if value is None and f.name in _MAY_BE_NONE:
                continue
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ValueError(f"not a partition clock: {f.name} is a {type(value).__name__}")
        return clock


# The types of a clock's fields other than int, for reading a stored one.
_SHAPES: dict[str, type] = {
    "self_timed": bool,
    "sources": dict,
    "behind": list,
    "sources_at_last_tick": dict,
    "reported": list,
    "inputs": list,
    "read_here_ms": dict,
    "awaited": dict,
}
_MAY_BE_NONE = frozenset({"last_tick_wall_ms", "idle_since_wall_ms"})
