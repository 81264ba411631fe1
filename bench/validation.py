"""``python -m bench.validation FILE``: validation per event against one pydantic call per batch.

A step on the road to the peer (bench/README.md): the bare apps and the
worker validate each event with its own pydantic call; a batch of them can
be validated as one JSON array in one call. Both ways are timed on the same
events, in the same process, best of five, and printed as microseconds per
event with their ratio. motwatch's own ``validate_touchpoint`` (what the
worker calls: the type read first, then that type's model) is timed beside
them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import TypeAdapter

from motwatch.core.events import TOUCHPOINT_ADAPTER, AnyTouchpoint
from motwatch.core.validation import validate_touchpoint

BATCH = 1000
ROUNDS = 5


def best_us_per_event(work: Callable[[], object], events: int) -> float:
    """The fastest of ``ROUNDS`` runs of ``work``, in microseconds per event."""
    best = float("inf")
    for _ in range(ROUNDS):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best / events * 1e6


def measure(lines: list[bytes]) -> dict[str, float]:
    batches = [b"[" + b",".join(lines[i : i + BATCH]) + b"]" for i in range(0, len(lines), BATCH)]
    many = TypeAdapter(list[AnyTouchpoint])

    def one_call_each() -> None:
        for line in lines:
            TOUCHPOINT_ADAPTER.validate_json(line)

    def one_call_per_batch() -> None:
        for batch in batches:
            many.validate_json(batch)

    def as_the_worker() -> None:
        for line in lines:
            validate_touchpoint(line)

    n = len(lines)
    each, batched, worker = (
        best_us_per_event(f, n) for f in (one_call_each, one_call_per_batch, as_the_worker)
    )
    return {
        "events": n,
        "one_call_each_us": round(each, 2),
        f"one_call_per_{BATCH}_us": round(batched, 2),
        "validate_touchpoint_us": round(worker, 2),
        "batched_to_each": round(batched / each, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validation", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="touchpoints, one JSON object a line")
    parser.add_argument("--events", type=int, default=50_000, help="how many of its first lines (50,000)")
    args = parser.parse_args(argv)
    try:
        with args.file.open("rb") as f:
            lines = [line.rstrip(b"\n") for _, line in zip(range(args.events), f, strict=False)]
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    if not lines:
        print(f"{args.file} holds no events", file=sys.stderr)
        return 2
    for name, value in measure(lines).items():
        print(f"{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
