"""``motwatch demo`` as ``make demo`` runs it, and its Ctrl-C against the real broker.

The whole demo runs in a subprocess with its own broker and worker, on a small
feed: what README.md promises it prints and leaves behind in ``--dir`` is
checked against ``motwatch detect`` and ``motwatch evaluate`` on its own files.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter

import orjson
import pytest

from motwatch.commands import demo
from motwatch.commands.demo import PREFIX, Tally
from motwatch.kafka.admin import create_topics
from motwatch.simulation import SimulationConfig, simulate
from tests.workers import READY_MARK, canonical, detect_moments, run_cli

pytestmark = pytest.mark.integration


async def test_ctrl_c_once_the_feed_is_done_ends_the_wait_for_moments(
    kafka_bootstrap, tmp_path, monkeypatch
) -> None:
    topics = [f"{PREFIX}{t}" for t in ("touchpoints", "moments", "deadletter")]
    await create_topics(kafka_bootstrap, topics, 1)
    lines = simulate(SimulationConfig(journeys=3, seed=1)).lines
    tally = Tally()
    feed = demo._feed

    async def feed_then_ctrl_c(*args: object) -> None:
        await feed(*args)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(demo, "_feed", feed_then_ctrl_c)
    with open(tmp_path / "moments.jsonl", "wb") as out:
        # No worker runs, so the moments never come: the demo would wait its whole settle time, an
        # hour. Ended by the Ctrl-C, it returns long before the two minutes given here.
        run = demo._run(kafka_bootstrap, lines, 5000, 3600, tally, 10**6, out)
        interrupted = await asyncio.wait_for(run, timeout=120)
    assert interrupted
    assert tally.sent == len(lines)


def _refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("secure", [False, True], ids=["plaintext", "sasl_ssl"])
def test_the_demo_reports_what_detect_finds_and_leaves_its_files(tmp_path, secure: bool) -> None:
    work = tmp_path / "demo"
    keep = {"MOTWATCH_CACHE_DIR"}  # where the broker's jars are; no other setting of this machine
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTWATCH_") or k in keep}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "motwatch.cli",
            "demo",
            "--journeys",
            "20",
            "--rate",
            "400",
            "--dir",
            str(work),
            *(["--secure"] if secure else []),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=240,
        check=False,
    )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, err
    assert "Traceback" not in err, err

    # Its files: the messages it fed, the moments the worker reported, the ground truth, the log.
    events = [raw for raw in (work / "events.jsonl").read_bytes().splitlines() if raw.strip()]
    moments = [orjson.loads(raw) for raw in (work / "moments.jsonl").read_bytes().splitlines()]
    truth = (work / "truth.jsonl").read_bytes().splitlines()
    assert READY_MARK in (work / "worker.log").read_text(errors="replace")
    assert out.startswith(
        f"motwatch demo: {len(events)} touchpoints of 20 simulated journeys in {work}/events.jsonl"
    )

    # The worker reported exactly what detect finds in the file it was fed, ids included ...
    checker = {k: v for k, v in env.items() if k != "MOTWATCH_CONFIG"}
    assert moments and canonical(moments) == canonical(detect_moments(work / "events.jsonl", checker))
    # ... and the simulation's ground truth, every kind at precision and recall 1.
    evaluated = run_cli(
        "evaluate", "--moments", str(work / "moments.jsonl"), "--truth", str(work / "truth.jsonl"),
        "--min-precision", "1", "--min-recall", "1", env=checker,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stdout.decode() + evaluated.stderr.decode()

    # The summary per moment of truth, beside the ground truth, is the moments it wrote.
    counted = Counter((m["moment"], m["status"]) for m in moments)
    for moment in ("<ZMOT", "ZMOT", "FMOT", "SMOT", "UMOT"):
        failed, recovered = counted[(moment, "failed")], counted[(moment, "recovered")]
        assert re.search(rf"\n  {re.escape(moment)} +{failed} failed +{recovered} recovered\n", out), out
    assert f"Ground truth of the simulation: {len(truth)} moments; reported {len(moments)}\n" in out
    dead = tmp_path / "dead.jsonl"
    assert (
        run_cli("detect", str(work / "events.jsonl"), "--dead-letter", str(dead), env=checker).returncode == 0
    )
    rejected = len(dead.read_bytes().splitlines())
    assert rejected > 0, "the demo's feed has malformed messages among the touchpoints"
    assert f"Messages sent: {len(events)}; rejected to the dead-letter topic: {rejected}\n" in out

    # Where the worker's metrics were, and the status command for them.
    port = re.search(r"metrics  http://127\.0\.0\.1:(\d+)/metrics", out).group(1)
    assert re.search(rf"status   \S*motwatch status --url 127\.0\.0\.1:{port} ", out), out
    # At the end it stopped the worker and the broker.
    assert "broker and worker stopped." in out
    pid = int(re.search(r"worker ready \(pid (\d+),", out).group(1))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    if not secure:
        assert _refused(re.search(r"Kafka broker \(real, KRaft\) at (\S+);", out).group(1))
        return
    # --secure: it says the worker and the feed came in over SASL_SSL; the moments above got through.
    said = re.search(r"Kafka broker \(real, KRaft, TLS and SCRAM\) at (\S+): the worker and the demo", out)
    assert said and "connect over SASL_SSL as user motwatch" in out, out
    assert _refused(said.group(1))
