"""``motwatch simulate``: seeded journeys with injected failures, to a file or a topic, and their truth."""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from motwatch.commands.common import (
    UsageError,
    add_config,
    duration,
    fraction,
    point_in_time,
    positive,
    settings_of,
    write_lines,
)
from motwatch.commands.replay import add_target, send_records, target_of
from motwatch.kafka.connection import wait_for_broker
from motwatch.kafka.recording import records_of_file
from motwatch.kafka.security import endpoint_of
from motwatch.simulation import KINDS, FailureRates, SimulationConfig, simulate


def _failure(text: str) -> tuple[str, float]:
    kind, sep, rate = text.partition("=")
    if not sep or kind.strip() not in (*KINDS, "all"):
        raise argparse.ArgumentTypeError(f"{text!r}: use KIND=RATE with KIND one of all, {', '.join(KINDS)}")
    try:
        return kind.strip(), fraction(rate.strip())
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r}: RATE must be a number within 0..1") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="generate realistic journeys, with injected failures and their ground truth",
        description=(
            "Simulated journeys through every channel and moment of truth, seeded and repeatable. "
            "The ground truth (the moments a correct motwatch reports) goes beside the events: "
            "FILE.truth.jsonl for --out FILE.jsonl. Score a run with motwatch evaluate."
        ),
    )
    p.add_argument("--out", metavar="FILE.jsonl", help="write the events here ('-' for stdout)")
    p.add_argument("--truth", metavar="FILE.jsonl", help="the ground truth (default: beside --out)")
    size = p.add_argument_group("size and pace (event time)")
    size.add_argument(
        "--journeys", metavar="N", type=positive(int), help="journeys to simulate (default: 1000)"
    )
    size.add_argument(
        "--duration",
        type=duration,
        metavar="D",
        help="instead of --journeys: new customers arrive for this long, e.g. 30m, 2h, 1d",
    )
    size.add_argument(
        "--rate",
        metavar="R",
        type=positive(float),
        default=2.0,
        help="new customers per second of event time (default: 2)",
    )
    size.add_argument(
        "--customers",
        metavar="N",
        type=positive(int),
        help="fewer customers than journeys: returning customers, one journey key each (default: one each)",
    )
    size.add_argument(
        "--start",
        metavar="TIME",
        type=point_in_time,
        default=None,
        help="event time of the start: RFC 3339, or 30d for 30 days ago (default: 2026-03-02T00:00Z)",
    )
    size.add_argument(
        "--tail",
        type=duration,
        metavar="D",
        default=8 * 86400.0,
        help="quiet traffic after the journeys, so every timeout fires (default: 8d)",
    )
    size.add_argument(
        "--seed",
        metavar="N",
        type=positive(int),
        default=1,
        help="the same seed gives the same bytes (default: 1)",
    )
    mix = p.add_argument_group("failures and mix")
    mix.add_argument(
        "--fail",
        type=_failure,
        action="append",
        metavar="KIND=RATE",
        help="chance per journey of injecting KIND (0..1); repeatable; all=RATE sets every kind first "
        f"(kinds: {', '.join(KINDS)})",
    )
    mix.add_argument(
        "--recovery-share",
        metavar="X",
        type=fraction,
        default=0.35,
        help="injected timeouts that recover later (default: 0.35)",
    )
    mix.add_argument(
        "--anonymous-share",
        metavar="X",
        type=fraction,
        default=0.3,
        help="journeys that start anonymous (default: 0.3)",
    )
    mix.add_argument(
        "--guest-share",
        metavar="X",
        type=fraction,
        default=0.5,
        help="anonymous buyers who check out as guests and log in to pay (default: 0.5)",
    )
    mix.add_argument(
        "--disorder",
        type=duration,
        metavar="D",
        default=0.0,
        help="each event reaches the file up to D after it happened, out of order (default: 0; "
        "the truth holds up to the allowed lateness, 2m)",
    )
    mix.add_argument(
        "--invalid-share",
        metavar="X",
        type=fraction,
        default=0.0,
        help="malformed lines among all (default: 0)",
    )
    topic = p.add_argument_group("to a topic")
    add_target(topic, default=None)
    add_config(topic)
    topic.add_argument(
        "--broker", metavar="HOST:PORT", help="Kafka bootstrap server (default: from settings)"
    )
    p.set_defaults(func=run)


