"""Where a worker's main thread spends its time on a backlog: a py-spy profile, read.

``py-spy record --idle --threads`` samples every thread, waiting ones
included, and writes each distinct stack with its count (``-f raw``). Only
the main thread's samples count here: it runs the event loop, the agents and
the producer's accumulator; Faust's consumer thread fetches beside it. A
sample whose innermost frame is the selector's ``select`` is time the loop
had nothing to run: waiting on the network (a produce round trip, a fetch)
while input may be waiting. The share of such samples is the worker's idle
share; the functions with the most samples of their own (innermost frame)
say where the rest goes.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import PYTHON, BenchError, log

PY_SPY = Path(PYTHON).parent / "py-spy"
RATE_HZ = 100
# How many of the busiest functions to report.
TOP = 12

_LINE = re.compile(r"^thread \(\d+\): (?P<thread>[^;]*);(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def record(pid: int, seconds: float, out: Path) -> Path:
    """Sample process ``pid`` for ``seconds``; the raw stacks are written to ``out``."""
    if not PY_SPY.exists():
        raise BenchError(f"{PY_SPY} is missing: make bench installs the bench extra")
    command = [str(PY_SPY), "record", "--idle", "--threads", "--nonblocking", "-p", str(pid)]
    command += ["-d", str(round(seconds)), "-r", str(RATE_HZ), "-f", "raw", "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0 or not out.exists():
        raise BenchError(f"py-spy failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return out


def function_of(frame: str) -> str:
    """``name (path/to/file.py:12)`` as ``name (file.py)``: one entry per function, not per line."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['function']} ({Path(match['file']).name})"


def summarise(raw: str, thread: str = "MainThread") -> dict[str, Any]:
    """The idle share of ``thread``'s samples and its busiest functions (their own samples)."""
    samples = 0
    idle = 0
    own: Counter[str] = Counter()
    for line in raw.splitlines():
        match = _LINE.match(line.strip())
        if match is None or match["thread"] != thread:
            continue
        count = int(match["count"])
        leaf = function_of(match["stack"].rsplit(";", 1)[-1])
        samples += count
        if leaf.startswith(("select (selectors.py)", "EpollSelector.select (selectors.py)")):
            idle += count
        else:
            own[leaf] += count
    if not samples:
        raise BenchError(f"no samples of the {thread} in the profile")
    return {
        "samples": samples,
        "idle_share": round(idle / samples, 3),
        "top_own": [{"function": f, "share": round(n / samples, 3)} for f, n in own.most_common(TOP)],
    }


def profile(pid: int, seconds: float, out: Path) -> dict[str, Any]:
    """Record and summarise; the raw profile stays at ``out`` (``py-spy``'s flamegraph input)."""
    log(f"profiling pid {pid} for {seconds:.0f}s (py-spy, {RATE_HZ} Hz)")
    summary = summarise(record(pid, seconds, out).read_text())
    summary.update(seconds=seconds, raw=str(out))
    log(f"main thread idle in the selector: {summary['idle_share']:.1%} of {summary['samples']} samples")
    return summary
