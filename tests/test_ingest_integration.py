"""Ingestion through the real broker: valid events re-keyed, bad ones dead-lettered, the worker unharmed.

A file mixing valid and invalid lines is sent with ``motwatch produce`` while
``motwatch worker`` runs; the re-keyed topic must hold exactly the valid
events, keyed by journey key, and the dead-letter topic exactly the bad
ones, each with its reason.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import orjson
import pytest

from tests.workers import WorkerProcess, motwatch_env, read_topic, run_cli

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent / "data" / "examples.jsonl"


def _event(**fields: object) -> bytes:
    base = {
        "event_id": "bad-x",
        "occurred_at": "2026-03-02T15:00:00.000Z",
        "anonymous_id": "anon-bad",
        "channel": "web",
        "type": "page_view",
        "properties": {"url": "https://shop.example/"},
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}, ensure_ascii=False).encode()


BAD_LINES: list[tuple[bytes, str]] = [
    (b'{"event_id": "broken", "occurred_at": ', "invalid_json"),
    (b"\xff\xfe\x00not utf-8 at all \xc3\x28", "invalid_json"),
    (b"[1, 2, 3]", "invalid_json"),
    (_event(event_id=None), "missing_field"),
    (_event(type=None), "missing_field"),
    (_event(anonymous_id=None), "missing_field"),
    (_event(type="identify", properties={}), "missing_field"),
    (_event(type="teleport"), "unknown_type"),
    (_event(channel="carrier_pigeon"), "unknown_channel"),
    (_event(occurred_at="yesterday at noon"), "bad_timestamp"),
    (_event(occurred_at="2026-03-02T15:00:00"), "bad_timestamp"),
    (_event(properties={"url": "https://shop.example/", "http_status": "404"}), "bad_property"),
    (_event(type="review_posted", channel="review", properties={"rating": "five"}), "bad_property"),
    (_event(type="page_view", properties={}), "missing_field"),
]


def _input_file(tmp_path: Path) -> tuple[Path, list[bytes]]:
    valid = [line for line in EXAMPLES.read_bytes().splitlines() if line.strip()]
    lines: list[bytes] = []
    bad = iter(BAD_LINES)
    for i, line in enumerate(valid):
        lines.append(line)
        if i % 2 == 0:
            extra = next(bad, None)
            if extra is not None:
                lines.append(extra[0])
    lines.extend(b for b, _ in bad)
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, valid


def _raw_of(record: dict) -> bytes:
    raw = record["raw"]
    return base64.b64decode(raw) if record["raw_encoding"] == "base64" else raw.encode("utf-8")


async def test_valid_events_are_rekeyed_and_bad_ones_dead_lettered(kafka_bootstrap, topic_prefix, tmp_path):
    env = motwatch_env(kafka_bootstrap, topic_prefix)
    path, valid = _input_file(tmp_path)
    with WorkerProcess(env, tmp_path / "w") as worker:
        sent = run_cli("produce", str(path), env=env)
        assert sent.returncode == 0, sent.stderr
        total = len(valid) + len(BAD_LINES)
        assert f"sent {total} messages" in sent.stdout.decode()

        rekeyed = await read_topic(
            kafka_bootstrap, f"{topic_prefix}touchpoints-by-journey", lambda r: _touchpoints(r) >= len(valid)
        )
        dead = await read_topic(
            kafka_bootstrap, f"{topic_prefix}deadletter", lambda r: len(r) >= len(BAD_LINES)
        )
        assert worker.alive(), worker.log()[-2000:]

        # Exactly the valid events, byte for byte, keyed by journey key; besides
        # them only the identify events a customer's journey forwards, untouched,
        # to the anonymous journey they join.
        events = [r for r in rekeyed if not _is_control(r) and not _is_forwarded(r)]
        assert sorted(r.value for r in events) == sorted(valid)
        for r in rekeyed:
            if _is_forwarded(r):
                body = orjson.loads(r.value)
                assert r.value in valid and body["type"] == "identify"
                assert r.key.decode() == body["anonymous_id"]
        for r in events:
            body = orjson.loads(r.value)
            assert r.key.decode() == (body.get("customer_id") or body["anonymous_id"])
            assert r.timestamp == _ms(body["occurred_at"])

        # Exactly the bad lines, untouched, each with the right reason.
        records = [orjson.loads(r.value) for r in dead]
        got = sorted((_raw_of(rec), rec["reason"]) for rec in records)
        assert got == sorted(BAD_LINES)
        for rec in records:
            assert rec["error"] and rec["source"]["topic"] == f"{topic_prefix}touchpoints"
            assert {"partition", "offset"} <= rec["source"].keys()

        # The worker keeps going: a later valid event is still processed.
        later = tmp_path / "later.jsonl"
        later.write_bytes(_event(event_id="after-the-storm", anonymous_id="anon-late") + b"\n")
        assert run_cli("produce", str(later), env=env).returncode == 0
        more = await read_topic(
            kafka_bootstrap,
            f"{topic_prefix}touchpoints-by-journey",
            lambda r: any(x.key == b"anon-late" for x in r),
        )
        assert any(x.key == b"anon-late" for x in more)
        assert worker.alive()


def _is_control(record) -> bool:
    return any(k == "mw-record" for k, _ in (record.headers or ()))


def _is_forwarded(record) -> bool:
    return any(k == "mw-forwarded" for k, _ in (record.headers or ()))


def _touchpoints(records) -> int:
    return sum(1 for r in records if not _is_control(r) and not _is_forwarded(r))


def _ms(text: str) -> int:
    from datetime import datetime

    return round(datetime.fromisoformat(text).timestamp() * 1000)
