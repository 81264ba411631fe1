"""The peer: a bare Quix Streams application that validates each event with pydantic and does nothing else.

``python -m bench.quix_peer`` with the settings of ``bench.bare_app`` in the
environment: what ``bench.naive_faust`` does, written with Quix Streams instead
of Faust. One ``StreamingDataFrame`` on the topic (raw bytes in, its own
consumer group, from the earliest offset) hands each value to the same count
and pydantic call; no state, no output topic, Quix's defaults otherwise. It
runs in a virtualenv of its own (``.venv/peer``: Quix Streams pins pydantic and
confluent-kafka below the versions motwatch installs). ``bench.run`` starts it,
waits for the figure and stops it by its PID.
"""

from __future__ import annotations

import os
import uuid
from importlib.metadata import version

from quixstreams import Application

from bench.bare_app import BROKER, DATADIR, TOPIC, Count


def main() -> None:
    versions = {name: version(name) for name in ("quixstreams", "confluent-kafka", "pydantic")}
    count = Count("quix-peer.json", {k.replace("-", "_"): v for k, v in versions.items()})
    app = Application(
        broker_address=BROKER,
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=os.path.join(DATADIR, "quix-peer"),
        loglevel="WARNING",
    )
    touchpoints = app.topic(TOPIC, key_deserializer="bytes", value_deserializer="bytes")
    app.dataframe(touchpoints).update(count.event)
    app.run()


if __name__ == "__main__":
    main()
