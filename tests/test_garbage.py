"""The collector's pace: set by the commands that stream, and cycles still collected."""

from __future__ import annotations

import gc
import weakref

from motwatch.garbage import THRESHOLDS, collect_less_often


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_the_collector_runs_less_often_and_still_frees_cycles() -> None:
    before = gc.get_threshold()
    try:
        collect_less_often()
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0  # what existed is out of the collector's walks
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        assert gone() is not None
        kept = [Node() for _ in range(THRESHOLDS[0] * 2)]  # allocations alone bring a collection round
        assert gone() is None
        del kept
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
