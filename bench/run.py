"""``python -m bench.run [--quick | --smoke]``: every figure of the benchmark, in one run, on one broker.

Starts its own Kafka broker (fetching the jars on first use), makes or reuses
the simulated inputs, runs each measurement in turn, and writes a JSON result
(``bench/results/<time>-full.json`` and ``bench/results/latest.json``; quick
and smoke runs go to ``bench/results/quick/`` and ``bench/results/smoke/``) and
a table on stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python bench/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import collector, data, e2e, latency, memory, recovery, report
from bench.common import (
    PYTHON,
    REPO,
    WORKER_OVERRIDES,
    BenchError,
    bench_env,
    count_lines,
    loadavg,
    log,
    machine_facts,
    run_json,
    stop_process,
)

RESULTS = REPO / "bench" / "results"
SCHEMA = 1


@dataclass(frozen=True)
class Plan:
    mode: str
    journeys: int  # the end-to-end topic (and core, raw client, naive Faust, the Quix Streams peer)
    small_journeys: int  # scaling and the latency background
    partitions: int
    naive_max_events: int  # naive Faust and the peer read at most this many
    e2e_timeout_s: float
    latency_s: float
    latency_warmup_s: float
    probes_per_s: float
    memory_sizes: tuple[int, ...]
    # Resume after kill -9: journeys held by the killed worker.
    recovery_sizes: tuple[int, ...]
    scaling_partitions: int
    scaling_timeout_s: float
    figures: tuple[str, ...]
    # The collector: events posted through /v1/batch (of the small file), by this many concurrent clients.
    collector_events: int
    collector_clients: int
    # The end-to-end worker is profiled this long from its first event (py-spy): its idle share.
    profile_s: float
    # The latency step's background rate; None: half the end-to-end rate of the run.
    latency_rate: float | None = None


# The issue fixes the end-to-end topic (>= 1,000,000 events of 100,000 journeys: the
# simulator makes ~2.1 million) and the memory sizes; the rest is cut to keep the run short.
FULL = Plan(
    mode="full",
    journeys=100_000,
    small_journeys=5_000,
    partitions=4,
    naive_max_events=300_000,
    e2e_timeout_s=45 * 60,
    latency_s=30,
    latency_warmup_s=5,
    probes_per_s=20,
    memory_sizes=(100_000, 1_000_000),
    recovery_sizes=(100_000, 1_000_000),
    scaling_partitions=8,
    scaling_timeout_s=10 * 60,
    figures=(
        "core",
        "raw_client",
        "naive_faust",
        "quix_peer",
        "e2e",
        "latency",
        "memory",
        "recovery",
        "scaling",
        "collector",
    ),
    collector_events=100_000,
    collector_clients=8,
    profile_s=30,
)
QUICK = Plan(
    mode="quick",
    journeys=500,
    small_journeys=500,
    partitions=4,
    naive_max_events=1_000_000,
    e2e_timeout_s=60,
    latency_s=0,
    latency_warmup_s=0,
    probes_per_s=0,
    memory_sizes=(),
    recovery_sizes=(10_000,),
    scaling_partitions=8,
    scaling_timeout_s=0,
    figures=("core", "raw_client", "naive_faust", "quix_peer", "e2e", "recovery", "collector"),
    collector_events=10_000,
    collector_clients=4,
    profile_s=3,
)
# Every figure at toy sizes: checks that each measurement still runs (a few minutes), not a result.
SMOKE = replace(
    QUICK,
    mode="smoke",
    e2e_timeout_s=120,
    latency_s=8,
    latency_warmup_s=2,
    probes_per_s=10,
    memory_sizes=(1_000, 5_000),
    recovery_sizes=(1_000,),
    scaling_timeout_s=120,
    figures=FULL.figures,
)


class LoadSampler(threading.Thread):
    """The machine's load average every 5 s while the benchmark runs (others share the machine)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, list[float]]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((round(time.time(), 1), loadavg()))
            self._halt.wait(5)

    def stop(self) -> dict[str, Any]:
        self._halt.set()
        ones = [s[1][0] for s in self.samples] or [0.0]
        return {
            "one_minute_min": min(ones),
            "one_minute_max": max(ones),
            "one_minute_mean": round(sum(ones) / len(ones), 2),
            "samples": self.samples,
        }


