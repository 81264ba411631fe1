"""Targets, ratios to the baselines of the same run, and the table printed at the end.

Every events/s figure read from the end-to-end topic (raw client, naive Faust,
end to end, core) is also given as a ratio to the peer, the bare Quix Streams
app of the same run: what the fixed choice of Faust costs against the library a
user would otherwise pick.
"""

from __future__ import annotations

from typing import Any

# The targets. Reached ones are raised, not celebrated: edit them here when they are.
TARGETS = {
    "core_events_per_s": 150_000,
    "e2e_events_per_s_per_worker": 50_000,
    "e2e_ratio_to_raw": 0.5,
    "latency_p99_ms": 50,
    # A reached target is raised, not celebrated.
    "memory_bytes_per_journey": 512,
    # Seconds from kill -9 of a worker holding a million journeys to its successor's first moment.
    "resume_after_kill_s": 10,
    # End to end against the bare Faust agent of the same run, and journey states written to the
    # changelog per input event (each changed journey once per offset commit, not once per batch).
    "e2e_ratio_to_naive_faust": 0.8,
    "changelog_records_per_event": 0.2,
    # RSS growth of the end-to-end worker per journey it holds.
    "e2e_bytes_per_journey_live": 1024,
    # Share of the end-to-end worker's main-thread samples idle in the selector, on its backlog.
    "e2e_idle_share": 0.05,
}
# The size the resume target is for.
RESUME_TARGET_JOURNEYS = 1_000_000


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _ratio(a: float | None, b: float | None, digits: int = 4) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def evaluate(result: dict[str, Any]) -> None:
    """Add ``ratios``, ``targets`` and derived figures (predictions, memory per journey) to a result."""
    f = result["figures"]
    raw = _get(f, "raw_client", "events_per_s")
    naive = _get(f, "naive_faust", "events_per_s")
    peer = _get(f, "quix_peer", "events_per_s")
    core = _get(f, "core", "events_per_s")
    e2e = f.get("e2e") or {}
    e2e_rate = e2e.get("events_per_s_per_worker")
    ratios = {
        "naive_faust_to_raw": _ratio(naive, raw),
        "e2e_to_raw": _ratio(e2e.get("events_per_s"), raw),
        "e2e_to_naive_faust": _ratio(e2e.get("events_per_s"), naive),
        "e2e_to_core": _ratio(e2e.get("events_per_s"), core),
        "core_to_raw": _ratio(core, raw),
        "quix_peer_to_raw": _ratio(peer, raw),
        "raw_to_quix_peer": _ratio(raw, peer),
        "naive_faust_to_quix_peer": _ratio(naive, peer),
        "e2e_to_quix_peer": _ratio(e2e.get("events_per_s"), peer),
        "core_to_quix_peer": _ratio(core, peer),
        "naive_faust_cpu_to_quix_peer": _ratio(
            _get(f, "naive_faust", "cpu_us_per_event"), _get(f, "quix_peer", "cpu_us_per_event")
        ),
    }
    # Live memory: RSS growth of the end-to-end worker over the journeys it holds at the end.
    journeys = _get(e2e, "active_journeys", "journeys")
    ready = _get(e2e, "rss_ready_kib", "worker0")
    held = _get(e2e, "active_journeys", "rss_kib", "worker0")
    if journeys and ready and held:
        e2e["bytes_per_journey_live"] = round((held - ready) * 1024 / journeys)
    if e2e and e2e.get("worker_cpu_s") and e2e.get("complete"):
        cpu = sum(v for v in e2e["worker_cpu_s"].values() if v)
        e2e["worker_cpu_us_per_event"] = round(cpu / e2e["events"] * 1e6, 1)
        if e2e.get("broker_cpu_s"):
            e2e["broker_cpu_us_per_event"] = round(e2e["broker_cpu_s"] / e2e["events"] * 1e6, 1)
    mem = f.get("memory") or {}
    points = {p["journeys"]: p.get("bytes_per_journey") for p in mem.get("points", [])}
    if len(points) >= 2:
        sizes = sorted(points)
        ratios["memory_largest_to_smallest"] = _ratio(points[sizes[-1]], points[sizes[0]], 3)
    scaling = f.get("scaling") or {}
    one, two = scaling.get("workers_1") or {}, scaling.get("workers_2") or {}
    if one.get("events_per_s") and two.get("events_per_s"):
        ratios["scaling_2_to_1"] = _ratio(two["events_per_s"], one["events_per_s"], 3)
    if one.get("complete") and one.get("worker_cpu_s"):
        # Separate machines: each worker on a core of its own runs at its CPU-bound rate.
        cpu = sum(v for v in one["worker_cpu_s"].values() if v)
        own_core = one["events"] / cpu if cpu else None
        broker = one["events"] / one["broker_cpu_s"] if one.get("broker_cpu_s") else None
        scaling["prediction"] = {
            "per_worker_on_its_own_core": round(own_core) if own_core else None,
            "broker_events_per_core_s": round(broker) if broker else None,
            "two_workers_separate_machines": round(min(2 * own_core, broker or 2 * own_core))
            if own_core
            else None,
            "basis": "events / worker CPU seconds of the 1-worker run (CPU-bound), capped by the broker's "
            "events per CPU second",
        }
    resumes = {
        (p["store"], p["journeys"]): p.get("seconds") for p in (f.get("recovery") or {}).get("points", [])
    }
    for (store, n), seconds in resumes.items():
        if store != "memory://":
            ratios[f"resume_{store.split(':')[0]}_to_memory_{n}"] = _ratio(
                seconds, resumes.get(("memory://", n))
            )
    col = f.get("collector") or {}
    ratios["collector_to_raw_producer"] = _ratio(
        col.get("events_per_s"), _get(col, "raw_producer", "events_per_s")
    )
    ratios["collector_p99_to_raw_producer_p99"] = _ratio(
        col.get("p99_ms"), _get(col, "raw_producer", "p99_ms")
    )
    result["ratios"] = ratios
    lat = f.get("latency") or {}
    mem_values = [v for v in points.values() if v is not None]
    result["targets"] = {
        "core_events_per_s": _target(core, TARGETS["core_events_per_s"], ">="),
        "e2e_events_per_s_per_worker": _target(
            e2e_rate if e2e.get("complete") else None, TARGETS["e2e_events_per_s_per_worker"], ">="
        ),
        "e2e_ratio_to_raw": _target(
            ratios["e2e_to_raw"] if e2e.get("complete") else None, TARGETS["e2e_ratio_to_raw"], ">="
        ),
        "latency_p99_ms": _target(lat.get("p99_ms"), TARGETS["latency_p99_ms"], "<="),
        "memory_bytes_per_journey": _target(
            max(mem_values) if mem_values else None, TARGETS["memory_bytes_per_journey"], "<="
        ),
        "resume_after_kill_s": _target(
            resumes.get(("rocksdb://", RESUME_TARGET_JOURNEYS)), TARGETS["resume_after_kill_s"], "<="
        ),
        "e2e_ratio_to_naive_faust": _target(
            ratios["e2e_to_naive_faust"] if e2e.get("complete") else None,
            TARGETS["e2e_ratio_to_naive_faust"],
            ">=",
        ),
        "changelog_records_per_event": _target(
            e2e.get("changelog_records_per_event"), TARGETS["changelog_records_per_event"], "<="
        ),
        "e2e_bytes_per_journey_live": _target(
            e2e.get("bytes_per_journey_live"), TARGETS["e2e_bytes_per_journey_live"], "<="
        ),
        "e2e_idle_share": _target(_get(e2e, "profile", "idle_share"), TARGETS["e2e_idle_share"], "<="),
    }