def _iso(when: datetime | None) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z") if when else "-"


def _truth_beside(events: str | None) -> str | None:
    """``run.jsonl`` → ``run.truth.jsonl``; None for stdout or no file."""
    if events is None or events == "-":
        return None
    path = Path(events)
    stem = path.name.removesuffix(".jsonl")
    return str(path.with_name(f"{stem}.truth.jsonl"))


def _failure_rates(pairs: list[tuple[str, float]] | None) -> FailureRates:
    """Defaults, then each ``--fail KIND=RATE`` in order (``all`` sets every kind)."""
    rates = asdict(FailureRates())
    for kind, rate in pairs or ():
        rates.update(dict.fromkeys(KINDS, rate) if kind == "all" else {kind: rate})
    return FailureRates(**rates)


def run(args: argparse.Namespace) -> int:
    if args.out is None and args.to is None:
        raise UsageError("say where the events go: --out FILE.jsonl, --to TOPIC, or both")
    truth_path = args.truth or _truth_beside(args.out)
    if truth_path is None:
        raise UsageError("the ground truth needs a file here: add --truth FILE.jsonl")
    if truth_path == args.out or (args.out is not None and Path(truth_path) == Path(args.out)):
        raise UsageError("--truth and --out name the same file")
    if args.journeys is not None and args.duration is not None:
        raise UsageError("give --journeys or --duration, not both")
    if args.rate <= 0:
        raise UsageError("--rate must be above 0")
    journeys = 1000 if args.journeys is None else args.journeys
    if args.duration is not None:
        journeys = max(1, round(args.rate * args.duration))
    if args.customers is not None and not 1 <= args.customers <= max(journeys, 1):
        raise UsageError(f"--customers must be between 1 and the number of journeys ({journeys})")
    settings = target = None
    if args.to is not None:
        settings = settings_of(args)
        target = target_of(args, settings)
        asyncio.run(wait_for_broker(endpoint_of(settings), timeout=3))  # before any file is written
    try:
        config = SimulationConfig(
            journeys=journeys,
            customers=args.customers,
            seed=args.seed,
            start=args.start or SimulationConfig.start,
            arrival_rate_per_s=args.rate,
            anonymous_share=args.anonymous_share,
            guest_share=args.guest_share,
            disorder_s=args.disorder,
            allowed_lateness_s=max(SimulationConfig.allowed_lateness_s, args.disorder),
            failures=_failure_rates(args.fail),
            recovery_share=args.recovery_share,
            invalid_share=args.invalid_share,
            tail_s=args.tail,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    sim = simulate(config)
    if args.out is not None:
        write_lines(args.out, sim.lines)
    write_lines(truth_path, (t.to_json() for t in sim.truth))
    customers = len(sim.journey_keys)
    print(
        f"simulated {journeys} journeys of {customers} customers (seed {args.seed}): {sim.events} touchpoints"
        f" and {len(sim.invalid)} malformed lines, event time {_iso(config.start)} to {_iso(sim.end)}",
        file=sys.stderr,
    )
    statuses = collections.Counter(t.status for t in sim.truth)
    print(
        f"ground truth: {len(sim.truth)} moments ({statuses['failed']} failed, "
        f"{statuses['recovered']} recovered) in {truth_path}",
        file=sys.stderr,
    )
    if args.out is not None and args.out != "-":
        print(f"events in {args.out}", file=sys.stderr)
    if settings is not None and target is not None:
        records = records_of_file(sim.lines)
        summary = asyncio.run(send_records(settings, target, records, speed=args.speed, rewrite=False))
        print(summary.line(target, args.speed), file=sys.stderr)
    return 0
