"""Reading a py-spy profile: the main thread's idle share, and where the rest of its samples go."""

from __future__ import annotations

import pytest

from bench.common import BenchError
from bench.profile import function_of, summarise

MAIN = "thread (11): MainThread;<module> (motwatch/cli.py:9);"
RAW = "\n".join(
    [
        MAIN + "run_forever (asyncio/base_events.py:608);EpollSelector.select (selectors.py:468) 30",
        MAIN
        + "handle (motwatch/agents/journeys.py:350);validate_touchpoint (motwatch/core/validation.py:88) 50",
        MAIN
        + "handle (motwatch/agents/journeys.py:351);validate_touchpoint (motwatch/core/validation.py:91) 10",
        MAIN + "send (aiokafka/producer/producer.py:400) 10",
        "thread (12): Thread-1;Thread.run (threading.py:982);EpollSelector.select (selectors.py:468) 400",
    ]
)


def test_the_main_threads_idle_share_and_busiest_functions() -> None:
    summary = summarise(RAW)
    assert summary["samples"] == 100, "the consumer thread's samples do not count"
    assert summary["idle_share"] == 0.3
    assert summary["top_own"] == [
        {"function": "validate_touchpoint (validation.py)", "share": 0.6},
        {"function": "send (producer.py)", "share": 0.1},
    ]


def test_a_profile_without_the_thread_is_an_error() -> None:
    with pytest.raises(BenchError, match="no samples"):
        summarise(RAW, thread="Faust")


def test_a_frame_is_named_by_function_and_file() -> None:
    assert function_of(" run (mode/threads.py:12)") == "run (threads.py)"
    assert function_of("<unknown>") == "<unknown>"