class Run:
    def __init__(self, plan: Plan, bootstrap: str, broker_pid: int, workdir: Path, run_id: str) -> None:
        self.plan = plan
        self.bootstrap = bootstrap
        self.broker_pid = broker_pid
        self.workdir = workdir
        self.run_id = run_id
        self.figures: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        if name not in self.plan.figures and not name.startswith("_"):
            return None
        log(f"--- {name} (load {loadavg()})")
        started = time.monotonic()
        load_before = loadavg()
        try:
            result = fn()
        except (BenchError, OSError, TimeoutError) as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"{name} failed: {exc}")
            return None
        except Exception as exc:  # a bug in one measurement must not lose the others
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"{name} failed:\n{traceback.format_exc()}")
            return None
        if isinstance(result, dict) and result.get("errors"):
            # Some points failed, the others stand: the run still reports the failure.
            self.errors[name] = "; ".join(result["errors"])
            log(f"{name} partly failed: {self.errors[name]}")
        if isinstance(result, dict) and not name.startswith("_"):
            result["load_before"] = load_before
            result["load_after"] = loadavg()
            result["wall_s"] = round(time.monotonic() - started, 1)
            self.figures[name] = result
        return result


# The peer runs in a virtualenv of its own (``make bench`` makes it): Quix Streams pins pydantic and
# confluent-kafka below the versions motwatch installs.
PEER_PYTHON = REPO / ".venv" / "peer" / "bin" / "python"


def _naive_faust(run: Run, topic: str, expect: int) -> dict[str, Any]:
    # No web server: its default port may be taken by another worker on the machine.
    command = [PYTHON, "-m", "bench.naive_faust", "worker", "-l", "warn", "--without-web"]
    return _bare_app(run, "naive Faust", "naive-faust", command, topic, expect)


def _quix_peer(run: Run, topic: str, expect: int) -> dict[str, Any]:
    if not PEER_PYTHON.exists():
        raise BenchError(f"no {PEER_PYTHON.relative_to(REPO)}: `make bench-quick` installs the peer")
    command = [str(PEER_PYTHON), "-m", "bench.quix_peer"]
    return _bare_app(run, "the Quix Streams peer", "quix-peer", command, topic, expect)


def _bare_app(run: Run, label: str, name: str, command: list[str], topic: str, expect: int) -> dict[str, Any]:
    """Run a bare app (naive Faust, the peer) on the topic until it wrote its figure, then stop it."""
    out = run.workdir / f"{name}.json"
    env = bench_env(
        BENCH_BROKER=run.bootstrap,
        BENCH_TOPIC=topic,
        BENCH_EXPECT=str(expect),
        BENCH_OUT=str(out),
        BENCH_DATADIR=str(run.workdir),
    )
    log_path = run.workdir / f"{name}.log"
    import subprocess

    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120 + expect / 2000
        while not out.exists():
            if proc.poll() is not None:
                tail = log_path.read_text()[-800:]
                raise BenchError(f"{label} exited with {proc.returncode}: {tail!r}")
            if time.monotonic() > deadline:
                raise BenchError(f"{label} did not read every event in time")
            time.sleep(0.2)
        return json.loads(out.read_text())
    finally:
        stop_process(proc, 20)


def _results_paths(plan: Plan, stamp: str) -> tuple[Path, Path]:
    if plan.mode == "full":
        return RESULTS / f"{stamp}-full.json", RESULTS / "latest.json"
    return RESULTS / plan.mode / f"{stamp}.json", RESULTS / plan.mode / "latest.json"


