"""The real app, and the agent tests' stand-ins, have all the agents need of them (agents/protocols.py).

A type checker would say so from the annotations; these say it at run time:
every member each Protocol names is there, and what the Protocol awaits is a
coroutine function.
"""

from __future__ import annotations

import inspect
from typing import Any

from faust.events import Event as FaustEvent
from faust.types import Message as FaustMessage

from motwatch.agents.protocols import (
    AgentApp,
    AgentConsumer,
    AgentEvent,
    AgentMessage,
    AgentProducer,
    AgentRuntime,
    AgentTable,
    EventStream,
    RebalanceSignal,
    RecordTopic,
)
from motwatch.settings import Settings
from motwatch.streams.app import create_app
from motwatch.streams.writebehind import ChangelogTopic, TableStore
from tests.agents.test_journeys_agent import Producer, Shell, _record


def assert_is(obj: object, protocol: type) -> None:
    """``obj`` has every member ``protocol`` names, and its coroutine methods are coroutine functions."""
    assert isinstance(obj, protocol), f"{type(obj).__name__} lacks a member of {protocol.__name__}"
    for name, _ in inspect.getmembers(protocol, inspect.iscoroutinefunction):
        assert inspect.iscoroutinefunction(getattr(obj, name)), f"{type(obj).__name__}.{name} is not async"


def parts(mw: Any) -> list[tuple[object, type]]:
    """What the agents reach through the app, each with the Protocol it must meet."""
    return [
        (mw, AgentApp),
        (mw.app, AgentRuntime),
        (mw.app.consumer, AgentConsumer),
        (mw.app.producer, AgentProducer),
        (mw.app.on_partitions_assigned, RebalanceSignal),
        (mw.app.on_partitions_revoked, RebalanceSignal),
        (mw.by_journey, RecordTopic),
        *((table, AgentTable) for table in (mw.journeys, mw.clocks)),
        *((table.data, TableStore) for table in (mw.journeys, mw.clocks)),
        *((table.changelog_topic, ChangelogTopic) for table in (mw.journeys, mw.clocks)),
    ]


async def test_the_real_app_is_what_the_agents_need() -> None:
    """Made on the running loop (the consumer's tasks run there), never started."""
    mw = create_app(Settings())
    for part, protocol in parts(mw):
        assert_is(part, protocol)
    assert_is(mw.app.stream(mw.journey_inputs), EventStream)
    message = FaustMessage("touchpoints", 0, 7, 1.5, 0, None, b"key", b"value", None)
    event = FaustEvent(mw.app, b"key", b"value", {}, message)
    assert_is(event, AgentEvent)
    assert_is(message, AgentMessage)


def test_the_stand_ins_are_what_the_agents_need() -> None:
    for part, protocol in parts(Shell(Settings(), Producer())):
        assert_is(part, protocol)
    event = _record(3, b"{}", b"key", [])
    assert_is(event, AgentEvent)
    assert_is(event.message, AgentMessage)
