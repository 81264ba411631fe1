"""The consumer that delivers records without tasks gives the outcomes Faust's ``wait_first`` gives."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from motwatch.streams.app import create_app
from motwatch.streams.consumer import PromptConsumer

from motwatch.settings import Settings


def make_consumer() -> Any:
    """A worker's consumer, made on the running loop (its tasks run there), never started."""
    made = create_app(Settings()).app.consumer
    assert isinstance(made, PromptConsumer)
    return made


async def test_a_delivery_that_need_not_wait_is_done_at_once() -> None:
    consumer = make_consumer()
    steps: list[str] = []

    async def deliver() -> int:
        steps.append("delivered")
        return 7

    delivery, other = deliver(), consumer.suspend_flow.wait()
    outcome = consumer.wait_first(delivery, other)
    # Nothing was scheduled: one step of the awaiting coroutine finishes it.
    with pytest.raises(StopIteration) as finished:
        outcome.send(None)
    result = finished.value.value
    assert result.done == [delivery] and result.results == [7] and not result.stopped
    assert steps == ["delivered"]
    assert inspect.getcoroutinestate(other) == inspect.CORO_CLOSED


async def test_a_delivery_that_waits_is_resumed_and_reported_as_itself() -> None:
    consumer = make_consumer()
    gate, at_gate = asyncio.Event(), asyncio.Event()
    steps: list[str] = []

    async def deliver() -> int:
        steps.append("started")
        at_gate.set()
        await gate.wait()
        steps.append("resumed")
        await asyncio.sleep(0)  # suspends once more: the resumed delivery is driven to its end
        return 8

    delivery = deliver()
    waiting = asyncio.ensure_future(consumer.wait_first(delivery, consumer.suspend_flow.wait()))
    await asyncio.wait_for(at_gate.wait(), 5)
    assert steps == ["started"] and not waiting.done()
    gate.set()
    result = await asyncio.wait_for(waiting, 5)
    assert steps == ["started", "resumed"]
    assert result.done == [delivery] and result.results == [8] and not result.stopped


async def test_suspending_the_flow_abandons_a_waiting_delivery() -> None:
    consumer = make_consumer()
    blocked, cancelled = asyncio.Event(), asyncio.Event()

    async def deliver() -> None:
        try:
            blocked.set()
            await asyncio.Event().wait()  # a stream buffer that never drains
        except asyncio.CancelledError:
            cancelled.set()
            raise

    suspended = consumer.suspend_flow.wait()
    waiting = asyncio.ensure_future(consumer.wait_first(deliver(), suspended))
    await asyncio.wait_for(blocked.wait(), 5)
    consumer.suspend_flow.set()
    result = await asyncio.wait_for(waiting, 5)
    assert result.done == [suspended]
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_errors_of_a_delivery_reach_the_fetch_loop_either_way() -> None:
    consumer = make_consumer()

    async def fails_at_once() -> None:
        raise ValueError("bad at once")

    other = consumer.suspend_flow.wait()
    with pytest.raises(ValueError, match="bad at once"):
        await consumer.wait_first(fails_at_once(), other)
    assert inspect.getcoroutinestate(other) == inspect.CORO_CLOSED

    async def fails_later() -> None:
        await asyncio.sleep(0)  # suspends: the error comes from the resumed delivery
        raise ValueError("bad later")

    with pytest.raises(ValueError, match="bad later"):
        await consumer.wait_first(fails_later(), consumer.suspend_flow.wait())


async def test_a_stopped_consumer_reports_stopped_as_faust_does() -> None:
    consumer = make_consumer()
    consumer._stopped.set()

    async def deliver() -> int:
        await asyncio.sleep(0)  # suspends: a delivery still under way when the consumer stops
        return 1

    result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
    assert result.stopped and result.done == []
