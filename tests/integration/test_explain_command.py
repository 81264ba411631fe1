"""``motwatch explain`` against the session's broker and a real worker, then with the worker stopped.

A journey is produced through ``motwatch produce``: an anonymous visit joined
to the customer by an identify, a checkout nobody completes (abandoned once
its 30 minutes have passed in event time), a failed payment, and a checkout
still open. Other journeys' traffic, on every input partition, moves event
time on (no lateness allowed). Once the worker has reported the moments,
``motwatch explain`` asks the worker (found from the settings) and prints the
journey's touchpoints, its moments with evidence and threshold, and its open
deadline; the same as JSON. The worker listens on every address, and refuses
a request that reaches it over the network. With the worker stopped, the
command falls back to Kafka and says so in one line, and the state it shows
is the one the worker last stored. With two workers sharing the partitions,
each names the other as the owner of the other's journeys (as Faust's
assignor has it), and ``motwatch explain`` asked at the wrong one asks there.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from motwatch.core.partitioner import partition_for_key
from tests.workers import WorkerProcess, motwatch_env, read_topic, run_cli, wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 2
SETTINGS = {
    "partitions": PARTITIONS,
    "allowed_lateness_s": 0,
    "idle_advance_s": 36000,
    "web_bind": "0.0.0.0",
}
CUSTOMER, ANON = "cust-explain", "anon-explain"


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _event(event_id: str, at: datetime, type_: str, customer=None, anon=None, channel="web", **props) -> dict:
    event = {"event_id": event_id, "occurred_at": _stamp(at), "channel": channel, "type": type_}
    if customer:
        event["customer_id"] = customer
    if anon:
        event["anonymous_id"] = anon
    if props:
        event["properties"] = props
    return event


def feed(now: datetime) -> list[dict]:
    ago = lambda minutes: now - timedelta(minutes=minutes)  # noqa: E731
    events = [
        _event("x-view", ago(50), "page_view", anon=ANON, url="https://shop.example/p/desk",
               page_category="product", product_id="desk"),
        _event("x-identify", ago(49), "identify", customer=CUSTOMER, anon=ANON),
        _event("x-start-1", ago(46), "checkout_started", customer=CUSTOMER, channel="checkout",
               cart_id="cart-1", value=120.0),
        _event("x-pay", ago(44), "payment_failed", customer=CUSTOMER, channel="checkout",
               cart_id="cart-2", reason="card_declined"),
        _event("x-start-3", ago(2), "checkout_started", customer=CUSTOMER, channel="checkout",
               cart_id="cart-3"),
    ]  # fmt: skip
    # Traffic on every input partition, up to a minute ago: the watermark follows it.
    keys = [f"anon-tail-{i}" for i in range(12)]
    assert {partition_for_key(k, PARTITIONS) for k in keys} == set(range(PARTITIONS))
    events += [
        _event(
            f"tail-{i}", ago(1) + timedelta(milliseconds=i), "page_view", anon=k, url="https://shop.example/"
        )
        for i, k in enumerate(keys)
    ]
    return events


def outward_address() -> str | None:
    """An address of this machine other than the loopback, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def explain(env: dict[str, str], *args: str) -> tuple[int, bytes, str]:
    done = run_cli("explain", *args, env=env)
    return done.returncode, done.stdout, done.stderr.decode()


