"""``motwatch status`` against a real exposition of the worker's metrics.

A tiny HTTP server on 127.0.0.1 serves what a worker serves at /metrics:
``prometheus_client.generate_latest`` of a real ``motwatch.metrics.Metrics``
registry, updated by the worker's own methods between two reads. The command
itself runs as a subprocess, as a user would run it; tests/test_prometheus_e2e.py
runs it against a real worker.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from motwatch.commands.demo import where_to_look
from motwatch.commands.status import (
    StatusError,
    metrics_url,
    parse,
    quantile,
    status,
    summarize,
    url_of_settings,
)
from motwatch.settings import Settings
from motwatch.streams.metrics import Metrics
from motwatch.streams.reachability import KafkaReachability
from motwatch.streams.web import url_file
from tests.workers import free_port, run_cli

URL = "http://127.0.0.1:6066/metrics"


class Server:
    """Serves ``body()`` at every path; ``on_read`` runs before each read (the worker doing work)."""

    def __init__(self, body: Callable[[], bytes], content_type: str = CONTENT_TYPE_LATEST) -> None:
        self.reads = 0
        self.on_read: Callable[[int], None] = lambda n: None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.reads += 1
                server.on_read(server.reads)
                payload = body()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


# A duration as status prints it: 3.4 s, 42 s, 2m 05s, 1h 02m, 3d 04h.
DURATION = r"\d+(?:\.\d)? s|\d+[mhd] \d\d[smh]"


def seconds_of(duration: str) -> float:
    """A printed duration back in seconds (to the precision printed)."""
    if duration.endswith(" s"):
        return float(duration[:-2])
    big, small = duration.split()
    units = {"m": 60, "h": 3600, "d": 86400, "s": 1}
    return int(big[:-1]) * units[big[-1]] + int(small[:-1]) * units[small[-1]]


def busy_worker() -> Metrics:
    """A worker's registry after some traffic, through the same calls the agents make."""
    m = Metrics()
    m.received.inc(120)
    m.accepted.labels("web", "page_view").inc(80)
    m.accepted.labels("checkout", "checkout_started").inc(30)
    m.rejected.labels("invalid_json").inc(7)
    m.rejected.labels("bad_timestamp").inc(3)
    m.duplicates.labels("web").inc(2)
    m.late.labels("chat").inc(1)
    m.moments.labels("checkout_error", "FMOT", "purchase", "critical", "ecommerce", "checkout", "failed").inc(
        4
    )
    m.moments.labels("abandoned_checkout", "FMOT", "purchase", "high", "ecommerce", "checkout", "failed").inc(
        2
    )
    m.moments.labels(
        "abandoned_checkout", "FMOT", "purchase", "high", "ecommerce", "checkout", "recovered"
    ).inc()
    m.set_consumer_lag(
        {
            ("motwatch.touchpoints", 0): 5,
            ("motwatch.touchpoints", 1): 7,
            ("motwatch.touchpoints-by-journey", 0): 0,
        }
    )
    m.set_watermark(0, time.time() - 125)
    m.set_watermark(1, time.time() - 3)
    m.active_journeys.set(42)
    m.open_timeouts.set(7)
    m.kafka_reachable.set(1)
    for seconds in (0.2, 0.3, 1.5, 4):
        m.event_lag.observe(seconds)
    return m


@pytest.fixture
def worker() -> Iterator[tuple[Metrics, Server]]:
    metrics = busy_worker()
    with Server(lambda: generate_latest(metrics.registry)) as server:
        yield metrics, server


