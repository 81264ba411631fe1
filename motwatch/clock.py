"""Event time for one partition: the watermark that every timeout waits for.

The watermark is the latest event time of the input stream, less the allowed
lateness. Offline (``motwatch detect``) the stream is the file and each event
moves the clock itself. Behind Kafka, a re-keyed partition receives events from
every source partition of the input topic, so its clock follows the sources'
progress instead: the slowest active source sets the pace, and a source that
made no progress over a whole tick interval stops holding the others back
(Flink's idle sources), unless it last reported records still waiting to be
read: a source with a backlog is slow, not idle (a worker catching up reads
its partitions unevenly, one for seconds, then another), and were it
dropped, its events would come after the watermark had passed them. Once
every source is quiet for ``idle_advance``, and none has a backlog, the
watermark follows the wall clock between ticks.

Ticks and progress are ordinary records that carry their own times, so
replaying the same records replays the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

NEVER = -(2**62)


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
    last_tick_wall_ms: int | None = None
    idle_since_wall_ms: int | None = None
    activity_since_tick: int = 0

    def _reach(self, stream_ms: int) -> None:
        if stream_ms > self.max_seen_ms:
            self.max_seen_ms = stream_ms
            self.watermark_ms = max(self.watermark_ms, stream_ms - self.lateness_ms)

    def observe(self, occurred_ms: int) -> None:
        """An event arrived in this partition."""
        self.activity_since_tick += 1
        if self.self_timed:
            self._reach(occurred_ms)

    def source_progress(self, source: str, max_seen_ms: int, behind: bool | None = None) -> None:
        """A source partition reports the latest event time it has read, and (``behind``)
        whether it had more records waiting to be read; None: no news of that."""
        self.activity_since_tick += 1
        if behind is not None and behind != (source in self.behind):
            if behind:
                self.behind.append(source)
            else:
                self.behind.remove(source)
        if max_seen_ms > self.sources.get(source, NEVER):
            self.sources[source] = max_seen_ms
        self._reach(self._pace())

    def _pace(self) -> int:
        return min(self.sources.values()) if self.sources else NEVER

    def is_late(self, occurred_ms: int) -> bool:
        return occurred_ms < self.watermark_ms

    def on_tick(self, wall_ms: int) -> None:
        """A tick record: drop idle sources from the pace; follow the wall clock when all is quiet."""
        previous = self.last_tick_wall_ms
        if previous is not None and wall_ms <= previous:
            return
        if previous is not None:
            behind = self.behind
            active = {
                s: t for s, t in self.sources.items() if self.sources_at_last_tick.get(s) != t or s in behind
            }
            # Quiet sources have delivered everything they read: they no longer hold the pace.
            self._reach(min(active.values()) if active else max(self.sources.values(), default=NEVER))
            if self.activity_since_tick == 0 and not behind:
                if self.idle_since_wall_ms is None:
                    self.idle_since_wall_ms = previous
                idle_for = wall_ms - self.idle_since_wall_ms
                if self.max_seen_ms != NEVER and idle_for > self.idle_advance_ms:
                    self.watermark_ms += min(wall_ms - previous, idle_for - self.idle_advance_ms)
            else:
                self.idle_since_wall_ms = None
        self.sources_at_last_tick = dict(self.sources)
        self.last_tick_wall_ms = wall_ms
        self.activity_since_tick = 0

    def advance_to(self, watermark_ms: int) -> None:
        self.watermark_ms = max(self.watermark_ms, watermark_ms)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartitionClock:
        return cls(**data)
