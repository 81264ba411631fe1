"""``motwatch demo --web`` (``make demo-web``): the demo shop in your browser, its moments live.

Starts a real Kafka broker, ``motwatch worker`` and ``motwatch collect --shop
--no-auth`` on 127.0.0.1, prints the shop's URL, and prints each moment as the
worker reports it, and each rejected message. Ctrl-C stops the collector, the
worker and the broker, each by its PID, and prints the summary. The worker's
windows are short enough to watch: a checkout left unfinished is reported
after ``ABANDON_AFTER_S`` seconds, event time following the wall clock once
the shop has been quiet for ``IDLE_ADVANCE_S``. Its files (the moments, the
worker's and the collector's logs) stay in ``.motwatch-data/demo-web/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

from motwatch.commands.demo import (
    PREFIX,
    Tally,
    _broker,
    _free_port,
    _motwatch_command,
    _start_worker,
    _stop_worker,
    _wait_ready,
    _watch,
    demo_env,
    summary,
    where_to_look,
)
from motwatch.kafka.security import Endpoint

ABANDON_AFTER_S = 60
IDLE_ADVANCE_S = 5
LISTENING = re.compile(r"^listening (http://\S+)$", re.MULTILINE)


def _start_collector(kafka: Endpoint, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """``motwatch collect --shop --no-auth`` on 127.0.0.1:``port``, its log in ``workdir``."""
    env = demo_env(kafka, workdir, _free_port())
    log = open(workdir / "collector.log", "wb")  # noqa: SIM115 - lives as long as the collector
    return subprocess.Popen(
        [sys.executable, "-m", "motwatch.cli", "collect", "--shop", "--no-auth", *_where(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _where(port: int) -> list[str]:
    return ["--bind", "127.0.0.1", "--port", str(port)]


def _wait_listening(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> str:
    """The collector's URL, once it says it listens; RuntimeError if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while (found := LISTENING.search(log.read_text(errors="replace"))) is None:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"the collector exited ({proc.returncode}): {' / '.join(tail)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the collector did not listen within {timeout:.0f}s; see {log}")
        time.sleep(0.2)
    return found.group(1)


def guide(url: str, kafka: Endpoint, work: Path) -> list[str]:
    """What to do in the shop, what each thing raises, and where the moments are."""
    return [
        "",
        f"Open the shop:  {url}/shop/index.html",
        "  leave the blender's page within 7 s           -> first_impression_bounce",
        "  Spring sale: 'See the kettle offer' (dead)    -> broken_link",
        f"  start a checkout, then 'Continue shopping'    -> abandoned_checkout after {ABANDON_AFTER_S} s",
        "  'Simulate a declined card' at payment         -> checkout_error",
        "  place an order, then rate the checkout 1 or 2 -> low_satisfaction",
        "  (one journey per browser profile: a private window is another visitor)",
        f"The moments appear below as the worker reports them (also in {work}/moments.jsonl); in another",
        f"terminal: {_motwatch_command()} record moments --broker {kafka.bootstrap} --prefix {PREFIX}"
        " --from-beginning --idle 3600 --out -",
        "Ctrl-C stops the collector, the worker and the broker.",
        "",
    ]


async def _watch_until_interrupted(
    kafka: Endpoint, tally: Tally, moments_out: BinaryIO, procs: dict[str, subprocess.Popen[bytes]]
) -> None:
    """Prints moments and rejections until Ctrl-C (or SIGTERM), or until a process exits."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch(kafka, tally, stop, moments_out))
    try:
        while not stop.is_set():
            exited = [f"{name} ({p.returncode})" for name, p in procs.items() if p.poll() is not None]
            if exited:
                print(f"\n{', '.join(exited)} exited; stopping.", flush=True)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        stop.set()
        await watcher
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_web_demo(port: int = 8088, workdir: str = ".motwatch-data/demo-web") -> int:
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    try:
        with _broker(secure=False) as kafka:
            web_port = _free_port()
            worker = _start_worker(
                kafka,
                work,
                web_port,
                MOTWATCH_ALLOWED_LATENESS_S="0",
                MOTWATCH_IDLE_ADVANCE_S=str(IDLE_ADVANCE_S),
                MOTWATCH_KINDS__ABANDONED_CHECKOUT__WINDOW_S=str(ABANDON_AFTER_S),
            )
            procs = {"worker": worker}
            try:
                _wait_ready(worker, work / "worker.log")
                print(f"worker ready (pid {worker.pid}, log {work}/worker.log)")
                for line in where_to_look(web_port):
                    print(line)
                collector = procs["collector"] = _start_collector(kafka, work, port)
                url = _wait_listening(collector, work / "collector.log")
                print(f"collector ready at {url} (pid {collector.pid}, log {work}/collector.log)")
                for line in guide(url, kafka, work):
                    print(line, flush=True)
                with open(work / "moments.jsonl", "wb") as moments_out:
                    asyncio.run(_watch_until_interrupted(kafka, tally, moments_out, procs))
            finally:
                # A second Ctrl-C must not cut the clean-up short.
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
                for proc in reversed(procs.values()):
                    _stop_worker(proc)
                signal.signal(signal.SIGINT, previous)
    except KeyboardInterrupt:  # during start-up: the context managers cleaned up
        pass
    except RuntimeError as exc:
        print(f"motwatch demo --web: {exc}", file=sys.stderr)
        return 1
    rejected = sum(tally.rejected.values())
    for line in summary(tally):
        # Nothing was fed here: the tracker's messages went through the collector.
        print(f"Rejected to the dead-letter topic: {rejected}" if line.startswith("Messages sent") else line)
    print(f"collector, worker and broker stopped. Files in {work}/: moments.jsonl, worker.log, collector.log")
    return 0
