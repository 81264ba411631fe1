"""Deliveries: a settle waits for what was sent before it, and a failed write is sent again once,
however many settle at once (the agent holding input back, and a commit writing state)."""

from __future__ import annotations

import asyncio

from motwatch.streams.delivery import Attempt, Deliveries
from tests.event_loop import run_steps, until


class Broker:
    """Writes as futures the test completes: ``ack(n)`` or ``fail(n)`` the n-th write made."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, asyncio.Future[object]]] = []

    def attempt(self, name: str) -> Attempt:
        async def write() -> asyncio.Future[object]:
            future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            self.writes.append((name, future))
            return future

        return write

    def ack(self, n: int) -> None:
        self.writes[n][1].set_result(n)

    def fail(self, n: int) -> None:
        self.writes[n][1].set_exception(RuntimeError("request timed out"))


async def _no_pause(seconds: float) -> None:
    pass


async def test_a_settle_waits_for_what_was_sent_before_it_only() -> None:
    broker = Broker()
    deliveries = Deliveries(lambda stream, exc: None, sleep=_no_pause)
    await deliveries.send("moments", broker.attempt("m1"))
    settle = asyncio.ensure_future(deliveries.settle())
    await run_steps()
    await deliveries.send("moments", broker.attempt("m2"))  # sent after the settle began, never acked
    assert not settle.done()
    broker.ack(0)
    await until(settle.done)
    assert len(deliveries) == 1  # m2 still waits for whoever settles next


async def test_a_settle_of_one_stream_waits_for_that_stream_only_and_sends_its_failures_again() -> None:
    """The announcement waits for the re-keyed topic's writes, not for the moments or state sent
    beside them; a failed write of its stream is sent again, one of another stream is left."""
    broker = Broker()
    deliveries = Deliveries(lambda stream, exc: None, sleep=_no_pause)
    await deliveries.send("moments", broker.attempt("m1"))
    await deliveries.send("by_journey", broker.attempt("t1"))
    await deliveries.send("moments", broker.attempt("m2"))
    settle = asyncio.ensure_future(deliveries.settle("by_journey"))
    broker.fail(0)
    broker.fail(1)
    await until(lambda: len(broker.writes) == 4)
    assert broker.writes[3][0] == "t1"  # sent again; m1 is not
    assert not settle.done()
    broker.ack(3)
    await until(settle.done)
    assert [name for name, _ in broker.writes] == ["m1", "t1", "m2", "t1"]
    assert deliveries.failing  # m1's failure waits for a settle of every stream
    await until(lambda: len(deliveries) == 2)  # m1 (failed) and m2 (unacknowledged) remain


async def test_a_write_that_failed_is_sent_again_once_whoever_settles() -> None:
    broker = Broker()
    failures: list[str] = []
    resends: list[int] = []
    deliveries = Deliveries(
        lambda stream, exc: failures.append(stream),
        before_resend=lambda: resends.append(1),
        sleep=_no_pause,
    )
    await deliveries.send("moments", broker.attempt("m1"))
    await deliveries.send("journeys", broker.attempt("j1"))
    agent = asyncio.ensure_future(deliveries.settle())
    commit = asyncio.ensure_future(deliveries.settle())
    broker.fail(0)
    await until(lambda: deliveries.failing)
    await run_steps()
    assert not agent.done() and not commit.done()
    broker.ack(1)
    await until(lambda: len(broker.writes) == 3)
    await run_steps()  # neither settle sends it a second time
    assert [name for name, _ in broker.writes] == ["m1", "j1", "m1"]  # sent again, once
    assert failures == ["moments"] and resends == [1]
    assert not deliveries.failing and not agent.done() and not commit.done()
    broker.ack(2)
    await until(lambda: agent.done() and commit.done())
    assert len(deliveries) == 0


async def test_a_write_that_fails_again_is_sent_again_again() -> None:
    broker = Broker()
    failures: list[str] = []
    deliveries = Deliveries(lambda stream, exc: failures.append(stream), sleep=_no_pause)
    await deliveries.send("moments", broker.attempt("m1"))
    settle = asyncio.ensure_future(deliveries.settle())
    broker.fail(0)
    await until(lambda: len(broker.writes) == 2)
    broker.fail(1)
    await until(lambda: len(broker.writes) == 3)
    broker.ack(2)
    await until(settle.done)
    assert [name for name, _ in broker.writes] == ["m1"] * 3
    assert failures == ["moments", "moments"] and not deliveries.failing and len(deliveries) == 0
