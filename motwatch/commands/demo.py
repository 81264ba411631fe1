"""``motwatch demo``: the whole product on this machine, live, in one command.

Starts a real Kafka broker and a worker, feeds simulated journeys across every
channel (with a few malformed messages among them), and prints each failing
moment of truth as the worker reports it, and each rejected message with its
reason. Ctrl-C (or the end of the feed) stops everything cleanly and prints a
summary per moment of truth.

Its files stay behind for the README's replay walkthrough: the input
(``events.jsonl``), the moments the worker reported (``moments.jsonl``) and
the simulation's ground truth (``truth.jsonl``), in ``.motwatch-data/demo/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from motwatch.commands.common import positive
from motwatch.core.validation import journey_key_of
from motwatch.kafka.broker import KafkaBroker
from motwatch.kafka.security import Endpoint, client_options
from motwatch.settings import MomentOfTruth
from motwatch.simulation import SimulationConfig, simulate

PREFIX = "demo."
MOMENTS = [m.value for m in MomentOfTruth]
WORKDIR = ".motwatch-data/demo"
WEB_WORKDIR = ".motwatch-data/demo-web"


@dataclass
class Tally:
    sent: int = 0
    moments: Counter[tuple[str, str]] = field(default_factory=Counter)  # (moment of truth, status)
    kinds: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)


def _paint(text: str, code: str) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if sys.stdout.isatty() else text


SEVERITY_COLOUR = {"critical": "1;31", "high": "31", "medium": "33", "low": "36"}


def show_moment(m: dict[str, Any]) -> str:
    status = "FAILED   " if m["status"] == "failed" else "recovered"
    colour = SEVERITY_COLOUR.get(m["severity"], "0") if m["status"] == "failed" else "32"
    evidence = ",".join(m["evidence"])
    return (
        f"{_paint(status, colour)} {m['moment']:<5} {m['kind']:<24} {m['severity']:<8} "
        f"{m['journey_key']:<14} owner={m['owner']:<16} evidence={evidence}"
    )


def show_rejection(r: dict[str, Any]) -> str:
    return f"{_paint('rejected ', '35')} {r['reason']:<22} {r['error'][:90]}"


async def _watch(kafka: Endpoint, tally: Tally, stop: asyncio.Event, moments_out: BinaryIO) -> None:
    consumer = AIOKafkaConsumer(
        f"{PREFIX}moments",
        f"{PREFIX}deadletter",
        **client_options(kafka),
        auto_offset_reset="earliest",
        group_id=f"{PREFIX}demo-viewer-{os.getpid()}",
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for tp, messages in batch.items():
                for msg in messages:
                    body = orjson.loads(msg.value)
                    if tp.topic.endswith("moments"):
                        moments_out.write(msg.value + b"\n")
                        tally.moments[(body["moment"], body["status"])] += 1
                        tally.kinds[f"{body['kind']} ({body['status']})"] += 1
                        print(show_moment(body), flush=True)
                    else:
                        tally.rejected[body["reason"]] += 1
                        print(show_rejection(body), flush=True)
            moments_out.flush()
    finally:
        await consumer.stop()


async def _feed(kafka: Endpoint, lines: list[bytes], rate: float, tally: Tally, stop: asyncio.Event) -> None:
    producer = AIOKafkaProducer(**client_options(kafka), acks="all", linger_ms=5)
    await producer.start()
    try:
        started = time.monotonic()
        for i, line in enumerate(lines):
            if stop.is_set():
                break
            key = journey_key_of(line)
            await producer.send(f"{PREFIX}touchpoints", line, key=key.encode() if key else None)
            tally.sent += 1
            ahead = (i + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), ahead)
        await producer.flush()
    finally:
        await producer.stop()


def summary(tally: Tally) -> list[str]:
    out = ["", "Summary per moment of truth (failed / recovered):"]
    for moment in MOMENTS:
        failed, recovered = tally.moments[(moment, "failed")], tally.moments[(moment, "recovered")]
        out.append(f"  {moment:<6} {failed:>5} failed  {recovered:>5} recovered")
    out.append("By kind:")
    out.extend(f"  {kind:<36} {n:>5}" for kind, n in sorted(tally.kinds.items()))
    rejected = sum(tally.rejected.values())
    out.append(f"Messages sent: {tally.sent}; rejected to the dead-letter topic: {rejected}")
    out.extend(f"  {reason:<22} {n:>5}" for reason, n in sorted(tally.rejected.items()))
    return out


def _motwatch_command() -> str:
    """``motwatch`` as this shell can run it: the script beside this Python unless it is on the PATH."""
    script = Path(sys.executable).parent / "motwatch"
    if not script.exists() or shutil.which("motwatch") == str(script):
        return "motwatch"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def where_to_look(web_port: int) -> list[str]:
    """Where the running worker's metrics are, and the command that summarises them."""
    return [
        f"  metrics  http://127.0.0.1:{web_port}/metrics   (Prometheus text format)",
        f"  status   {_motwatch_command()} status --url 127.0.0.1:{web_port}   "
        "(in another terminal while the demo runs: throughput, lag, moments by kind)",
    ]