def test_status_reads_a_worker_twice_and_summarises_it(worker: tuple[Metrics, Server]) -> None:
    metrics, server = worker

    def work(read: int) -> None:
        if read == 2:  # between the two reads: 50 more messages, 3 broken links, 1 more reject
            metrics.received.inc(50)
            metrics.rejected.labels("invalid_json").inc()
            metrics.moments.labels("broken_link", "ZMOT", "engagement", "high", "web", "web", "failed").inc(3)

    server.on_read = work
    started = time.monotonic()
    text = status(server.url, window_s=0.3)
    elapsed = time.monotonic() - started
    assert server.reads == 2

    rate = float(re.search(r"Throughput\s+in ([\d.]+)/s", text).group(1))
    assert 50 / elapsed <= rate <= 50 / 0.3 + 0.1, text
    assert "Since start   in 170   accepted 110   rejected 11   duplicates 2   late 1" in text
    assert re.search(r"Rejected\s+invalid_json 8 \([\d.]+/s\), bad_timestamp 3 \(0\.0/s\)", text), text
    lag = "12 messages: motwatch.touchpoints 12 [p0:5 p1:7]; motwatch.touchpoints-by-journey 0 [p0:0]"
    assert f"Consumer lag  {lag}" in text
    # Behind by what it was behind when set (125 s, 3 s) plus however long ago that was.
    shown = re.search(rf"Watermark\s+behind the wall clock: p0 ({DURATION}), p1 ({DURATION})\n", text)
    assert shown, text
    for partition, behind_when_set, printed in ((0, 125, shown.group(1)), (1, 3, shown.group(2))):
        set_to = metrics.registry.get_sample_value(
            "motwatch_watermark_seconds", {"partition": str(partition)}
        )
        assert behind_when_set - 0.5 <= seconds_of(printed) <= time.time() - set_to + 0.5, text
    assert "Event lag     p50 0.5 s, p95 4.5 s" in text
    assert "State         42 active journeys, 7 open timeouts" in text
    assert "Kafka         reachable (no outage since start)" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("  ")}
    assert rows == {
        "checkout_error": ["4", "0", "+0"],
        "broken_link": ["3", "0", "+3"],
        "abandoned_checkout": ["2", "1", "+0"],
    }
    assert len(text.splitlines()) <= 24, "one screen"


def test_a_fresh_worker_says_what_it_has_not_seen_yet() -> None:
    fresh = generate_latest(Metrics().registry).decode()
    before, after = parse(fresh, 1000.0), parse(fresh, 1002.0)
    text = summarize(before, after, 2.0, URL)
    assert "Throughput    in 0.0/s   accepted 0.0/s   rejected 0.0/s   moments 0.0/s" in text
    assert "Rejected      none" in text
    assert "Consumer lag  not reported yet" in text
    assert "Watermark     none yet" in text
    assert "Event lag     p50 -, p95 -" in text
    assert "Moments since start: none" in text
    assert "Kafka         not probed yet" in text


class Clock:
    """The worker's clocks, moved by the test: monotonic for outages, wall to date them."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1796605323.0 + self.now  # 2026-12-07T01:02:03Z


async def test_kafka_unreachable_then_back_as_the_worker_saw_it() -> None:
    """The worker's own reachability gauges, driven by a probe that fails for 31.2 s, then answers."""
    metrics, clock = Metrics(), Clock()
    down: list[Exception] = []

    async def probe() -> None:
        if down:
            raise down[0]

    watched = KafkaReachability(metrics, probe, monotonic=clock.monotonic, wall=clock.wall)

    def text() -> str:
        snapshot = parse(generate_latest(metrics.registry).decode(), clock.wall())
        return summarize(snapshot, snapshot, 1.0, URL)

    await watched.check()
    down.append(ConnectionRefusedError())
    clock.now = 10.0
    await watched.check()
    clock.now = 11.0
    await watched.check()  # the second unanswered probe in a row: an outage since the first
    clock.now = 22.4
    assert "Kafka         UNREACHABLE for 12 s (1 outage since start)\n" in text()
    clock.now = 41.2
    down.clear()
    await watched.check()
    assert (
        "Kafka         reachable (last outage 31 s, ended 2026-12-07T01:02:44Z; 1 outage since start)\n"
        in text()
    )
    clock.now = 200.0
    down.append(ConnectionRefusedError())
    await watched.check()
    clock.now = 201.0
    await watched.check()
    clock.now = 325.0
    assert "Kafka         UNREACHABLE for 2m 05s (2 outages since start)\n" in text()


