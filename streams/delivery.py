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


@dataclass(eq=False)
class _Unsettled:
    written: asyncio.Future[object]
    attempt: Attempt
    stream: str
    # The try that replaced this one after it failed.
    again: _Unsettled | None = None


def _write_failed(written: asyncio.Future[object]) -> bool:
    return written.cancelled() or written.exception() is not None


class Deliveries:
    """Writes not yet acknowledged, and the ways to make each again.

    ``stream`` names what a record is (moments, deadletter, a changelog):
    ``on_failure(stream, error)`` hears of every failed try, for a counter
    and the log; ``on_settled(seconds)`` of how long a settle that had
    failures waited. ``before_resend()`` is called before failed writes are
    sent again (an idempotent producer must start its sequence afresh, or the
    broker refuses everything after the gap a failed write left).
    ``sleep`` is the pause between tries.

    Several tasks may settle at once (the agent, and a commit writing state
    beside it): each waits for what was sent before it began, and a failed
    write is sent again once, by whichever of them finds it first.
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
        # Writes that failed and are not yet sent again.
        self.failures_waiting = 0
        self._resending = asyncio.Lock()

    def __len__(self) -> int:
        return len(self.unsettled)

    @property
    def failing(self) -> bool:
        """Whether a write failed and waits to be sent again: whoever can, settles."""
        return self.failures_waiting > 0

    async def send(self, stream: str, attempt: Attempt) -> None:
        """Hand a record to the producer (trying again until it takes it); ``settle`` waits for it."""
        await self._sent(stream, attempt)

    async def _sent(self, stream: str, attempt: Attempt) -> _Unsettled:
        written = await self._tried(stream, attempt)
        unsettled = _Unsettled(written, attempt, stream)
        written.add_done_callback(self._on_written)
        self.unsettled.append(unsettled)
        return unsettled

    def _on_written(self, written: asyncio.Future[object]) -> None:
        if _write_failed(written):
            self.failures_waiting += 1

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

    async def settle(self, stream: str | None = None) -> None:
        """Return once the broker has acknowledged every record sent before the call (``stream``:
        every record of that stream), sending failed ones again.

        Records keep their order within a stream as far as their writes
        succeed; a record sent again goes after those written meanwhile.
        """
        started = time.monotonic()
        failed = False
        pause = FIRST_PAUSE_S
        waiting = [u for u in self.unsettled if stream is None or u.stream == stream]
        while waiting:
            # Only the writes still unacknowledged are waited for (a done one would cost a callback).
            pending = [u.written for u in waiting if not u.written.done()]
            if pending:
                await asyncio.wait(pending)
            retry = [u for u in waiting if _write_failed(u.written)]
            if retry:
                failed = True
                await self.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE_S)
                await self._send_again(retry)
            self._forget_settled()
            waiting = [u.again for u in retry if u.again is not None]
        if failed:
            waited = time.monotonic() - started
            self.on_settled(waited)
            log.warning("every record is written again after failed tries (%.1fs)", waited)

    async def _send_again(self, retry: list[_Unsettled]) -> None:
        """Send each failed write again, unless another settle already did."""
        async with self._resending:
            todo = [u for u in retry if u.again is None]
            if not todo:
                return
            for u in todo:
                self._failed(
                    u.stream, asyncio.CancelledError() if u.written.cancelled() else u.written.exception()
                )
            self.before_resend()
            for u in todo:
                u.again = await self._sent(u.stream, u.attempt)
                self.failures_waiting -= 1

    def _forget_settled(self) -> None:
        """Drop the writes that are acknowledged, or were sent again."""
        self.unsettled = [
            u
            for u in self.unsettled
            if not u.written.done() or (_write_failed(u.written) and u.again is None)
        ]
