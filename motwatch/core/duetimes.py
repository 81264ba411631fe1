"""When each journey next needs the engine: one due time per key, handed out earliest first.

A binary heap orders the due times near the watermark. Those past the
watermark's hour wait in a coarse wheel, a list of keys per hour, and join
the heap when the watermark reaches their hour. Most journeys at rest wait
only for their expiry, 30 days out; in the wheel such a journey costs a
list slot instead of a heap entry (a tuple), about 56 bytes less each.

A key's due time only moves earlier (``schedule`` keeps the earlier of
two); an entry left behind by an earlier due time, in the heap or in the
wheel, is skipped when it comes up, so scheduling never searches.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

BUCKET_MS = 3_600_000


class DueTimes:
    """Due times (event time, ms) by key, in a heap and an hourly wheel."""

    def __init__(self, watermark_ms: int) -> None:
        self._due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._wheel: dict[int, list[str]] = {}
        # The wheel's hours that hold keys, earliest first.
        self._hours: list[int] = []
        # Due times up to the end of this hour go to the heap.
        self._near = watermark_ms // BUCKET_MS

    def __len__(self) -> int:
        return len(self._due)

    def get(self, key: str) -> int | None:
        return self._due.get(key)

    def schedule(self, key: str, due: int) -> None:
        """``key`` is due at ``due``, unless it is due earlier already."""
        current = self._due.get(key)
        if current is not None and current <= due:
            return
        self._due[key] = due
        hour = due // BUCKET_MS
        if hour <= self._near:
            heapq.heappush(self._heap, (due, key))
            return
        keys = self._wheel.get(hour)
        if keys is None:
            keys = self._wheel[hour] = []
            heapq.heappush(self._hours, hour)
        keys.append(key)

    def pop_due(self, watermark_ms: int) -> Iterator[str]:
        """The keys due at or before ``watermark_ms``, earliest first (ties by key), each removed.

        Keys scheduled while this runs are handed out too when they are due.
        """
        near = watermark_ms // BUCKET_MS
        if near > self._near:
            self._near = near
            hours, wheel, dues, heap = self._hours, self._wheel, self._due, self._heap
            while hours and hours[0] <= near:
                hour = heapq.heappop(hours)
                for key in wheel.pop(hour):
                    due = dues.get(key)
                    if due is not None and due // BUCKET_MS == hour:
                        heapq.heappush(heap, (due, key))
        heap, dues = self._heap, self._due
        while heap and heap[0][0] <= watermark_ms:
            due, key = heapq.heappop(heap)
            if dues.get(key) == due:
                del dues[key]
                yield key