def demo_env(kafka: Endpoint, workdir: Path, web_port: int) -> dict[str, str]:
    """The environment of the demo's motwatch processes: its broker, prefix, data folder, web port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTWATCH_")}
    env.update(
        MOTWATCH_BROKER=kafka.bootstrap,
        MOTWATCH_TOPIC_PREFIX=PREFIX,
        MOTWATCH_WEB_PORT=str(web_port),
        MOTWATCH_DATA_DIR=str(workdir / "data"),
        MOTWATCH_SECURITY_PROTOCOL=kafka.security_protocol,
    )
    if kafka.uses_sasl:
        env.update(
            MOTWATCH_SASL_MECHANISM=kafka.sasl_mechanism,
            MOTWATCH_SASL_USERNAME=kafka.username,
            MOTWATCH_SASL_PASSWORD=kafka.password,
        )
    if kafka.cafile:
        env["MOTWATCH_SSL_CAFILE"] = kafka.cafile
    return env


def _start_worker(kafka: Endpoint, workdir: Path, web_port: int, **settings: str) -> subprocess.Popen[bytes]:
    """``motwatch worker``, its log in ``workdir``; ``settings``: more MOTWATCH_* variables."""
    env = demo_env(kafka, workdir, web_port) | settings
    log = open(workdir / "worker.log", "wb")  # noqa: SIM115 - lives as long as the worker
    return subprocess.Popen(
        [sys.executable, "-m", "motwatch.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop_worker(proc: subprocess.Popen[bytes], timeout: float = 25) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while "Worker]: Ready" not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited ({proc.returncode}); see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker was not ready within {timeout:.0f}s; see {log}")
        time.sleep(0.2)


@contextlib.contextmanager
def _broker(secure: bool) -> Iterator[Endpoint]:
    """A local broker for the demo, and how the worker and the demo reach it.

    Secure: the worker and the demo come in over SASL_SSL (SCRAM-SHA-512, the
    broker's own CA), as the broker's user with every right granted.
    """
    if not secure:
        with KafkaBroker(port=0) as plain:
            print(f"Kafka broker (real, KRaft) at {plain.bootstrap}; starting the worker …")
            yield Endpoint(plain.bootstrap or "")
        return
    from motwatch.kafka.broker.secure import SecureKafkaBroker  # its certificates need cryptography

    with SecureKafkaBroker(port=0) as broker:
        asyncio.run(broker.grant_all())
        kafka = Endpoint(
            bootstrap=broker.sasl_ssl_bootstrap or "",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            username=broker.username,
            password=broker.password,
            cafile=str(broker.ca_file),
        )
        print(
            f"Kafka broker (real, KRaft, TLS and SCRAM) at {kafka.bootstrap}: the worker and the demo"
            f" connect over SASL_SSL as user {kafka.username}, trusting {broker.ca_file};"
            " starting the worker …"
        )
        yield kafka


def run_demo(
    journeys: int = 300,
    rate: float = 150.0,
    settle_s: float = 30.0,
    workdir: str = WORKDIR,
    secure: bool = False,
) -> int:
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    sim = simulate(SimulationConfig(journeys=journeys, seed=7, invalid_share=0.01))
    (work / "events.jsonl").write_bytes(b"\n".join(sim.lines) + b"\n")
    (work / "truth.jsonl").write_bytes(b"".join(t.to_json() + b"\n" for t in sim.truth))
    print(
        f"motwatch demo: {len(sim.lines)} touchpoints of {journeys} simulated journeys in {work}/events.jsonl"
    )
    tally = Tally()
    interrupted = False
    try:
        with _broker(secure) as kafka:
            web_port = _free_port()
            proc = _start_worker(kafka, work, web_port)
            try:
                _wait_ready(proc, work / "worker.log")
                print(f"worker ready (pid {proc.pid}, log {work}/worker.log)")
                for line in where_to_look(web_port):
                    print(line)
                print(f"feeding {len(sim.lines)} messages at {rate:.0f}/s; Ctrl-C to stop\n")
                with open(work / "moments.jsonl", "wb") as moments_out:
                    interrupted = asyncio.run(
                        _run(kafka, sim.lines, rate, settle_s, tally, len(sim.truth), moments_out)
                    )
            finally:
                # A second Ctrl-C must not cut the clean-up short.
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
                _stop_worker(proc)
                signal.signal(signal.SIGINT, previous)
    except KeyboardInterrupt:  # during start-up: the context managers cleaned up
        interrupted = True
    if interrupted:
        print("\ninterrupted; broker and worker stopped.")
    for line in summary(tally):
        print(line)
    if not interrupted:
        reported = sum(tally.kinds.values())
        print(f"Ground truth of the simulation: {len(sim.truth)} moments; reported {reported}")
        print("broker and worker stopped.")
    print(
        f"Files in {work}/: events.jsonl (the input), moments.jsonl (the moments reported), "
        "truth.jsonl (the ground truth); README.md, 'Replay an incident', replays them."
    )
    return 0


async def _run(
    kafka: Endpoint,
    lines: list[bytes],
    rate: float,
    settle_s: float,
    tally: Tally,
    expected: int,
    moments_out: BinaryIO,
) -> bool:
    """Feed and watch until the feed is done and every expected moment came (or ``settle_s``
    passed), or Ctrl-C; True when interrupted."""
    stop = asyncio.Event()
    interrupted = asyncio.Event()

    def on_sigint() -> None:
        interrupted.set()
        stop.set()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, on_sigint)
    watcher = asyncio.create_task(_watch(kafka, tally, stop, moments_out))
    try:
        await _feed(kafka, lines, rate, tally, stop)
        # Let the last timeouts fire and their moments arrive (Ctrl-C cuts it short).
        deadline = time.monotonic() + settle_s
        while not stop.is_set() and sum(tally.kinds.values()) < expected and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        stop.set()
        await watcher
        loop.remove_signal_handler(signal.SIGINT)
    return interrupted.is_set()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run broker, worker and simulated journeys live on this machine")
    p.add_argument("--journeys", type=positive(int), default=300, help="simulated journeys to feed")
    p.add_argument("--rate", type=positive(float), default=150.0, help="messages per second")
    p.add_argument(
        "--dir",
        metavar="DIR",
        default=".motwatch-data/demo",
        help="where its files go: events, moments reported, ground truth, worker log (default: %(default)s)",
    )
    p.add_argument(
        "--secure",
        action="store_true",
        help="run the broker with TLS and SCRAM, and the worker and the demo over SASL_SSL",
    )
    p.add_argument(
        "--web",
        action="store_true",
        help="the demo shop instead of simulated journeys: you shop in a browser, moments print live",
    )
    p.add_argument(
        "--port", type=int, default=8088, help="with --web: the shop's port on 127.0.0.1 (0: a free one)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.web:
        from motwatch.commands.demo_web import run_web_demo

        workdir = WEB_WORKDIR if args.dir == WORKDIR else args.dir
        return run_web_demo(port=args.port, workdir=workdir)
    return run_demo(journeys=args.journeys, rate=args.rate, workdir=args.dir, secure=args.secure)