def _previous(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer figures, under a minute")
    parser.add_argument(
        "--smoke", action="store_true", help="every figure at toy sizes: does each measurement still run?"
    )
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated figures to run (core,raw_client,naive_faust,quix_peer,e2e,...)",
    )
    parser.add_argument("--journeys", type=int, default=None, help="override the end-to-end size")
    parser.add_argument("--small-journeys", type=int, default=None, help="override the scaling/latency size")
    parser.add_argument(
        "--worker-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every worker of the run, over the measurement's own (repeatable; for A/B runs)",
    )
    parser.add_argument(
        "--profile-s",
        type=float,
        default=None,
        help="profile the end-to-end worker this long from its first event (0: not at all)",
    )
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=None,
        help="background events/s of the latency step, instead of half the end-to-end rate (for A/B runs "
        "at one load; needs no e2e step)",
    )
    parser.add_argument("--latency-s", type=float, default=None, help="how long the latency step measures")
    parser.add_argument("--no-save", action="store_true", help="print the table, write no result file")
    parser.add_argument("--note", default=None, help="a note stored with the result (what changed)")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else SMOKE if args.smoke else FULL
    if args.only:
        plan = replace(plan, figures=tuple(args.only.split(",")))
    if args.journeys:
        plan = replace(plan, journeys=args.journeys)
    if args.small_journeys:
        plan = replace(plan, small_journeys=args.small_journeys)
    for setting in args.worker_setting:
        name, equals, value = setting.partition("=")
        if not equals or not name.strip():
            parser.error(f"--worker-setting {setting!r}: expected NAME=VALUE")
        WORKER_OVERRIDES[name.strip()] = value
    if args.profile_s is not None:
        plan = replace(plan, profile_s=args.profile_s)
    if args.latency_s is not None:
        warmup = min(5.0, args.latency_s / 4)
        plan = replace(plan, latency_s=args.latency_s, latency_warmup_s=warmup)
    if args.latency_rate is not None:
        if args.latency_rate <= 0:
            parser.error(f"--latency-rate {args.latency_rate:g}: expected a rate above 0")
        plan = replace(plan, latency_rate=args.latency_rate)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_id = f"{stamp.lower()}-{os.getpid()}"
    sampler = LoadSampler()
    sampler.start()
    load_at_start = loadavg()
    log(f"motwatch benchmark ({plan.mode}); load average {load_at_start}")
    if load_at_start[0] > 0.5:
        log("the machine is busy: others' work will slow every figure (the load is recorded)")

    from motwatch.kafka.broker import BrokerError, KafkaBroker, ensure_jars

    try:
        ensure_jars()
    except BrokerError as exc:
        print(f"bench: cannot fetch the Kafka broker: {exc}", file=sys.stderr)
        return 1
    big, big_meta = data.simulated(plan.journeys)
    small, small_meta = (
        (big, big_meta) if plan.small_journeys == plan.journeys else data.simulated(plan.small_journeys)
    )

    workdir = Path(tempfile.mkdtemp(prefix="motwatch-bench-"))
    broker = KafkaBroker(port=0, data_dir=workdir / "kafka")
    try:
        bootstrap = broker.start(timeout=120)
    except BrokerError as exc:
        print(f"bench: cannot start the Kafka broker: {exc}", file=sys.stderr)
        return 1
    log(f"Kafka broker at {bootstrap} (pid {broker.pid})")
    assert broker.pid is not None
    run = Run(plan, bootstrap, broker.pid, workdir, run_id)
    try:
        _measure(run, plan, big, big_meta, small, small_meta)
    finally:
        broker.stop()
    finished = datetime.now(UTC)

    result = {
        "schema": SCHEMA,
        "mode": plan.mode,
        "run_id": run_id,
        "note": args.note,
        "worker_settings": dict(WORKER_OVERRIDES),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 1),
        "machine": machine_facts(),
        "load": {"at_start": load_at_start, **sampler.stop()},
        "plan": asdict(plan),
        "datasets": {"e2e": big_meta, "small": small_meta},
        "figures": run.figures,
        "errors": run.errors,
    }
    report.evaluate(result)
    path, latest = _results_paths(plan, stamp)
    previous = _previous(latest)
    print(report.table(result, previous))
    if not args.no_save:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(result, indent=1) + "\n"
        path.write_text(text)
        latest.write_text(text)
        print(f"\nresult: {path.relative_to(REPO)} (and {latest.relative_to(REPO)})")
        raw_profile = ((run.figures.get("e2e") or {}).get("profile") or {}).get("raw")
        if raw_profile and Path(raw_profile).exists():
            kept = path.with_name(f"{path.stem}-worker-profile.txt")
            shutil.copyfile(raw_profile, kept)
            print(f"the end-to-end worker's py-spy profile: {kept.relative_to(REPO)}")
    with contextlib.suppress(OSError):
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if run.errors else 0


