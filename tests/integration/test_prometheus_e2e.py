"""A real Prometheus scraping a real worker fed through the real broker: every expression works.

The worker runs against the session's Kafka broker; Prometheus (Debian's
binary, started here on 127.0.0.1 with its own data directory, stopped by
PID) scrapes its /metrics every second and evaluates grafana/rules/ every
second. Two batches of touchpoints go through ``motwatch produce``: the spec's
example journey (timestamps moved to the last hour) plus failing journeys of
most kinds and a few malformed messages; the second batch makes the counters
of the first go up (rates, ratios) and adds a recovery, a duplicate and a late
event.

Then every expression of the dashboards (Grafana's interval variables
replaced as Grafana would), of the recording rules and of the alerts is sent
to Prometheus's HTTP API: all must be valid, and all must return data except
the few listed in ``EMPTY_AFTER_THE_FEED`` with the reason. An expression with
an ``or vector(0)`` fallback returns data whatever happened, so it is checked
without the fallback, and for a value other than zero (which the feed makes:
rejects, a recovered checkout, a scraped worker). The alerts' own
conditions return data only while they fire: the two this feed must trip
(a burst of checkout errors, a broken link) must be firing, the rest are only
checked for validity. The broken-link alert fires once per channel (a dead
link on the site, one in a newsletter), the consumer lag names only the
agents' topics, and ``motwatch status`` summarises the same worker.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from motwatch.monitoring.generate import RULES_FILE
from motwatch.monitoring.inventory import Expression, expressions
from tests.workers import ServiceProcess, WorkerProcess, free_port, motwatch_env, run_cli, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples.jsonl"
# Two partitions, no lateness: the watermark follows the feed at once, so the timeouts in it
# (an abandoned checkout, an unanswered chat) fire within the test.
SETTINGS = {"partitions": 2, "allowed_lateness_s": 0, "idle_advance_s": 36000}

# Expressions that legitimately return nothing after this feed, and why.
EMPTY_AFTER_THE_FEED = {
    "alert MotwatchAbandonedCheckoutsAboveBaseline (Grafana query)": "its guard needs at least 20 checkouts "
    "started within the hour; the feed starts 3",
    "alert MotwatchNegativeReviewSpike (Grafana query)": "its guard needs at least 5 negative reviews within "
    "the hour; the feed posts 2",
    "alert MotwatchWritesFailing (value)": "every write succeeds, and motwatch_write_failures_total has "
    "a series per stream only from its first failed try",
    "motwatch-pipeline / Failed writes per second, by stream / A": "every write succeeds, and "
    "motwatch_write_failures_total has a series per stream only from its first failed try",
}
# Alert conditions this feed trips at once (for: 0m).
FIRING_AFTER_THE_FEED = {"MotwatchBrokenLinks", "MotwatchCheckoutErrorBurst"}
# "X or vector(0)" answers 0 when X has nothing: a fallback that would pass any check for data.
FALLBACK = re.compile(r"\s+or\s+vector\(0\)")


def data_check(expression: Expression) -> tuple[str, bool]:
    """What to ask Prometheus to show that ``expression`` has data, and whether a value must be
    non-zero: an expression with a fallback to 0 without it, and not 0."""
    stripped = FALLBACK.sub("", expression.promql)
    return stripped, stripped != expression.promql


# ---------------------------------------------------------------- the feed


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _event(event_id: str, at: datetime, key: str, channel: str, type_: str, **properties: Any) -> bytes:
    event: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": _stamp(at),
        "channel": channel,
        "type": type_,
    }
    event["customer_id" if key.startswith("cust") else "anonymous_id"] = key
    if properties:
        event["properties"] = properties
    return json.dumps(event, ensure_ascii=False).encode()


def feeds(now: datetime) -> tuple[list[bytes], list[bytes]]:
    """Two batches: the example journey and failing journeys, then more of the same and recoveries."""
    examples = [json.loads(line) for line in EXAMPLES.read_bytes().splitlines() if line.strip()]
    first_at = datetime.fromisoformat(examples[0]["occurred_at"].replace("Z", "+00:00"))
    shift = (now - timedelta(minutes=50)) - first_at
    first: list[bytes] = []
    for example in examples:  # 13:55-14:26 in the spec: now-50 min to now-19 min here
        at = datetime.fromisoformat(example["occurred_at"].replace("Z", "+00:00")) + shift
        first.append(json.dumps({**example, "occurred_at": _stamp(at)}, ensure_ascii=False).encode())
    ago = lambda minutes: now - timedelta(minutes=minutes)  # noqa: E731
    first += [
        # a checkout that nobody completes within 30 minutes: abandoned once the feed reaches now-15 min
        _event("e2e-ab-1", ago(46), "cust-ab", "web", "cart_add", product_id="desk", value=120.0),
        _event(
            "e2e-ab-2", ago(45), "cust-ab", "checkout", "checkout_started", cart_id="cart-ab", value=120.0
        ),
        # a chat nobody answers (SLA 60 s)
        _event("e2e-chat-1", ago(12), "cust-chat", "chat", "chat_started", chat_id="chat-x"),
        _event(
            "e2e-chat-2", ago(11.9), "cust-chat", "chat", "chat_message", chat_id="chat-x", sender="customer"
        ),
        # a broken link before any product page: ZMOT
        _event(
            "e2e-link-1",
            ago(10),
            "anon-link",
            "web",
            "page_view",
            url="https://shop.example/sale",
            http_status=404,
        ),
        # a product page left after 2 s on the first visit
        _event(
            "e2e-bounce-1",
            ago(9.5),
            "anon-bounce",
            "web",
            "page_view",
            url="https://shop.example/p/chair",
            page_category="product",
            product_id="chair",
        ),
        _event(
            "e2e-bounce-2",
            ago(9.4),
            "anon-bounce",
            "web",
            "page_exit",
            url="https://shop.example/p/chair",
            dwell_ms=2000,
            page_category="product",
            product_id="chair",
        ),
        # a one-star review and a detractor's survey answer
        _event(
            "e2e-review-1", ago(8), "cust-rev", "review", "review_posted", rating=1, text="Rozbité. Zklamání."
        ),
        _event("e2e-survey-1", ago(7), "cust-rev", "survey", "survey_response", metric="nps", score=3),
        # three more failed payments within three minutes: with the example's, a burst of four
        *(
            _event(
                f"e2e-pay-{i}",
                ago(6 - i),
                "cust-pay",
                "checkout",
                "payment_failed",
                cart_id=f"cart-p{i}",
                reason="card_declined",
            )
            for i in range(3)
        ),
        b'{"event_id": "e2e-bad-1", "occurred_at": ',  # not JSON
        _event("e2e-tail-1", ago(1), "anon-tail", "web", "page_view", url="https://shop.example/"),
    ]
    second = [
        # the abandoned checkout's order arrives after all: a recovery
        _event(
            "e2e-ab-3",
            ago(0.9),
            "cust-ab",
            "checkout",
            "order_completed",
            order_id="ord-ab",
            cart_id="cart-ab",
        ),
        _event("e2e-ab-4", ago(0.85), "cust-ab2", "checkout", "checkout_started", cart_id="cart-ab2"),
        # a dead link in a newsletter: a broken link on the email channel (owner marketing)
        _event(
            "e2e-link-3",
            ago(0.82),
            "cust-news",
            "email",
            "link_click",
            url="newsletter-2026-11",
            target_url="https://shop.example/expired-offer",
            http_status=404,
        ),
        # a second broken link, a second bounce, a second negative review, a chat answered in 20 s
        _event(
            "e2e-link-2",
            ago(0.8),
            "anon-link2",
            "web",
            "link_click",
            url="https://shop.example/blog",
            target_url="https://shop.example/old",
            http_status=410,
        ),
        _event(
            "e2e-bounce-3",
            ago(0.75),
            "anon-bounce2",
            "web",
            "page_view",
            url="https://shop.example/p/lamp",
            page_category="product",
            product_id="lamp",
        ),
        _event(
            "e2e-bounce-4",
            ago(0.7),
            "anon-bounce2",
            "web",
            "page_exit",
            url="https://shop.example/p/lamp",
            dwell_ms=1500,
            page_category="product",
            product_id="lamp",
        ),
        _event("e2e-review-2", ago(0.65), "cust-rev2", "review", "review_posted", rating=2),
        _event("e2e-chat-3", ago(0.6), "cust-chat2", "chat", "chat_started", chat_id="chat-y"),
        _event(
            "e2e-chat-4",
            ago(0.6) + timedelta(seconds=20),
            "cust-chat2",
            "chat",
            "chat_message",
            chat_id="chat-y",
            sender="agent",
        ),
        _event("e2e-pay-9", ago(0.5), "cust-pay2", "checkout", "payment_failed", cart_id="cart-p9"),
        # the example's first event again (a duplicate), and an event older than the watermark (late)
        first[2],
        _event("e2e-late-1", ago(40), "cust-42", "web", "page_view", url="https://shop.example/faq"),
        b"\xff\xfe not even UTF-8",
        _event("e2e-bad-2", ago(0.4), "anon-bad", "web", "page_view", url="https://shop.example/").replace(
            b'"occurred_at": "', b'"occurred_at": "yesterday '
        ),
        # ordinary traffic
        *(
            _event(
                f"e2e-traffic-{i}",
                ago(0.3) + timedelta(milliseconds=10 * i),
                f"anon-t{i % 7}",
                "web",
                "page_view",
                url=f"https://shop.example/c/{i}",
                page_category="content",
            )
            for i in range(40)
        ),
        _event("e2e-tail-2", ago(0.05), "anon-tail", "web", "page_view", url="https://shop.example/"),
    ]
    return first, second


# ---------------------------------------------------------------- Prometheus


class Prometheus(ServiceProcess):
    """Debian's prometheus binary on 127.0.0.1:<free port>, its data in a temporary folder."""

    name = "prometheus"

    def __init__(self, workdir: Path, worker_port: int, extra_args: Sequence[str] = ()) -> None:
        super().__init__(workdir)
        self.extra_args = list(extra_args)  # more command-line flags, e.g. --enable-feature=…
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(REPO / RULES_FILE)],
            "scrape_configs": [
                {"job_name": "motwatch", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]}
            ],
        }
        self.config = config
        self.configure()

    def configure(self, rules: Path | None = None, alertmanager: str | None = None) -> None:
        """Evaluate ``rules`` (default: grafana/rules/) and send alerts to ``alertmanager`` (host:port)."""
        if rules is not None:
            self.config["rule_files"] = [str(rules)]
        if alertmanager is not None:
            self.config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(self.config), encoding="utf-8")

    def start(self, timeout: float = 30) -> Prometheus:
        self.spawn_installed(
            "prometheus",
            "prometheus",
            [
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *self.extra_args,
            ],
        )

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    return response.status == 200
            except (urllib.error.URLError, OSError):
                return False

        self.wait_ready(answers, timeout, interval=0.2)
        return self

    def api(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400 for a bad expression, with the reason in the body
            return json.loads(exc.read())

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)

    def has_data(self, expr: str, nonzero: bool = False) -> bool:
        """A successful query with a result (with ``nonzero``: a sample other than 0)."""
        answer = self.query(expr)
        if answer["status"] != "success":
            return False
        result = answer["data"]["result"]
        if nonzero:
            return any(float(series["value"][1]) != 0 for series in result)
        return bool(result)

    def wait_scraping(self) -> None:
        """Until the worker's series are in Prometheus (then counters are seen going up)."""
        wait_until(
            lambda: self.has_data('motwatch_events_received_total{job="motwatch"}'),
            30,
            "prometheus to scrape the worker",
            interval=0.2,
        )

    def firing(self) -> set[str]:
        alerts = self.api("alerts")["data"]["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


# ---------------------------------------------------------------- the test


def test_every_dashboard_and_rule_expression_works_against_a_real_worker(
    kafka_bootstrap, topic_prefix, tmp_path
):
    env = motwatch_env(kafka_bootstrap, topic_prefix, **SETTINGS)
    first, second = feeds(datetime.now(UTC))
    (tmp_path / "first.jsonl").write_bytes(b"\n".join(first) + b"\n")
    (tmp_path / "second.jsonl").write_bytes(b"\n".join(second) + b"\n")

    exprs = expressions()
    assert set(EMPTY_AFTER_THE_FEED) <= {e.where for e in exprs}, "a listed exemption names no expression"
    must_have_data = [e for e in exprs if e.role != "alert" and e.where not in EMPTY_AFTER_THE_FEED]
    must_have_data += [e for e in exprs if e.role == "alert" and e.where.split()[1] in FIRING_AFTER_THE_FEED]
    # The fallbacks this check sees through: rejected rates and ratios, the recovered-checkout
    # ratio, the count of workers.
    assert any(data_check(e)[1] for e in must_have_data), "no fallback to 0 found: is FALLBACK stale?"

    prometheus = Prometheus(tmp_path / "prometheus", int(env["MOTWATCH_WEB_PORT"]))
    with WorkerProcess(env, tmp_path / "w") as worker:
        try:
            prometheus.start()
            prometheus.wait_scraping()

            done = run_cli("produce", str(tmp_path / "first.jsonl"), env=env)
            assert done.returncode == 0, done.stderr.decode()
            # Processed, timeouts included: the abandoned checkout and the unanswered chat are reported.
            wait_until(
                lambda: (
                    prometheus.has_data('motwatch_moments_total{kind="abandoned_checkout"}')
                    and prometheus.has_data('motwatch_moments_total{kind="chat_unanswered"}')
                ),
                40,
                "the first batch's moments to reach Prometheus",
                interval=0.25,
            )

            done = run_cli("produce", str(tmp_path / "second.jsonl"), env=env)
            assert done.returncode == 0, done.stderr.decode()

            missing: list[Expression] = list(must_have_data)

            def all_have_data() -> bool:
                missing[:] = [e for e in missing if not prometheus.has_data(*data_check(e))]
                return not missing

            try:
                wait_until(all_have_data, 45, "every expression to return data", interval=0.5)
            except AssertionError:
                lines = [f"  {e.where}: {data_check(e)[0]}" for e in missing]
                raise AssertionError(
                    "no data after the feed for:\n"
                    + "\n".join(lines)
                    + f"\nworker log:\n{worker.log()[-2000:]}"
                ) from None

            problems = []
            for expression in exprs:
                answer = prometheus.query(expression.promql)
                if answer["status"] != "success":
                    problems.append(f"{expression.where}: {answer.get('error')}")
            assert problems == [], "Prometheus refused:\n" + "\n".join(problems)

            firing = prometheus.firing()
            assert firing >= FIRING_AFTER_THE_FEED, firing
            assert not {"MotwatchWorkerDown", "MotwatchWorkerMissing", "MotwatchWorkerStalled"} & firing
            rules = prometheus.api("rules")["data"]["groups"]
            assert all(rule["health"] == "ok" for group in rules for rule in group["rules"]), rules

            # Moments carry the channel of their touchpoint, and the broken-link alert routes on it.
            def broken_links_by_channel(expr: str) -> set[tuple[str, str]]:
                result = prometheus.query(expr)["data"]["result"]
                return {(r["metric"]["channel"], r["metric"]["owner"]) for r in result}

            both = {("web", "web"), ("email", "marketing")}
            wait_until(
                lambda: broken_links_by_channel('motwatch_moments_total{kind="broken_link"}') == both,
                20,
                "broken links on the web and email channels",
                interval=0.25,
            )
            wait_until(
                lambda: (
                    broken_links_by_channel('ALERTS{alertname="MotwatchBrokenLinks", alertstate="firing"}')
                    == both
                ),
                20,
                "MotwatchBrokenLinks to fire for each channel",
                interval=0.25,
            )

            # Consumer lag: the agents' topics only, never a table changelog or Faust's own topics.
            def lag_topics() -> set[str]:
                answer = prometheus.query("count by (topic) (motwatch_consumer_lag_messages)")
                return {r["metric"]["topic"] for r in answer["data"]["result"]}

            agents_topics = {f"{topic_prefix}touchpoints", f"{topic_prefix}touchpoints-by-journey"}
            wait_until(lambda: lag_topics() == agents_topics, 20, "consumer lag of the agents' topics")

            # `motwatch status` reads the same worker directly.
            done = run_cli(
                "status", "--url", f"127.0.0.1:{env['MOTWATCH_WEB_PORT']}", "--window", "0.5", env=env
            )
            assert done.returncode == 0, done.stderr.decode()
            summary = done.stdout.decode()
            rows = {
                line.split()[0]: line.split()[1:3] for line in summary.splitlines() if line.startswith("  ")
            }
            assert rows["checkout_error"] == ["5", "0"], summary
            assert rows["abandoned_checkout"] == ["1", "1"], summary
            assert "invalid_json 2" in summary and "bad_timestamp 1" in summary, summary
            assert f"{topic_prefix}touchpoints " in summary and "changelog" not in summary, summary
            assert worker.alive()
        finally:
            prometheus.stop()
