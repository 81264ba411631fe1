"""The cyclic garbage collector's pace for a long-running stream process.

CPython runs its cyclic collector every 700 net allocations. A worker
allocates a dozen objects a record (Faust's event and message, futures, the
engine's step) and reference counting frees nearly all of them, so the
collector mostly walks live objects for nothing: with the defaults it cost
10-20% of the end-to-end benchmark's throughput, 6-8% of ``motwatch
detect``'s. Objects alive once the process is set up are frozen out of its
walks, and it runs a hundred times less often; cycles are still collected.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations between young collections, and young (then middle) collections between older ones.
THRESHOLDS = (70_000, 50, 100)


def collect_less_often() -> None:
    """Call once the process's long-lived objects exist (the app built, the settings loaded)."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def collecting_less_often() -> Iterator[None]:
    """:func:`collect_less_often` for the block; then the collector as it was, the frozen objects thawed."""
    before = gc.get_threshold()
    collect_less_often()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