def _measure(run: Run, plan: Plan, big: Path, big_meta: dict, small: Path, small_meta: dict) -> None:
    figures = run.figures
    p = plan.partitions
    prefix = f"bench-{run.run_id}-e2e."
    states = run.workdir / "states.jsonl"

    # Core only, first: the file, one core, nothing else running but the idle broker.
    core_args = [str(big)]
    if "memory" in plan.figures or "recovery" in plan.figures:
        core_args += ["--states-out", str(states)]
    core = run.step("core", lambda: run_json("bench.core", core_args, timeout=3600, cpu=_one_cpu()))
    expected = core["moments"] if core else None
    if "core" not in plan.figures and ("memory" in plan.figures or "recovery" in plan.figures):
        # The journey states those figures load, without the core's figure (``--only``).
        run.step(
            "_states", lambda: run_json("bench.core", [str(big), "--states-out", str(states)], timeout=3600)
        )

    if "collector" in plan.figures:
        run.step(
            "collector",
            lambda: asyncio.run(
                collector.measure(
                    run.bootstrap,
                    small,
                    run.workdir / "collector",
                    run_id=run.run_id,
                    events=plan.collector_events,
                    batch_size=100,
                    clients=plan.collector_clients,
                    partitions=p,
                    warmup_batches=10,
                )
            ),
        )

    # The end-to-end topic, pre-filled once; the raw client, naive Faust and the peer read it too.
    prefill = run.step("_prefill", lambda: asyncio.run(e2e.prefill(run.bootstrap, prefix, big, p)))
    if prefill is None:
        return
    events = prefill["events"]
    figures["prefill"] = prefill
    topic = f"{prefix}touchpoints"

    raw_args = [run.bootstrap, topic, str(events)]
    run.step("raw_client", lambda: run_json("bench.raw_client", raw_args, timeout=900))
    naive_expect = min(events, plan.naive_max_events)
    naive = run.step("naive_faust", lambda: _naive_faust(run, topic, naive_expect))
    if naive is not None:
        naive["events_of_topic"] = events
    peer = run.step("quix_peer", lambda: _quix_peer(run, topic, naive_expect))
    if peer is not None:
        peer["events_of_topic"] = events

    if expected is None and "e2e" in plan.figures:
        run.errors["e2e"] = "no expected moment count (the core run failed)"
    elif "e2e" in plan.figures:

        async def end_to_end() -> dict[str, Any]:
            result = await e2e.run_workers(
                run.bootstrap,
                prefix,
                run.workdir / "e2e",
                events=events,
                expected_moments=expected,
                expected_digest=core["moment_ids_digest"] if core else None,
                partitions=p,
                timeout=plan.e2e_timeout_s,
                broker_pid=run.broker_pid,
                gauges=plan.mode == "full",
                profile_s=plan.profile_s,
            )
            return {**result, **await e2e.changelog_writes(run.bootstrap, prefix, events)}

        run.step("e2e", lambda: asyncio.run(end_to_end()))

    if "latency" in plan.figures:
        e2e_rate = (figures.get("e2e") or {}).get("events_per_s")
        rate = plan.latency_rate or (e2e_rate / 2 if e2e_rate else None)
        if not rate:
            run.errors["latency"] = "no end-to-end rate to take half of"
        else:

            async def latency_at_rate() -> dict[str, Any]:
                result = await latency.measure(
                    run.bootstrap,
                    small,
                    run.workdir / "latency",
                    run_id=run.run_id,
                    rate=rate,
                    probes_per_s=plan.probes_per_s,
                    seconds=plan.latency_s,
                    warmup_s=plan.latency_warmup_s,
                    partitions=p,
                )
                return {**result, "background_rate": "set" if plan.latency_rate else "half_e2e"}

            run.step("latency", lambda: asyncio.run(latency_at_rate()))

    if "memory" in plan.figures:
        if not states.exists():
            run.errors["memory"] = "no journey states (the core run failed)"
        else:
            run.step(
                "memory",
                lambda: asyncio.run(
                    memory.measure(
                        run.bootstrap, states, run.workdir / "memory", list(plan.memory_sizes), p, run.run_id
                    )
                ),
            )

    if "recovery" in plan.figures:
        if not states.exists():
            run.errors["recovery"] = "no journey states (the core run failed)"
        else:
            run.step(
                "recovery",
                lambda: asyncio.run(
                    recovery.measure(
                        run.bootstrap, states, run.workdir / "recovery", list(plan.recovery_sizes), run.run_id
                    )
                ),
            )

    if "scaling" in plan.figures:
        run.step("scaling", lambda: _scaling(run, plan, small, small_meta))


def _one_cpu() -> int:
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-1]


def _scaling(run: Run, plan: Plan, small: Path, small_meta: dict) -> dict[str, Any]:
    from motwatch.kafka.admin import create_topics

    core = run_json("bench.core", [str(small)], timeout=1800)
    events = count_lines(small)
    out: dict[str, Any] = {
        "partitions": plan.scaling_partitions,
        "events": events,
        "journeys_simulated": small_meta["journeys_simulated"],
    }
    for workers in (1, 2):
        prefix = f"bench-{run.run_id}-scale{workers}."

        async def go(prefix: str = prefix, workers: int = workers) -> dict[str, Any]:
            await create_topics(run.bootstrap, e2e.topics(prefix), plan.scaling_partitions)

            async def produce() -> Any:
                return await e2e.prefill(run.bootstrap, prefix, small, plan.scaling_partitions)

            return await e2e.run_workers(
                run.bootstrap,
                prefix,
                run.workdir / f"scale{workers}",
                events=events,
                expected_moments=core["moments"],
                expected_digest=core["moment_ids_digest"],
                partitions=plan.scaling_partitions,
                workers=workers,
                timeout=plan.scaling_timeout_s,
                broker_pid=run.broker_pid,
                gauges=False,
                produce=produce,
            )

        log(f"scaling: {workers} worker(s) on {plan.scaling_partitions} partitions")
        result = asyncio.run(go())
        result.pop("samples", None)
        out[f"workers_{workers}"] = result
    return out


if __name__ == "__main__":
    sys.exit(main())
