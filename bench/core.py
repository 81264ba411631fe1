"""Core only: what ``motwatch detect FILE`` runs (validation, the engine, moments as JSON), in one process.

``python -m bench.core FILE`` (run pinned to one CPU by ``bench.run``) reads the
file into memory first, then times ``run_detect`` over it, writing every moment
as ``motwatch detect`` does (to /dev/null). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from collections import Counter
from pathlib import Path

import motwatch.commands.detect as detect_module
from bench.common import ids_digest
from motwatch.commands.detect import run_detect
from motwatch.core.engine import JourneyEngine
from motwatch.garbage import collect_less_often
from motwatch.settings import load_settings


def measure(
    path: Path, limit: int | None = None, flush: bool = False, states_out: Path | None = None
) -> dict:
    engines: list[JourneyEngine] = []
    if states_out is not None:
        # Keep the engine run_detect builds, to write its journeys once the clock has stopped.
        class Kept(JourneyEngine):
            def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
                super().__init__(*args, **kwargs)
                engines.append(self)

        detect_module.JourneyEngine = Kept  # type: ignore[misc]
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    if limit is not None:
        lines = lines[:limit]
    settings = load_settings(None, environ={})
    kinds: Counter[str] = Counter()
    ids: list[str] = []
    gc.collect()
    collect_less_often()  # as motwatch detect does
    with open(os.devnull, "wb") as sink:

        def on_moment(moment) -> None:  # type: ignore[no-untyped-def]
            kinds[moment.kind] += 1
            ids.append(moment.moment_id)
            sink.write(moment.to_json() + b"\n")

        wall0, cpu0 = time.perf_counter(), time.process_time()
        summary = run_detect(lines, settings, on_moment, lambda r: None, source_name=str(path), flush=flush)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    states = 0
    if states_out is not None:
        tmp = states_out.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            for engine in engines:
                # Aliases (anonymous journeys joined to a customer's) too: they are held in state.
                for state in engine.store.values():
                    out.write(state.to_json() + b"\n")
                    states += 1
        tmp.rename(states_out)
    return {
        "journeys_in_state": states if states_out is not None else None,
        "lines": len(lines),
        "events": summary.events,
        "rejected": summary.rejected,
        "duplicates": summary.duplicates,
        "late": summary.late,
        "moments": sum(summary.moments.values()),
        "moments_by_kind": dict(sorted(kinds.items())),
        "moments_by_kind_status": dict(sorted(summary.moments.items())),
        "moment_ids_digest": ids_digest(ids),
        "open_timeouts_at_end": summary.open_timeouts,
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "events_per_s": round(summary.events / wall, 1),
        "cpus": sorted(os.sched_getaffinity(0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--states-out", type=Path, default=None, help="write the final journey states here")
    args = parser.parse_args()
    print(json.dumps(measure(args.file, args.limit, states_out=args.states_out)))


if __name__ == "__main__":
    main()
