"""The one place motwatch reads prometheus_client's private attributes: many observations at once.

prometheus_client has no call for many observations of a histogram, and
``observe`` takes a lock per observation for the sum and another for the
bucket. A worker counts a whole batch of records at once
(``streams/metrics.py``), so it adds to the bucket and sum values itself, as
``observe`` does. A test compares the expositions of the two ways: it fails
the day the library's histogram changes.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any


def observe_all(histogram: Any, values: list[float]) -> None:
    """``histogram.observe(v)`` for each value, without exemplars, with one lock per bucket
    touched; ``histogram``: a label-less histogram or one child of a labelled one."""
    if not values:
        return
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1
    histogram._sum.inc(sum(values))
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)
