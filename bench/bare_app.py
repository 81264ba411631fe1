"""What the bare apps (naive Faust, the Quix Streams peer) share: their settings and one validating count.

Settings come from the environment ``bench.run`` gives them: ``BENCH_BROKER``,
``BENCH_TOPIC``, ``BENCH_EXPECT`` (events to read), ``BENCH_OUT`` (a JSON file
written once the last event was validated) and ``BENCH_DATADIR``.
``Count.event`` validates one raw event with the pydantic models
(``TOUCHPOINT_ADAPTER.validate_json``) and, at the ``BENCH_EXPECT``-th, writes
the figure: events per second from the first event to that one, and the CPU
time the whole process (every thread: librdkafka's too) spent meanwhile, per
event, which others' work on the machine skews less. Imports nothing
of motwatch but ``motwatch.core.events`` (pydantic and orjson): the peer runs it
in a virtualenv without motwatch's other dependencies.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from motwatch.core.events import TOUCHPOINT_ADAPTER

BROKER = os.environ.get("BENCH_BROKER", "127.0.0.1:9092")
TOPIC = os.environ.get("BENCH_TOPIC", "touchpoints")
EXPECT = int(os.environ.get("BENCH_EXPECT", "0"))
DATADIR = os.environ.get("BENCH_DATADIR", "/tmp")


class Count:
    """Validates each event it is given and writes the figure once it has seen ``EXPECT`` of them."""

    def __init__(self, default_out: str, facts: dict[str, Any] | None = None) -> None:
        self.out = os.environ.get("BENCH_OUT", default_out)
        self.facts = facts or {}
        self.count = 0
        self.valid = 0
        self.first: float | None = None
        self.first_cpu = 0.0

    def event(self, value: bytes) -> None:
        if self.first is None:
            self.first = time.time()
            self.first_cpu = time.process_time()
        try:
            TOUCHPOINT_ADAPTER.validate_json(value)
            self.valid += 1
        except ValueError:
            pass
        self.count += 1
        if self.count == EXPECT:
            self._write(time.time(), time.process_time())

    def _write(self, last: float, last_cpu: float) -> None:
        assert self.first is not None
        seconds = last - self.first
        cpu = last_cpu - self.first_cpu
        figure = {
            "events": self.count,
            "valid": self.valid,
            "first_at": self.first,
            "last_at": last,
            "seconds": round(seconds, 3),
            "events_per_s": round(self.count / seconds, 1) if seconds > 0 else None,
            "cpu_s": round(cpu, 3),
            "cpu_us_per_event": round(cpu / self.count * 1e6, 1),
            **self.facts,
        }
        with open(self.out + ".tmp", "w") as f:
            json.dump(figure, f)
        os.replace(self.out + ".tmp", self.out)
