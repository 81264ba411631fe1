"""Records handed to the producer until the broker has them: ``settle`` returns once every one is.

A record the producer could not take, or one the broker did not
acknowledge (a request that timed out, a partition without enough
replicas, a broker that went away), is sent again, with a growing pause,
until it is written. Nothing is given up on: a moment must not be lost
because Kafka was away for a while. While records wait, whoever awaits
``settle`` waits too, which is how the worker stops taking input when its
output cannot be written (it settles every batch before it takes the next),
rather than holding more and more in memory.

Sent again, a record may be written twice (the first try may have reached
the broker after all): moments carry ids for that (at least once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("motwatch.delivery")

# An attempt hands one record (or one batch) to the producer and returns the future of its write.
Attempt = Callable[[], Awaitable["asyncio.Future[object]"]]

FIRST_PAUSE_S = 0.1
LONGEST_PAUSE_S = 5.0


@dataclass
class _Unsettled:
    written: asyncio.Future[object]
    attempt: Attempt
    stream: str


class Deliveries:
    """Writes not yet acknowledged, and the ways to make each again.

    ``stream`` names what a record is (moments, deadletter, a changelog):
    ``on_failure(stream, error)`` hears of every failed try, for a counter
    and the log; ``on_settled(seconds)`` of how long a settle that had
    failures waited. ``before_resend()`` is called before failed writes are
    sent again (an idempotent producer must start its sequence afresh, or the
    broker refuses everything after the gap a failed write left).
    ``sleep`` is the pause between tries.
    """

    def __init__(
        self,
        on_failure: Callable[[str, BaseException], None],
        on_settled: Callable[[float], None] = lambda seconds: None,
        before_resend: Callable[[], object] = lambda: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.on_failure = on_failure
        self.on_settled = on_settled
        self.before_resend = before_resend
        self.sleep = sleep
        self.unsettled: list[_Unsettled] = []

    def __len__(self) -> int:
        return len(self.unsettled)

    async def send(self, stream: str, attempt: Attempt) -> None:
        """Hand a record to the producer (trying again until it takes it); ``settle`` waits for it."""
        written = await self._tried(stream, attempt)
        self.unsettled.append(_Unsettled(written, attempt, stream))

    async def _tried(self, stream: str, attempt: Attempt) -> asyncio.Future[object]:
        pause = FIRST_PAUSE_S
        while True:
            try:
                return await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(stream, exc)
            await self.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_S)

    def _failed(self, stream: str, exc: BaseException) -> None:
        self.on_failure(stream, exc)
        log.warning("could not write to %s (%s: %s); trying again", stream, type(exc).__name__, exc)

    async def settle(self) -> None:
        """Return once the broker has acknowledged every record sent so far, sending failed ones again.

        Records keep their order within a stream as far as their writes
        succeed; a record sent again goes after those written meanwhile.
        """
        started = time.monotonic()
        failures = 0
        pause = FIRST_PAUSE_S
        while self.unsettled:
            batch, self.unsettled = self.unsettled, []
            await asyncio.wait([u.written for u in batch])
            retry = [u for u in batch if u.written.cancelled() or u.written.exception() is not None]
            if not retry:
                continue
            for u in retry:
                self._failed(
                    u.stream, asyncio.CancelledError() if u.written.cancelled() else u.written.exception()
                )
            failures += len(retry)
            await self.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_S)
            self.before_resend()
            for u in retry:
                await self.send(u.stream, u.attempt)
        if failures:
            waited = time.monotonic() - started
            self.on_settled(waited)
            log.warning("every record is written again after %d failed tries (%.1fs)", failures, waited)
