"""From a point on a dashboard to the moment: a real Prometheus stores the worker's exemplars, and
each one's ``moment_id`` is a moment ``motwatch moments --id`` finds on the real broker.

A worker runs against the session's broker; Debian's Prometheus, started with
``--enable-feature=exemplar-storage`` (the class of ``test_prometheus_e2e``),
scrapes it every second, asking for OpenMetrics as it does by default. A
customer's failed payment and a broken link go through ``motwatch produce``.
Prometheus's exemplar API is then asked with the dashboards' own queries (the
failing-moments panel and the detection-latency panel), as Grafana asks it:
every exemplar is a ``moment_id`` and nothing else, and ``motwatch moments
--id`` finds that moment, of the kind of the series the exemplar is on.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from motwatch.monitoring.definitions import OVERVIEW
from motwatch.monitoring.promql import substitute_grafana_variables
from tests.integration.test_prometheus_e2e import SETTINGS, Prometheus, _event
from tests.workers import WorkerProcess, motwatch_env, run_cli, wait_until

pytestmark = pytest.mark.integration

CUSTOMER = "cust-exemplar-7"
ANONYMOUS = "anon-exemplar-8"
FAILING_KINDS = {"checkout_error", "broken_link"}
# The dashboard panels whose queries Grafana sends to the exemplar API.
PANELS = ("Failing moments per hour, by kind", "Detection latency p50 / p95 (last 15 min)")


def failing_journeys(now: datetime) -> list[bytes]:
    ago = lambda seconds: now - timedelta(seconds=seconds)  # noqa: E731
    return [
        _event("ex-cart-1", ago(30), CUSTOMER, "web", "cart_add", product_id="desk", value=120.0),
        _event(
            "ex-pay-1", ago(20), CUSTOMER, "checkout", "payment_failed", cart_id="cart-ex", reason="declined"
        ),
        _event(
            "ex-link-1",
            ago(10),
            ANONYMOUS,
            "web",
            "page_view",
            url="https://shop.example/gone",
            http_status=404,
        ),
    ]


def exemplars_of(prometheus: Prometheus, query: str) -> list[dict[str, Any]]:
    """What Prometheus's exemplar API answers for ``query`` over the last 10 minutes: one entry per
    exemplar, with the labels of its series."""
    now = time.time()
    answer = prometheus.api("query_exemplars", query=query, start=str(now - 600), end=str(now + 60))
    assert answer["status"] == "success", answer
    return [
        {"series": series["seriesLabels"], **exemplar}
        for series in answer["data"] or []
        for exemplar in series["exemplars"]
    ]


def panel_queries(title: str) -> list[str]:
    return [substitute_grafana_variables(t.expr) for t in OVERVIEW.panel(title).targets if t.exemplars]


def test_an_exemplar_on_a_dashboard_s_query_leads_to_its_moment(kafka_bootstrap, topic_prefix, tmp_path):
    env = motwatch_env(kafka_bootstrap, topic_prefix, **SETTINGS)
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(failing_journeys(datetime.now(UTC))) + b"\n")
    queries = {title: panel_queries(title) for title in PANELS}
    assert all(queries.values()), queries

    prometheus = Prometheus(
        tmp_path / "prometheus",
        int(env["MOTWATCH_WEB_PORT"]),
        extra_args=["--enable-feature=exemplar-storage"],
    )
    with WorkerProcess(env, tmp_path / "w") as worker:
        try:
            prometheus.start()
            done = run_cli("produce", str(feed), env=env)
            assert done.returncode == 0, done.stderr.decode()

            found: dict[str, list[dict[str, Any]]] = {}

            def both_kinds_on_every_panel() -> bool:
                for title, exprs in queries.items():
                    found[title] = [e for expr in exprs for e in exemplars_of(prometheus, expr)]
                return all(
                    {e["series"].get("kind") for e in found[title]} >= FAILING_KINDS for title in PANELS
                )

            try:
                wait_until(both_kinds_on_every_panel, 60, "exemplars of both failing moments", interval=0.5)
            except AssertionError:
                raise AssertionError(f"exemplars: {found}\nworker log:\n{worker.log()[-2000:]}") from None

            ids: dict[str, str] = {}
            for title in PANELS:
                for exemplar in found[title]:
                    # Only the moment's id: no customer, journey or URL reaches Prometheus this way.
                    assert set(exemplar["labels"]) == {"moment_id"}, exemplar
                    kind = exemplar["series"]["kind"]
                    assert ids.setdefault(exemplar["labels"]["moment_id"], kind) == kind, exemplar
            assert all(
                CUSTOMER not in json.dumps(found[t]) and ANONYMOUS not in json.dumps(found[t]) for t in PANELS
            )

            for moment_id, kind in ids.items():
                done = run_cli("moments", "--id", moment_id, "--json", env=env)
                assert done.returncode == 0, done.stderr.decode()
                moments = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
                assert [(m["moment_id"], m["kind"], m["status"]) for m in moments] == [
                    (moment_id, kind, "failed")
                ], done.stdout.decode()
            assert {kind for kind in ids.values()} == FAILING_KINDS
            assert worker.alive()
        finally:
            prometheus.stop()