def check_story(story: dict, start: datetime) -> None:
    """What any source must tell of the journey."""
    ids = [t["event_id"] for t in story["touchpoints"]]
    assert ids == ["x-identify", "x-start-1", "x-pay", "x-start-3"], story["touchpoints"]
    by_id = {t["event_id"]: t for t in story["touchpoints"]}
    assert (by_id["x-start-1"]["moment"], by_id["x-start-1"]["phase"]) == ("FMOT", "purchase")
    assert story["joined_from"] == [
        {"anonymous_id": ANON, "identify": "x-identify", "at": by_id["x-identify"]["occurred_at"]}
    ]

    kinds = {(m["kind"], m["status"]): m for m in story["moments"]}
    assert set(kinds) == {("abandoned_checkout", "failed"), ("checkout_error", "failed")}, story["moments"]
    abandoned = kinds[("abandoned_checkout", "failed")]
    assert [e["event_id"] for e in abandoned["evidence"]] == ["x-start-1"]
    assert abandoned["evidence"][0]["type"] == "checkout_started"
    assert abandoned["threshold"]["setting"] == "kinds.abandoned_checkout.window_s"
    assert abandoned["threshold"]["value"] == 1800
    error = kinds[("checkout_error", "failed")]
    assert [e["event_id"] for e in error["evidence"]] == ["x-pay"]
    assert error["details"]["cart_id"] == "cart-2"

    [deadline] = story["open_deadlines"]
    assert (deadline["kind"], deadline["item"]) == ("abandoned_checkout", "cart-3")
    assert [e["event_id"] for e in deadline["evidence"]] == ["x-start-3"]
    assert deadline["threshold"]["value"] == 1800
    assert deadline["due_at"] == _stamp(start - timedelta(minutes=2) + timedelta(minutes=30))
    # Due 28 minutes from now; the watermark is at the latest traffic (no lateness), a minute ago.
    assert 29 * 60 - 1 < deadline["due_in_s"] <= 29 * 60
    assert "FMOT" in story["state"]["reached"]
    assert story["state"]["milestones"]["first_product_view"] == _stamp(start - timedelta(minutes=50))


