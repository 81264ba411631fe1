"""``motwatch status``: a one-screen summary of a running worker, from its /metrics.

The worker's metrics are read twice, ``window_s`` apart; counters give totals
since the worker started and rates over the window, gauges give the state at
the second read (whether it reaches Kafka, consumer lag, watermarks, journeys
held, open timeouts).
Nothing here needs Prometheus: it reads the worker directly.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from motwatch.commands.common import UsageError, add_config, positive
from motwatch.settings import Settings, load_settings

DEFAULT_URL = "http://127.0.0.1:6066/metrics"

Labels = tuple[tuple[str, str], ...]


class StatusError(Exception):
    """The worker could not be read; the message is one line for the person who asked."""


@dataclass(frozen=True)
class Snapshot:
    """One read of /metrics: every sample by (name, labels)."""

    samples: dict[tuple[str, Labels], float]
    wall_s: float  # when it was read (seconds since the epoch)

    def values(self, name: str) -> dict[Labels, float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    def total(self, name: str) -> float:
        return sum(self.values(name).values())

    def by(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for labels, value in self.values(name).items():
            out[dict(labels).get(label, "")] += value
        return dict(out)


def split_worker_url(url: str) -> urllib.parse.SplitResult:
    """A worker's web address as given (``host:port`` or a URL), split; http when it names no scheme."""
    return urllib.parse.urlsplit(url if "://" in url else f"http://{url}")


def metrics_url(url: str) -> str:
    """``host:port``, a base URL or the /metrics URL itself, as the /metrics URL."""
    parts = split_worker_url(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path="/metrics")
    return urllib.parse.urlunsplit(parts)


def parse(text: str, wall_s: float) -> Snapshot:
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return Snapshot(samples, wall_s)


