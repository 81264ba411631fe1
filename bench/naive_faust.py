"""Naive Faust: one agent that validates each event with pydantic and does nothing else, one at a time.

``python -m bench.naive_faust worker -l warn`` with the settings of
``bench.bare_app`` in the environment. Faust's settings are its defaults (raw
bytes in, memory store, no web server), as a first Faust program would have
them. ``bench.run`` starts it, waits for the figure and stops it by its PID.
"""

from __future__ import annotations

import os
import uuid

import faust

from bench.bare_app import BROKER, DATADIR, TOPIC, Count

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
count = Count("naive-faust.json")


@app.agent(touchpoints)
async def validate(stream):  # type: ignore[no-untyped-def]
    async for value in stream:
        count.event(value)


if __name__ == "__main__":
    app.main()