def test_explain_from_the_worker_and_from_kafka(kafka_bootstrap, topic_prefix, tmp_path: Path):
    env = motwatch_env(kafka_bootstrap, topic_prefix, **SETTINGS)
    port = env["MOTWATCH_WEB_PORT"]
    now = datetime.now(UTC)
    events = feed(now)
    (tmp_path / "feed.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))

    with WorkerProcess(env, tmp_path / "w") as worker:
        done = run_cli("produce", str(tmp_path / "feed.jsonl"), env=env)
        assert done.returncode == 0, done.stderr.decode()

        def reported(records: list) -> bool:
            mine = [orjson.loads(r.value) for r in records if r.key == CUSTOMER.encode()]
            return {m["kind"] for m in mine} >= {"abandoned_checkout", "checkout_error"}

        moments = asyncio.run(read_topic(kafka_bootstrap, f"{topic_prefix}moments", reported, timeout=60))
        assert reported(moments), worker.log()[-3000:]

        # JSON, the worker found from the settings (web_port).
        code, out, err = explain(env, CUSTOMER, "--json")
        assert code == 0, err
        story = orjson.loads(out)
        assert story["source"]["from"] == "worker", story["source"]
        assert story["source"]["partition"] == partition_for_key(CUSTOMER, PARTITIONS)
        check_story(story, now)
        assert story["state"]["held_events"] == 0

        # motwatch moments lists the same moments the worker reported for the journey.
        done = run_cli("moments", "--journey", CUSTOMER, "--json", env=env)
        assert done.returncode == 0, done.stderr.decode()
        listed = [orjson.loads(line) for line in done.stdout.splitlines()]
        assert sorted(m["moment_id"] for m in listed) == sorted(m["moment_id"] for m in story["moments"])
        assert [m["kind"] for m in listed] == ["abandoned_checkout", "checkout_error"]  # newest first

        # The same story as text, on one screen.
        code, out, err = explain(env, CUSTOMER, "--url", f"127.0.0.1:{port}")
        assert code == 0, err
        text = out.decode()
        assert f"state from the worker at http://127.0.0.1:{port}" in text
        assert f"joined from anonymous journey {ANON}" in text
        assert "abandoned_checkout cart-3: due " in text
        assert (
            "threshold: no order within 30 min of checkout_started (kinds.abandoned_checkout.window_s=1800)"
            in text
        )
        assert "evidence: x-start-1 (checkout_started at" in text
        assert "threshold: a payment_failed event fails the checkout at once" in text
        assert len(text.splitlines()) < 40
        rows = [line.split() for line in text.splitlines() if line.startswith("  20")]
        assert [row[-1] if row[-1].startswith("x-") else row[-2] for row in rows[:4]] == [
            "x-identify", "x-start-1", "x-pay", "x-start-3",
        ]  # fmt: skip

        # The anonymous journey was handed over: it says where its story goes on.
        code, out, err = explain(env, ANON, "--json")
        assert code == 0, err
        assert orjson.loads(out)["merged_into"] == CUSTOMER

        # An unknown journey: one line, and a failure.
        code, out, err = explain(env, "nobody-at-all")
        assert code == 1 and out == b""
        assert err.count("\n") == 1
        assert err.startswith("motwatch explain: no journey 'nobody-at-all': the worker")

        # Customer state is for this machine only: over the network the worker refuses.
        address = outward_address()
        if address is not None:
            status, body = get(f"http://{address}:{port}/journeys/{CUSTOMER}")
            assert status == 403, body
            assert "local callers only" in body["error"] and "\n" not in body["error"]
        status, body = get(f"http://127.0.0.1:{port}/journeys/{CUSTOMER}")
        assert status == 200 and "seen" not in body["state"]
        assert body["state"]["checkouts"]["cart-3"]["state"] == "open"

    # The worker is gone: the state it last stored, read from Kafka, and one line saying so.
    code, out, err = explain(env, CUSTOMER, "--json")
    assert code == 0, err
    story = orjson.loads(out)
    assert story["source"]["from"] == "kafka"
    assert err.count("\n") == 1 and "no worker answers at" in err and "from Kafka" in err
    check_story(story, now)
    assert story["watermark"] is not None

    code, out, err = explain(env, "nobody-at-all")
    assert code == 1 and out == b""
    assert err.count("\n") == 1 and err.startswith("motwatch explain: no journey 'nobody-at-all': Kafka")


def test_a_worker_names_the_owner_of_a_journey_and_explain_asks_there(
    kafka_bootstrap, topic_prefix, tmp_path
):
    settings = {k: v for k, v in SETTINGS.items() if k != "web_bind"}
    env_a = motwatch_env(kafka_bootstrap, topic_prefix, **settings)
    env_b = motwatch_env(kafka_bootstrap, topic_prefix, **settings)
    url_a, url_b = (f"http://127.0.0.1:{env['MOTWATCH_WEB_PORT']}" for env in (env_a, env_b))
    # One journey on each journey partition.
    keys = {}
    for i in range(50):
        keys.setdefault(partition_for_key(f"cust-route-{i}", PARTITIONS), f"cust-route-{i}")
    assert len(keys) == PARTITIONS
    now = datetime.now(UTC)
    events = [
        _event(f"r-{key}", now - timedelta(minutes=5), "checkout_started", customer=key, channel="checkout",
               cart_id=f"cart-{key}")
        for key in keys.values()
    ]  # fmt: skip
    (tmp_path / "feed.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))

    with WorkerProcess(env_a, tmp_path / "a") as a, WorkerProcess(env_b, tmp_path / "b") as b:
        done = run_cli("produce", str(tmp_path / "feed.jsonl"), env=env_a)
        assert done.returncode == 0, done.stderr.decode()
        answers: dict[tuple[str, str], tuple[int, dict]] = {}

        def settled() -> bool:
            """Each worker holds one partition, the journey there, and names the other for the other."""
            for url in (url_a, url_b):
                for key in keys.values():
                    answers[(url, key)] = get(f"{url}/journeys/{key}")
            statuses = sorted(sorted(answers[(url, k)][0] for k in keys.values()) for url in (url_a, url_b))
            return statuses == [[200, 421], [200, 421]]

        wait_until(settled, 90, "the two workers to share the partitions, each with its journey")
        for (url, key), (status, body) in answers.items():
            if status == 421:
                other = url_b if url == url_a else url_a
                assert body["owner"] == other and answers[(other, key)][0] == 200
                code, out, err = explain(env_a, key, "--json", "--url", url)
                assert code == 0, err
                story = orjson.loads(out)
                assert story["source"]["from"] == "worker" and story["source"]["url"] == other
                assert [d["item"] for d in story["open_deadlines"]] == [f"cart-{key}"]
        assert a.alive() and b.alive()
