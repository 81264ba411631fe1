"""``motwatch detect``: the core on a JSONL file, without Kafka.

The file is one partition read in file order; records one journey sends to
another (an identify joining two journeys) loop straight back into the same
engine, as the journey agent would send them through Kafka.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from motwatch.deadletter import dead_letter_record, file_source
from motwatch.engine import Forward, JourneyEngine, Step
from motwatch.moments import Moment
from motwatch.settings import Settings
from motwatch.validation import Rejection, validate_touchpoint


@dataclass
class DetectSummary:
    events: int = 0
    rejected: int = 0
    duplicates: int = 0
    late: int = 0
    moments: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    open_timeouts: int = 0

    def lines(self) -> list[str]:
        out = [
            f"events: {self.events}  rejected: {self.rejected}  duplicates: {self.duplicates}  "
            f"late: {self.late}  open timeouts at end: {self.open_timeouts}"
        ]
        for reason, n in sorted(self.rejected_by_reason.items()):
            out.append(f"  rejected {reason}: {n}")
        total = sum(self.moments.values())
        out.append(f"moments: {total}")
        for kind, n in sorted(self.moments.items()):
            out.append(f"  {kind}: {n}")
        return out


def drain_forwards(engine: JourneyEngine, step: Step, on_moment: Callable[[Moment], None]) -> None:
    """Emit a step's moments and feed its forwarded records back into the same engine."""
    if not step.forwards:  # nearly every step: no queue to build
        for moment in step.moments:
            on_moment(moment)
        return
    queue: deque[Step] = deque([step])
    while queue:
        current = queue.popleft()
        for moment in current.moments:
            on_moment(moment)
        for fwd in current.forwards:
            queue.append(apply_forward(engine, fwd))


def apply_forward(engine: JourneyEngine, fwd: Forward) -> Step:
    if fwd.kind == "event":
        return engine.process(fwd.event, key=fwd.key)  # type: ignore[arg-type]
    return engine.control(fwd.key, fwd.kind, fwd.payload or {})


def run_detect(
    lines: Iterable[bytes],
    settings: Settings,
    on_moment: Callable[[Moment], None],
    on_reject: Callable[[dict[str, Any]], None],
    source_name: str = "-",
    flush: bool = False,
) -> DetectSummary:
    """Run every line through validation and the engine; report moments and rejects."""
    engine = JourneyEngine(settings)
    summary = DetectSummary()

    def count(moment: Moment) -> None:
        summary.moments[f"{moment.kind} ({moment.status})"] += 1
        on_moment(moment)

    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        if not raw or raw.isspace():
            continue
        result = validate_touchpoint(raw)
        if isinstance(result, Rejection):
            summary.rejected += 1
            summary.rejected_by_reason[result.reason] += 1
            on_reject(dead_letter_record(raw, result, file_source(source_name, number)))
            continue
        summary.events += 1
        step = engine.process(result)
        summary.duplicates += step.duplicate
        summary.late += step.late
        drain_forwards(engine, step, count)
    if flush:
        drain_forwards(engine, engine.advance(2**62), count)
    summary.open_timeouts = engine.open_timeouts()
    return summary
