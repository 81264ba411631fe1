"""Naive Faust: one agent that validates each event with pydantic and does nothing else, one at a time.

``python -m bench.naive_faust worker -l warn`` with ``BENCH_BROKER``,
``BENCH_TOPIC``, ``BENCH_EXPECT`` (events to read) and ``BENCH_OUT`` (a JSON
file written once the last event was validated) in the environment. Faust's
settings are its defaults (raw bytes in, memory store, no web server), as a
first Faust program would have them. ``bench.run`` starts it, waits for the
file and stops it by its PID.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import faust

from motwatch.core.events import TOUCHPOINT_ADAPTER

BROKER = os.environ.get("BENCH_BROKER", "127.0.0.1:9092")
TOPIC = os.environ.get("BENCH_TOPIC", "touchpoints")
EXPECT = int(os.environ.get("BENCH_EXPECT", "0"))
OUT = os.environ.get("BENCH_OUT", "naive-faust.json")
DATADIR = os.environ.get("BENCH_DATADIR", "/tmp")

app = faust.App(
    f"bench-naive-{uuid.uuid4().hex[:8]}",
    broker=f"kafka://{BROKER}",
    store="memory://",
    datadir=os.path.join(DATADIR, "naive-faust"),
    autodiscover=False,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    topic_allow_declare=False,
)
touchpoints = app.topic(TOPIC, key_serializer="raw", value_serializer="raw")

state = {"count": 0, "valid": 0, "first": None, "written": False}


@app.agent(touchpoints)
async def validate(stream):  # type: ignore[no-untyped-def]
    async for value in stream:
        if state["first"] is None:
            state["first"] = time.time()
        try:
            TOUCHPOINT_ADAPTER.validate_json(value)
            state["valid"] += 1
        except ValueError:
            pass
        state["count"] += 1
        if state["count"] == EXPECT and not state["written"]:
            state["written"] = True
            last = time.time()
            seconds = last - state["first"]
            with open(OUT + ".tmp", "w") as f:
                json.dump(
                    {
                        "events": state["count"],
                        "valid": state["valid"],
                        "first_at": state["first"],
                        "last_at": last,
                        "seconds": round(seconds, 3),
                        "events_per_s": round(state["count"] / seconds, 1) if seconds > 0 else None,
                    },
                    f,
                )
            os.replace(OUT + ".tmp", OUT)


if __name__ == "__main__":
    app.main()