def test_a_worker_that_does_not_probe_kafka_gets_no_kafka_line() -> None:
    older = "# TYPE motwatch_events_received_total counter\nmotwatch_events_received_total 5.0\n"
    snapshot = parse(older, 1000.0)
    assert "Kafka" not in summarize(snapshot, snapshot, 1.0, URL)


def test_rates_come_from_the_window_between_the_reads() -> None:
    metrics = Metrics()
    metrics.received.inc(10)
    before = parse(generate_latest(metrics.registry).decode(), 1000.0)
    metrics.received.inc(40)
    metrics.accepted.labels("web", "page_view").inc(30)
    metrics.moments.labels(
        "negative_review", "UMOT", "loyalty", "high", "customer_success", "review", "failed"
    ).inc(2)
    after = parse(generate_latest(metrics.registry).decode(), 1004.0)
    text = summarize(before, after, 4.0, URL)
    assert "Throughput    in 10.0/s   accepted 7.5/s   rejected 0.0/s   moments 0.5/s" in text
    assert "(rates over 4.0 s)" in text


def test_an_unreachable_worker_is_one_line() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StatusError) as caught:
        status(f"127.0.0.1:{port}", window_s=0)
    message = str(caught.value)
    assert "\n" not in message
    assert f"http://127.0.0.1:{port}/metrics" in message
    assert "cannot reach a motwatch worker" in message


def test_something_else_than_a_worker_is_refused() -> None:
    registry = CollectorRegistry()  # someone else's exporter
    Counter("http_requests", "Requests.", registry=registry).inc()
    with (
        Server(lambda: generate_latest(registry)) as server,
        pytest.raises(StatusError, match="no motwatch metrics"),
    ):
        status(server.url, window_s=0)
    with Server(lambda: b"<html>hello</html>", "text/html") as server, pytest.raises(StatusError):
        status(server.url, window_s=0)


def test_http_errors_are_one_line() -> None:
    with Server(lambda: b"") as server:
        server.httpd.RequestHandlerClass.do_GET = lambda self: self.send_error(404)  # type: ignore[method-assign]
        with pytest.raises(StatusError, match="HTTP 404"):
            status(server.url, window_s=0)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:6066", "http://127.0.0.1:6066/metrics"),
        ("http://localhost:6066", "http://localhost:6066/metrics"),
        ("http://localhost:6066/", "http://localhost:6066/metrics"),
        ("http://worker:6066/metrics", "http://worker:6066/metrics"),
        ("https://w.example/motwatch/metrics", "https://w.example/motwatch/metrics"),
    ],
)
def test_the_url_may_name_the_worker_or_its_metrics(given: str, expected: str) -> None:
    assert metrics_url(given) == expected


def test_quantiles_estimate_like_prometheus() -> None:
    buckets = [(0.25, 1.0), (0.5, 2.0), (2.5, 3.0), (5.0, 4.0), (math.inf, 4.0)]
    assert quantile(0.5, buckets) == 0.5
    assert quantile(0.95, buckets) == pytest.approx(4.5)
    assert quantile(0.99, [(1.0, 1.0), (math.inf, 10.0)]) == 1.0  # beyond the last bound: the last bound
    assert math.isnan(quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))


# ---------------------------------------------------------------- the command