def read(url: str, timeout: float = 5.0) -> Snapshot:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        raise StatusError(f"cannot read {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise StatusError(f"cannot reach a motwatch worker at {url}: {exc.reason}") from None
    except (OSError, TimeoutError) as exc:
        raise StatusError(f"cannot reach a motwatch worker at {url}: {exc}") from None
    try:
        snapshot = parse(text, time.time())
    except ValueError as exc:
        raise StatusError(f"{url} does not serve Prometheus metrics: {exc}") from None
    if not any(name.startswith("motwatch_") for name, _ in snapshot.samples):
        raise StatusError(f"{url} serves no motwatch metrics: is it a motwatch worker?")
    return snapshot


def status(url: str, window_s: float) -> str:
    """Read the worker twice, ``window_s`` apart, and summarise it on one screen."""
    url = metrics_url(url)
    first = read(url)
    started = time.monotonic()
    time.sleep(max(0.0, window_s))  # the window the rates are measured over
    second = read(url)
    return summarize(first, second, time.monotonic() - started, url)


# ---------------------------------------------------------------- formatting


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _rate(value: float) -> str:
    return f"{value:,.1f}/s" if value < 100 else f"{value:,.0f}/s"


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 60:
        text = f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"
    else:
        text = f"{int(seconds // 86400)}d {int(seconds % 86400 // 3600):02d}h"
    return sign + text


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The ``q`` quantile of cumulative histogram buckets (upper bound, count), as Prometheus estimates it."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return math.nan
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower  # the highest finite bound, as histogram_quantile does
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return ordered[-1][0]


def _buckets(snapshot: Snapshot, name: str) -> list[tuple[float, float]]:
    return [(float(dict(labels)["le"]), v) for labels, v in snapshot.values(f"{name}_bucket").items()]


def _plural(count: float, word: str) -> str:
    return f"{_count(count)} {word}{'' if count == 1 else 's'}"


def kafka_line(snapshot: Snapshot) -> str | None:
    """Whether the worker reaches Kafka, how long it has not, or how long its last outage was;
    None for a worker that does not probe Kafka."""
    reachable = snapshot.samples.get(("motwatch_kafka_reachable", ()))
    if reachable is None:
        return None
    outages = _plural(snapshot.total("motwatch_kafka_outages_total"), "outage")
    if math.isnan(reachable):
        return "Kafka         not probed yet"
    if reachable == 0:
        down = _duration(snapshot.total("motwatch_kafka_unreachable_seconds"))
        return f"Kafka         UNREACHABLE for {down} ({outages} since start)"
    ended = snapshot.total("motwatch_kafka_last_outage_end_timestamp_seconds")
    if not ended:
        return "Kafka         reachable (no outage since start)"
    lasted = _duration(snapshot.total("motwatch_kafka_last_outage_seconds"))
    when = datetime.fromtimestamp(ended, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return f"Kafka         reachable (last outage {lasted}, ended {when}; {outages} since start)"


def summarize(before: Snapshot, after: Snapshot, elapsed_s: float, url: str) -> str:
    """The one-screen text, from two reads ``elapsed_s`` apart."""
    elapsed = max(elapsed_s, 1e-9)

    def rate(name: str) -> float:
        return max(0.0, after.total(name) - before.total(name)) / elapsed

    lines = [f"motwatch worker at {url}   (rates over {elapsed_s:.1f} s)", ""]
    kafka = kafka_line(after)
    if kafka is not None:
        lines.append(kafka)
    lines.append(
        "Throughput    "
        f"in {_rate(rate('motwatch_events_received_total'))}   "
        f"accepted {_rate(rate('motwatch_events_accepted_total'))}   "
        f"rejected {_rate(rate('motwatch_events_rejected_total'))}   "
        f"moments {_rate(rate('motwatch_moments_total'))}"
    )
    lines.append(
        "Since start   "
        f"in {_count(after.total('motwatch_events_received_total'))}   "
        f"accepted {_count(after.total('motwatch_events_accepted_total'))}   "
        f"rejected {_count(after.total('motwatch_events_rejected_total'))}   "
        f"duplicates {_count(after.total('motwatch_events_duplicate_total'))}   "
        f"late {_count(after.total('motwatch_events_late_total'))}"
    )
    rejected = after.by("motwatch_events_rejected_total", "reason")
    rejected_before = before.by("motwatch_events_rejected_total", "reason")
    if rejected:
        parts = []
        for reason, total in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])):
            recent = max(0.0, total - rejected_before.get(reason, 0.0)) / elapsed
            parts.append(f"{reason} {_count(total)} ({_rate(recent)})")
        lines.append("Rejected      " + ", ".join(parts))
    else:
        lines.append("Rejected      none")

    # The worker reports the topics its agents read, per partition it holds.
    lag = after.values("motwatch_consumer_lag_messages")
    if lag:
        per_topic: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for labels, value in lag.items():
            d = dict(labels)
            per_topic[d.get("topic", "?")].append((int(d.get("partition", "0")), value))
        parts = []
        for topic, partitions in sorted(per_topic.items()):
            detail = " ".join(f"p{p}:{_count(v)}" for p, v in sorted(partitions))
            parts.append(f"{topic} {_count(sum(v for _, v in partitions))} [{detail}]")
        lines.append(f"Consumer lag  {_count(sum(lag.values()))} messages: " + "; ".join(parts))
    else:
        lines.append("Consumer lag  not reported yet (refreshed every 15 s)")

    watermarks = after.values("motwatch_watermark_seconds")
    if watermarks:
        parts = [
            f"p{dict(labels).get('partition', '?')} {_duration(after.wall_s - value)}"
            for labels, value in sorted(
                watermarks.items(), key=lambda kv: int(dict(kv[0]).get("partition", 0))
            )
        ]
        lines.append("Watermark     behind the wall clock: " + ", ".join(parts))
    else:
        lines.append("Watermark     none yet (no tick processed)")

    event_lag = _buckets(after, "motwatch_event_lag_seconds")
    lines.append(
        f"Event lag     p50 {_duration(quantile(0.5, event_lag))}, p95 {_duration(quantile(0.95, event_lag))}"
        "   (now - occurred_at, since start)"
    )
    lines.append(
        f"State         {_count(after.total('motwatch_active_journeys'))} active journeys, "
        f"{_count(after.total('motwatch_open_timeouts'))} open timeouts"
    )
    lines.append("")

    kinds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    recent: dict[str, float] = defaultdict(float)
    for labels, value in after.values("motwatch_moments_total").items():
        d = dict(labels)
        kinds[d.get("kind", "?")][d.get("status", "?")] += value
    for labels, value in before.values("motwatch_moments_total").items():
        recent[dict(labels).get("kind", "?")] -= value
    for kind, statuses in kinds.items():
        recent[kind] += sum(statuses.values())
    if kinds:
        width = max(20, *(len(k) for k in kinds))
        recent_header = f"last {elapsed_s:.0f} s"
        lines.append(f"{'Moments since start':<{width + 2}}{'failed':>8}{'recovered':>11}{recent_header:>12}")
        for kind in sorted(kinds, key=lambda k: (-kinds[k].get("failed", 0.0), k)):
            lines.append(
                f"  {kind:<{width}}{_count(kinds[kind].get('failed', 0.0)):>8}"
                f"{_count(kinds[kind].get('recovered', 0.0)):>11}{'+' + _count(max(0.0, recent[kind])):>12}"
            )
    else:
        lines.append("Moments since start: none")
    return "\n".join(lines) + "\n"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="a one-screen summary of a running worker, from its /metrics")
    p.add_argument(
        "--url",
        metavar="URL",
        help="the worker: host:port, its base URL or its /metrics URL (default: web_port of the "
        "settings; for port 0, the URL the worker wrote to <data_dir>/<app id>/web.url)",
    )
    p.add_argument(
        "--window",
        metavar="SECONDS",
        type=positive(float),
        default=5.0,
        help="read the worker twice this far apart; rates are over this window (default: 5)",
    )
    add_config(p)
    p.set_defaults(func=run)


def url_of_settings(settings: Settings) -> str:
    """The worker the settings describe: on its ``web_port``, or, for port 0 (a free port), at
    the URL the running worker wrote to ``<data_dir>/<worker app id>/web.url``."""
    if settings.web_port:
        host = "127.0.0.1" if settings.web_bind in ("", "0.0.0.0", "::") else settings.web_bind
        return f"{host}:{settings.web_port}"
    from motwatch.streams.web import url_file

    path = url_file(settings)
    try:
        url = path.read_text(encoding="utf-8").strip()
    except OSError:
        url = ""
    if not url:
        raise StatusError(
            f"web_port is 0 (a free port) and no worker wrote its URL to {path} (data_dir is "
            "relative to the current directory): is one running with these settings? Else give --url"
        )
    return url


def run(args: argparse.Namespace) -> int:
    try:
        url = args.url or url_of_settings(load_settings(args.config))
        sys.stdout.write(status(url, args.window))
    except StatusError as exc:
        raise UsageError(str(exc)) from None
    return 0