def _target(value: float | None, target: float, op: str) -> dict[str, Any]:
    if value is None:
        return {"target": target, "op": op, "value": None, "met": None}
    met = value >= target if op == ">=" else value <= target
    return {"target": target, "op": op, "value": value, "met": met, "of_target": round(value / target, 3)}


def _n(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text}{unit}"


def _mark(t: dict[str, Any] | None) -> str:
    if not t or t.get("met") is None:
        return ""
    sign = "≥" if t["op"] == ">=" else "≤"
    return f"{sign} {_n(t['target'])}: {'met' if t['met'] else 'MISSED'} ({t['of_target']:.3g}×)"


def _prev(previous: dict[str, Any] | None, *path: str, now: float | None) -> str:
    before = _get(previous, "figures", *path) if previous else None
    if before is None or now is None or not before:
        return ""
    return f"{now / before:.2f}× prev"


def table(result: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    f, r, t = result["figures"], result["ratios"], result["targets"]
    m = result["machine"]
    rows: list[tuple[str, str, str, str, str]] = []

    def row(name: str, value: str, vs: str = "", target: str = "", prev: str = "") -> None:
        rows.append((name, value, vs, target, prev))

    raw = f.get("raw_client") or {}
    naive = f.get("naive_faust") or {}
    peer = f.get("quix_peer") or {}
    core = f.get("core") or {}
    e2e = f.get("e2e") or {}
    lat = f.get("latency") or {}
    mem = f.get("memory") or {}
    sc = f.get("scaling") or {}
    ev = "ev/s"
    if raw:
        row(
            f"raw client ceiling (aiokafka + orjson, {_n(raw.get('events'))} events)",
            _n(raw.get("events_per_s"), f" {ev}"),
            f"baseline; {_n(r.get('raw_to_quix_peer'))}× peer",
            prev=_prev(previous, "raw_client", "events_per_s", now=raw.get("events_per_s")),
        )
    if naive:
        row(
            f"naive Faust (pydantic, one at a time, {_n(naive.get('events'))} events)",
            _bare_value(naive),
            f"{_n(r.get('naive_faust_to_raw'))}× raw, {_n(r.get('naive_faust_to_quix_peer'))}× peer",
            prev=_prev(previous, "naive_faust", "events_per_s", now=naive.get("events_per_s")),
        )
    if peer:
        row(
            f"peer: bare Quix Streams {peer.get('quixstreams', '')} (pydantic {peer.get('pydantic', '')}, "
            f"one at a time, {_n(peer.get('events'))} events)",
            _bare_value(peer),
            f"baseline; {_n(r.get('quix_peer_to_raw'))}× raw; "
            f"naive Faust's CPU per event {_n(r.get('naive_faust_cpu_to_quix_peer'))}× its",
            prev=_prev(previous, "quix_peer", "events_per_s", now=peer.get("events_per_s")),
        )
    if e2e:
        label = "motwatch end to end (1 worker, {p} partitions, {e} events{c})".format(
            p=e2e.get("partitions"),
            e=_n(e2e.get("events")),
            c=("" if e2e.get("complete") else f"; PARTIAL: {_n(e2e.get('events_applied'))} applied in time")
            + _disagreement(e2e),
        )
        row(
            label,
            _n(e2e.get("events_per_s"), f" {ev}"),
            f"{_n(r.get('e2e_to_raw'))}× raw, {_n(r.get('e2e_to_naive_faust'))}× naive Faust, "
            f"{_n(r.get('e2e_to_quix_peer'))}× peer",
            " · ".join(
                x
                for x in (
                    _mark(t.get("e2e_events_per_s_per_worker")),
                    _mark(t.get("e2e_ratio_to_raw")),
                    _mark(t.get("e2e_ratio_to_naive_faust")),
                )
                if x
            ),
            _prev(previous, "e2e", "events_per_s", now=e2e.get("events_per_s")),
        )
        if e2e.get("changelog_records_per_event") is not None:
            row(
                "  journey states written to the changelog",
                f"{_n(e2e.get('changelog_records_per_event'))} per event",
                f"{_n(e2e.get('changelog_records'))} records for {_n(e2e.get('events'))} events",
                _mark(t.get("changelog_records_per_event")),
                _prev(
                    previous,
                    "e2e",
                    "changelog_records_per_event",
                    now=e2e.get("changelog_records_per_event"),
                ),
            )
        profile = e2e.get("profile") or {}
        if profile.get("idle_share") is not None:
            busiest = ", ".join(f"{p['function']} {p['share']:.0%}" for p in profile["top_own"][:3])
            row(
                f"  worker idle in the selector ({profile['seconds']:g} s of py-spy on its backlog)",
                f"{profile['idle_share']:.1%} of samples",
                f"busiest: {busiest}" + ("" if profile.get("within_the_run") else " (ran past the end)"),
                _mark(t.get("e2e_idle_share")),
                "",
            )
    if core:
        row(
            f"core only (motwatch detect, one core, {_n(core.get('events'))} events)",
            _n(core.get("events_per_s"), f" {ev}"),
            f"{_n(r.get('core_to_raw'))}× raw, {_n(r.get('core_to_quix_peer'))}× peer; "
            f"e2e is {_n(r.get('e2e_to_core'))}× core",
            _mark(t.get("core_events_per_s")),
            _prev(previous, "core", "events_per_s", now=core.get("events_per_s")),
        )
    if lat:
        row(
            "latency broken link → moment readable, p50 / p99 (lateness 0)",
            f"{_n(lat.get('p50_ms'))} / {_n(lat.get('p99_ms'))} ms",
            f"at {_n(lat.get('background_events_per_s'))} {ev} "
            f"({'set' if lat.get('background_rate') == 'set' else '½ e2e'}), "
            f"{lat.get('probes_measured')} probes",
            _mark(t.get("latency_p99_ms")),
            _prev(previous, "latency", "p99_ms", now=lat.get("p99_ms")),
        )
    for point in mem.get("points", []):
        row(
            f"memory per active journey at {_n(point['journeys'])} (recovered state)",
            _n(point.get("bytes_per_journey"), " B"),
            f"RSS {_n(point['rss_kib'] / 1024)} MiB vs {_n(mem.get('rss_empty_kib', 0) / 1024)} MiB empty",
            _mark(_target(point.get("bytes_per_journey"), TARGETS["memory_bytes_per_journey"], "<=")),
        )
    for point in (f.get("recovery") or {}).get("points", []):
        store, n = point["store"], point["journeys"]
        kind = store.split(":")[0]
        baseline = (
            "baseline" if kind == "memory" else f"{_n(r.get(f'resume_{kind}_to_memory_{n}'))}× memory://"
        )
        read = point.get("changelog_records_read")
        row(
            f"resume after kill -9, {store}, {_n(n)} journeys (→ first new moment)",
            _n(point.get("seconds"), " s"),
            f"{baseline}; read {_n(read)} of {_n(point.get('changelog_records'))} changelog records, "
            f"{_n(point.get('states_read'))} states; ready at {_n(point.get('ready_s'))} s",
            _mark(t.get("resume_after_kill_s"))
            if store == "rocksdb://" and n == RESUME_TARGET_JOURNEYS
            else "",
            _prev_point(previous, store, n, point.get("seconds")),
        )
    if e2e.get("bytes_per_journey_live"):
        row(
            f"memory per active journey, live e2e ({_n(_get(e2e, 'active_journeys', 'journeys'))} journeys)",
            _n(e2e["bytes_per_journey_live"], " B"),
            "RSS growth while processing",
        )
    one, two = sc.get("workers_1") or {}, sc.get("workers_2") or {}
    if one:
        row(
            f"scaling: 1 worker, {sc.get('partitions')} partitions ({_n(sc.get('events'))} events)",
            _n(one.get("events_per_s"), f" {ev}"),
            f"worker CPU {_n(_get(one, 'worker_cpu_share', 'worker0'))} core",
        )
    if two:
        pred = sc.get("prediction") or {}
        shares = " + ".join(_n(v) for v in (two.get("worker_cpu_share") or {}).values())
        row(
            "scaling: 2 workers on this 2-core machine (with the broker)",
            _n(two.get("events_per_s"), f" {ev}"),
            f"{_n(r.get('scaling_2_to_1'))}× 1 worker; CPU {shares} cores",
            f"separate machines: ~{_n(pred.get('two_workers_separate_machines'))} {ev} predicted",
        )
    col = f.get("collector") or {}
    if col:
        raw_producer = col.get("raw_producer") or {}
        shape = f"{col.get('batch_size')}-event batches, {col.get('clients')} clients"
        row(
            f"raw producer ceiling (aiokafka, idempotent, acks=all; {shape})",
            f"{_n(raw_producer.get('events_per_s'), f' {ev}')}, p99 {_n(raw_producer.get('p99_ms'))} ms",
            "baseline",
            prev=_prev(
                previous, "collector", "raw_producer", "events_per_s", now=raw_producer.get("events_per_s")
            ),
        )
        row(
            f"collector: POST /v1/batch → Kafka ({shape}, {_n(col.get('events'))} events)",
            f"{_n(col.get('events_per_s'), f' {ev}')}, p99 {_n(col.get('p99_ms'))} ms",
            f"{_n(r.get('collector_to_raw_producer'))}× raw producer; p99 "
            f"{_n(r.get('collector_p99_to_raw_producer_p99'))}× its; collector CPU "
            f"{_n(_get(col, 'collector', 'collector_cpu_share'))} core",
            prev=_prev(previous, "collector", "events_per_s", now=col.get("events_per_s")),
        )
    header = ("figure", "value", "vs baseline (same run)", "target", "vs previous")
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(5)]
    lines = []
    for i, cells in enumerate([header, *rows]):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    load = result["load"]
    facts = (
        f"{result['mode']} run {result['run_id']}, {result['duration_s']:.0f}s; {m['cpu_model']}, "
        f"{m['cores']} cores, Python {m['python']}, Kafka {m['kafka']}, faust {m['faust_streaming']}, "
        f"aiokafka {m['aiokafka']}; load avg at start {load['at_start'][0]}, max {load['one_minute_max']}"
    )
    out = [facts, *lines]
    for name, error in result.get("errors", {}).items():
        out.append(f"! {name}: {error}")
    return "\n".join(out)


def _bare_value(figure: dict[str, Any]) -> str:
    """A bare app's events/s and the CPU its process spent per event (naive Faust, the peer)."""
    cpu = figure.get("cpu_us_per_event")
    return _n(figure.get("events_per_s"), " ev/s") + (f", {_n(cpu)} µs CPU/event" if cpu else "")


def _prev_point(previous: dict[str, Any] | None, store: str, n: int, now: float | None) -> str:
    """The ratio to the same resume point of the previous result, if it has one."""
    for point in _get(previous, "figures", "recovery", "points") or []:
        if point.get("store") == store and point.get("journeys") == n and point.get("seconds") and now:
            return f"{now / point['seconds']:.2f}× prev"
    return ""


def _disagreement(e2e: dict[str, Any]) -> str:
    """Said in the table when the worker wrote other moments than ``motwatch detect`` finds."""
    distinct, expected = e2e.get("moments_distinct"), e2e.get("expected_moments")
    if distinct is not None and expected is not None and distinct > expected:
        return f"; {_n(distinct - expected)} MOMENTS detect does not report"
    if e2e.get("complete") and e2e.get("moments_equal_detect") is False:
        return "; moment ids DIFFER from detect's"
    return ""