def status_env(web_port: int | None = None, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTWATCH_")}
    if web_port is not None:
        env["MOTWATCH_WEB_PORT"] = str(web_port)
    env.update({f"MOTWATCH_{name.upper()}": value for name, value in settings.items()})
    return env


def test_the_settings_name_the_worker_by_its_port_or_for_port_0_by_the_url_it_wrote(tmp_path) -> None:
    assert url_of_settings(Settings(web_port=6070)) == "127.0.0.1:6070"
    assert url_of_settings(Settings(web_port=6070, web_bind="0.0.0.0")) == "127.0.0.1:6070"
    assert url_of_settings(Settings(web_port=6070, web_bind="10.1.2.3")) == "10.1.2.3:6070"
    settings = Settings(web_port=0, data_dir=str(tmp_path), topic_prefix="sandbox.")
    path = url_file(settings)
    assert path == tmp_path / "sandbox.motwatch" / "web.url"
    with pytest.raises(StatusError) as caught:
        url_of_settings(settings)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    path.parent.mkdir(parents=True)
    path.write_text("http://127.0.0.1:40123/metrics\n", encoding="utf-8")
    assert url_of_settings(settings) == "http://127.0.0.1:40123/metrics"


@pytest.mark.external
def test_the_status_command_prints_the_summary(worker: tuple[Metrics, Server]) -> None:
    _, server = worker
    done = run_cli("status", "--url", server.url, "--window", "0.2", env=status_env(), timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    window = re.match(
        rf"motwatch worker at {re.escape(server.url)}/metrics   \(rates over ([\d.]+) s\)\n", out
    )
    assert window and float(window.group(1)) >= 0.2, out
    assert "State         42 active journeys, 7 open timeouts" in out
    assert "Kafka         reachable (no outage since start)" in out
    assert server.reads == 2


@pytest.mark.external
def test_the_status_command_finds_the_worker_of_the_settings(worker: tuple[Metrics, Server]) -> None:
    _, server = worker
    port = int(server.url.rsplit(":", 1)[1])
    done = run_cli("status", "--window", "0", env=status_env(port), timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert f"127.0.0.1:{port}/metrics" in done.stdout.decode()


@pytest.mark.external
def test_the_status_command_finds_a_worker_on_port_0_by_the_url_it_wrote(
    worker: tuple[Metrics, Server], tmp_path: Path
) -> None:
    """``web_port = 0``: the worker wrote its URL under its data dir, where status looks."""
    _, server = worker
    env = status_env(0, data_dir="data", topic_prefix="sandbox.")
    done = run_cli("status", "--window", "0", env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 1 and done.stdout == b""
    err = done.stderr.decode()
    assert err.count("\n") == 1 and "data/sandbox.motwatch/web.url" in err and "--url" in err, err
    written = tmp_path / "data" / "sandbox.motwatch" / "web.url"
    written.parent.mkdir(parents=True)
    written.write_text(f"{server.url}/metrics\n", encoding="utf-8")
    done = run_cli("status", "--window", "0", env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith(f"motwatch worker at {server.url}/metrics ")
    assert server.reads == 2


@pytest.mark.external
def test_the_status_command_on_an_unreachable_worker_is_one_line_and_fails() -> None:
    port = free_port()  # nothing listens there
    done = run_cli("status", "--url", f"127.0.0.1:{port}", "--window", "0", env=status_env(), timeout=60)
    assert done.returncode == 1
    assert done.stdout == b""
    err = done.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(
        f"motwatch status: cannot reach a motwatch worker at http://127.0.0.1:{port}/metrics"
    )


@pytest.mark.external
def test_the_demo_prints_where_the_metrics_are_and_a_status_command_that_works(
    worker: tuple[Metrics, Server],
) -> None:
    _, server = worker
    port = int(server.url.rsplit(":", 1)[1])
    printed = "\n".join(where_to_look(port))
    url = re.search(r"metrics\s+(http://\S+)", printed).group(1)
    assert url == f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert b"motwatch_events_received_total" in response.read()
    command = shlex.split(re.search(r"status\s+(\S*motwatch status [^(]+)", printed).group(1))
    assert Path(command[0]).name == "motwatch" and command[1] == "status"
    done = run_cli(*command[1:], "--window", "0", env=status_env(), timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert f"motwatch worker at {url}" in done.stdout.decode()
