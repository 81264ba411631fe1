"""``motwatch collect`` as a process against the session's broker: vendor requests in, topics read back.

The collector runs with ``--port 0`` and is found by the line it prints.
Segment, Snowplow, GA4 and CloudEvents requests go in; the touchpoints
topic must then hold exactly the accepted events, keyed by journey and
valid, and the dead-letter topic the rejected ones with their reasons. A
request with an unknown write key is refused and leaves nothing behind.
SIGTERM stops the collector with exit 0. Through a secured listener
(SCRAM over TLS) the same holds.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from motwatch.core.events import Touchpoint
from motwatch.core.validation import validate_touchpoint
from motwatch.kafka.broker.secure import SecureKafkaBroker
from tests.adapters.examples import (
    CLOUDEVENT_CHECKOUT,
    CLOUDEVENT_SPEC_EXAMPLE,
    GA4_PURCHASE,
    SNOWPLOW_GET_QUERY,
)
from tests.collector.conftest import basic
from tests.workers import ServiceProcess, motwatch_env, read_topic, secured_env

KEY = "integration-key-1"
LISTENING = re.compile(r"^listening (http://\S+)$", re.MULTILINE)


class CollectorProcess(ServiceProcess):
    """``motwatch collect --port 0`` in a subprocess; ``url`` once it listens."""

    name = "collector"

    def __init__(self, env: dict[str, str], workdir: Path, *args: str) -> None:
        super().__init__(workdir)
        self.env = env
        self.args = args
        self.url = ""

    def start(self, timeout: float = 60) -> CollectorProcess:
        self.spawn([sys.executable, "-m", "motwatch.cli", "collect", "--port", "0", *self.args], self.env)
        self.wait_ready(lambda: LISTENING.search(self.log()) is not None, timeout)
        match = LISTENING.search(self.log())
        assert match is not None
        self.url = match.group(1)
        return self


def _track(message_id: str, user: str, event: str = "checkout_started", **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": message_id,
        "userId": user,
        "event": event,
        "timestamp": "2026-11-22T10:15:00.000Z",
        "properties": {"cart_id": f"cart-{user}", **properties},
    }


async def _post(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> int:
    async with session.post(url, **kwargs) as answer:
        await answer.read()
        return answer.status


async def test_vendor_requests_end_on_the_touchpoints_and_deadletter_topics(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = motwatch_env(kafka_bootstrap, topic_prefix, write_keys=KEY, partitions=2)
    collector = CollectorProcess(env, tmp_path).start()
    try:
        async with aiohttp.ClientSession() as session:
            # Refused first: had it been produced, it would be on the topic before the rest.
            refused = {"batch": [_track("m-refused", "u-refused")], "writeKey": "someone-elses-key"}
            assert await _post(session, f"{collector.url}/v1/batch", data=orjson.dumps(refused)) == 401

            batch = {
                "batch": [
                    _track("m-1", "cust-1"),
                    _track("m-2", "cust-2"),
                    _track("m-3", "u-3", "Song Played"),
                ],
                "writeKey": KEY,
            }
            headers = {"Content-Type": "text/plain;charset=UTF-8"}
            assert (
                await _post(session, f"{collector.url}/v1/batch", data=orjson.dumps(batch), headers=headers)
                == 200
            )

            query = SNOWPLOW_GET_QUERY.replace("&aid=shop&", f"&aid={KEY}&")
            async with session.get(f"{collector.url}/i?{query}") as pixel:
                assert pixel.status == 200 and pixel.content_type == "image/gif"

            ga4 = f"{collector.url}/mp/collect?measurement_id=G-1&api_secret={KEY}"
            assert await _post(session, ga4, json=GA4_PURCHASE) == 204

            ce = [CLOUDEVENT_CHECKOUT, CLOUDEVENT_SPEC_EXAMPLE]
            ce_headers = {
                "Content-Type": "application/cloudevents-batch+json",
                "Authorization": f"Bearer {KEY}",
            }
            assert (
                await _post(
                    session, f"{collector.url}/cloudevents", data=orjson.dumps(ce), headers=ce_headers
                )
                == 202
            )

            async with session.get(f"{collector.url}/health") as health:
                assert health.status == 200
            async with session.get(f"{collector.url}/metrics") as metrics:
                text = await metrics.text()
        assert 'motwatch_collector_events_accepted_total{vendor="segment"} 2.0' in text

        touchpoints = await read_topic(kafka_bootstrap, f"{topic_prefix}touchpoints", lambda r: len(r) >= 5)
        letters = await read_topic(kafka_bootstrap, f"{topic_prefix}deadletter", lambda r: len(r) >= 2)
        # Everything was acknowledged before the answers: a last look finds nothing more.
        again = await read_topic(kafka_bootstrap, f"{topic_prefix}touchpoints", lambda r: False, timeout=2)
    finally:
        code = collector.stop()
    assert code == 0, collector.log()[-2000:]
    assert "Traceback" not in collector.log() and "ERROR" not in collector.log(), collector.log()[-2000:]

    assert len(again) == len(touchpoints) == 5
    events = []
    for record in touchpoints:
        event = validate_touchpoint(record.value)
        assert isinstance(event, Touchpoint), record.value
        assert record.key == event.journey_key.encode()
        events.append(event)
    assert {e.type for e in events} == {"checkout_started", "page_view", "order_completed"}
    ids = {e.event_id for e in events}
    assert {"m-1", "m-2", "/shop/checkout|c-1001"} <= ids and "m-refused" not in ids
    reasons = sorted(
        (orjson.loads(r.value)["reason"], orjson.loads(r.value)["source"]["vendor"]) for r in letters
    )
    assert reasons == [("unmapped_event", "cloudevents"), ("unmapped_event", "segment")]
    assert all(b"m-refused" not in r.value for r in letters)


async def test_without_auth_on_the_loopback_no_key_is_needed(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = motwatch_env(kafka_bootstrap, topic_prefix)  # no write key at all
    collector = CollectorProcess(env, tmp_path, "--bind", "127.0.0.1", "--no-auth").start()
    assert collector.url.startswith("http://127.0.0.1:")
    try:
        async with aiohttp.ClientSession() as session:
            assert await _post(session, f"{collector.url}/v1/track", json=_track("m-open", "cust-o")) == 200
        records = await read_topic(kafka_bootstrap, f"{topic_prefix}touchpoints", lambda r: len(r) >= 1)
    finally:
        assert collector.stop(timeout=30) == 0
    assert [r.key for r in records] == [b"cust-o"]
    assert "Traceback" not in collector.log()


@pytest.mark.parametrize("way", ["scram"])
async def test_the_collector_produces_through_a_secured_listener(
    broker: SecureKafkaBroker, way: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = secured_env(broker, way, topic_prefix, write_keys=KEY)
    collector = CollectorProcess(env, tmp_path).start(timeout=90)
    try:
        async with aiohttp.ClientSession() as session:
            auth = basic(KEY)
            status = await _post(
                session, f"{collector.url}/v1/track", json=_track("m-secure", "cust-s"), headers=auth
            )
            assert status == 200
        assert broker.bootstrap is not None
        records = await read_topic(broker.bootstrap, f"{topic_prefix}touchpoints", lambda r: len(r) >= 1)
    finally:
        assert collector.stop() == 0
    [record] = records
    assert record.key == b"cust-s" and orjson.loads(record.value)["event_id"] == "m-secure"
    assert broker.password not in collector.log()
