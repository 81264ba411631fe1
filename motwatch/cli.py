"""The ``motwatch`` command.

Every failure a user can cause (a bad argument, a missing file, a bad config,
an unreachable broker) ends in one line on stderr and a non-zero exit, never
a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import orjson

from motwatch.settings import ConfigError, Settings, load_settings

LOGICAL_TOPICS = ("touchpoints", "touchpoints-by-journey", "moments", "deadletter")


class UsageError(Exception):
    """A problem the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="settings file (default: $MOTWATCH_CONFIG, else ./config/motwatch.toml, else built-in defaults)",
    )


def _add_broker(parser: argparse.ArgumentParser) -> None:
    _add_config(parser)
    parser.add_argument(
        "--broker", metavar="HOST:PORT", help="Kafka bootstrap server (default: from settings)"
    )
    parser.add_argument("--prefix", metavar="PREFIX", help="topic prefix (default: from settings)")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "broker", None):
        overrides["broker"] = args.broker
    if getattr(args, "prefix", None) is not None:
        overrides["topic_prefix"] = args.prefix
    return load_settings(args.config, **overrides)


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
        return value

    return parse


def _duration(text: str) -> float:
    from motwatch.replay import parse_duration

    seconds = parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 2h, 7d")
    return seconds


def _time(text: str) -> Any:
    from datetime import UTC, datetime

    from motwatch.replay import ReplayError, parse_time

    try:
        return datetime.fromtimestamp(parse_time(text) / 1000, UTC)
    except ReplayError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(text: str) -> float:
    value = _positive(float)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be within 0..1")
    return value


def _failure(text: str) -> tuple[str, float]:
    from motwatch.moments import KINDS

    kind, sep, rate = text.partition("=")
    if not sep or kind.strip() not in (*KINDS, "all"):
        raise argparse.ArgumentTypeError(f"{text!r}: use KIND=RATE with KIND one of all, {', '.join(KINDS)}")
    try:
        return kind.strip(), _fraction(rate.strip())
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r}: RATE must be a number within 0..1") from None


def _add_target(parser: Any, default: str | None) -> None:
    """--to, --prefix (sandbox), --yes-production and --speed, as replay and simulate take them."""
    what = f"default: {default}" if default else "e.g. touchpoints"
    parser.add_argument(
        "--to", metavar="TOPIC", default=default, help=f"send to this topic, a full or logical name ({what})"
    )
    parser.add_argument(
        "--prefix",
        dest="sandbox_prefix",
        metavar="PREFIX",
        default="sandbox.",
        help="namespace of a logical --to name (default: sandbox.)",
    )
    parser.add_argument(
        "--yes-production", action="store_true", help="allow a target in the production namespace"
    )
    parser.add_argument(
        "--speed",
        type=_positive(float),
        default=0.0,
        help="times the original pace, from the records' timestamps; 0 = as fast as possible (default)",
    )


def _topic(settings: Settings, name: str) -> str:
    """A logical name (``moments``) gets the prefix; any other name is taken as it is."""
    return settings.topic(name) if name in LOGICAL_TOPICS else name


def _read_lines(path: str) -> list[bytes]:
    if path == "-":
        return sys.stdin.buffer.read().splitlines()
    try:
        return Path(path).read_bytes().splitlines()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a JSONL file") from None
    except PermissionError:
        raise UsageError(f"cannot read {path}: permission denied") from None


def _open_out(path: str | None) -> IO[bytes]:
    if path is None or path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "wb")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


# -- commands -----------------------------------------------------------------
def cmd_broker(args: argparse.Namespace) -> int:
    from motwatch.broker import check_tools, ensure_jars, lib_dir, run_foreground

    if args.fetch_only:
        check_tools()
        ensure_jars(announce=lambda line: print(line, file=sys.stderr))
        print(f"Kafka jars in {lib_dir()}")
        return 0
    return run_foreground(args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    from motwatch.demo import run_demo

    return run_demo(journeys=args.journeys, rate=args.rate, workdir=args.dir)


def cmd_status(args: argparse.Namespace) -> int:
    from motwatch.status import StatusError, status

    url = args.url
    if url is None:  # the worker this machine's settings describe
        settings = load_settings(args.config)
        host = "127.0.0.1" if settings.web_bind in ("", "0.0.0.0", "::") else settings.web_bind
        url = f"{host}:{settings.web_port}"
    try:
        sys.stdout.write(status(url, args.window))
    except StatusError as exc:
        raise UsageError(str(exc)) from None
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from motwatch.worker import run_worker

    return run_worker(_settings(args), loglevel=args.loglevel)


def cmd_produce(args: argparse.Namespace) -> int:
    from motwatch import transport
    from motwatch.validation import journey_key_of

    settings = _settings(args)
    topic = _topic(settings, args.topic) if args.topic else settings.touchpoints_topic
    lines = _read_lines(args.file)

    def key_of(raw: bytes) -> bytes | None:
        key = journey_key_of(raw)
        return key.encode() if key is not None else None

    async def go() -> int:
        await transport.wait_for_broker(settings.broker, timeout=3)
        await transport.create_topics(
            settings.broker, [topic], settings.partitions, settings.replication_factor
        )
        return await transport.produce_lines(settings.broker, topic, lines, key_of)

    sent = asyncio.run(go())
    print(f"sent {sent} messages to {topic}")
    return 0


def _selection(args: argparse.Namespace) -> Any:
    from motwatch.replay import parse_offsets, parse_time
    from motwatch.transport import Selection

    return Selection(
        since_ms=parse_time(args.since) if args.since else None,
        until_ms=parse_time(args.until) if args.until else None,
        offsets=parse_offsets(args.offsets) if args.offsets else None,
    )


def _add_range(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", metavar="TIME", help="from this record time: RFC 3339, or relative like 2h, 30m, 7d"
    )
    parser.add_argument("--until", metavar="TIME", help="up to this record time (inclusive), same forms")
    parser.add_argument(
        "--offsets",
        metavar="P:FIRST-LAST,...",
        help="offset ranges per partition, inclusive, either end open (e.g. 0:100-200,1:50-)",
    )


def cmd_record(args: argparse.Namespace) -> int:
    from motwatch import transport

    settings = _settings(args)
    topic = _topic(settings, args.topic)
    selection = _selection(args)
    out = _open_out(args.out)

    async def go() -> int:
        await transport.wait_for_broker(settings.broker, timeout=3)
        return await transport.record(
            settings.broker,
            topic,
            out,
            from_beginning=args.from_beginning,
            idle_s=args.idle,
            max_messages=args.max,
            with_meta=args.with_meta,
            selection=selection,
        )

    try:
        count = asyncio.run(go())
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    print(f"recorded {count} messages from {topic}", file=sys.stderr)
    return 0


def _target(args: argparse.Namespace, settings: Settings) -> str:
    """``--to`` under the sandbox ``--prefix``; the production namespace only with ``--yes-production``."""
    from motwatch.replay import resolve_target

    return resolve_target(args.to, args.sandbox_prefix, settings.topic_prefix, args.yes_production)


def cmd_replay(args: argparse.Namespace) -> int:
    from motwatch import replay, transport

    settings = _settings(args)
    target = _target(args, settings)
    if args.source.startswith("kafka:"):
        source_topic = _topic(settings, args.source.removeprefix("kafka:"))
        if source_topic == target:
            raise UsageError("the source and the target are the same topic")
        messages = transport.read_records(
            settings.broker,
            source_topic,
            from_beginning=True,
            idle_s=args.idle,
            selection=_selection(args),
        )
        loaded = asyncio.run(replay.from_topic(messages))
    else:
        if args.since or args.until or args.offsets:
            raise UsageError("--since, --until and --offsets select from a topic (kafka:NAME), not a file")
        loaded = replay.records_of_file(_read_lines(args.source))
    summary = asyncio.run(_send_records(settings, target, loaded, speed=args.speed, rewrite=args.rewrite_ids))
    print(summary.line(target, args.speed))
    return 0


async def _send_records(
    settings: Settings, target: str, records: list[Any], *, speed: float, rewrite: bool
) -> Any:
    """Replay records into ``target`` (created when missing); returns once every one is acknowledged."""
    from motwatch import replay, transport

    await transport.wait_for_broker(settings.broker, timeout=3)
    await transport.create_topics(settings.broker, [target], settings.partitions, settings.replication_factor)
    async with transport.topic_writer(settings.broker, target, client_id="motwatch-replay") as writer:

        async def send(rec: replay.Record) -> None:
            await writer.send(rec.value, rec.key, rec.timestamp_ms, rec.headers)

        ordered = replay.iterate(replay.in_time_order(records))
        return await replay.replay(ordered, send, speed=speed, rewrite=rewrite, total=len(records))


def _write_lines(path: str, lines: Iterable[bytes]) -> None:
    out = _open_out(path)
    try:
        out.writelines(line + b"\n" for line in lines)
    finally:
        out.flush()
        if out is not sys.stdout.buffer:
            out.close()


def _iso(when: Any) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z") if when else "-"


def _truth_beside(events: str | None) -> str | None:
    """``run.jsonl`` → ``run.truth.jsonl``; None for stdout or no file."""
    if events is None or events == "-":
        return None
    path = Path(events)
    stem = path.name.removesuffix(".jsonl")
    return str(path.with_name(f"{stem}.truth.jsonl"))


def _failure_rates(pairs: list[tuple[str, float]] | None) -> Any:
    """Defaults, then each ``--fail KIND=RATE`` in order (``all`` sets every kind)."""
    from dataclasses import asdict

    from motwatch.simulate import KINDS, FailureRates

    rates = asdict(FailureRates())
    for kind, rate in pairs or ():
        rates.update(dict.fromkeys(KINDS, rate) if kind == "all" else {kind: rate})
    return FailureRates(**rates)


def cmd_simulate(args: argparse.Namespace) -> int:
    from motwatch import replay
    from motwatch.simulate import SimulationConfig, simulate

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
        from motwatch.transport import wait_for_broker

        settings = _settings(args)
        target = _target(args, settings)
        asyncio.run(wait_for_broker(settings.broker, timeout=3))  # before any file is written
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
        _write_lines(args.out, sim.lines)
    _write_lines(truth_path, (t.to_json() for t in sim.truth))
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
        records = replay.records_of_file(sim.lines)
        summary = asyncio.run(_send_records(settings, target, records, speed=args.speed, rewrite=False))
        print(summary.line(target, args.speed), file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from motwatch import evaluate

    try:
        result = evaluate.compare(
            _read_lines(args.moments), _read_lines(args.truth), names=(args.moments, args.truth)
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for line in evaluate.table(result.scores):
        print(line)
    if result.ids is not None:
        both, only_reported, only_expected = result.ids
        print(
            f"moment ids: {both} in both, {only_reported} only in {args.moments}, "
            f"{only_expected} only in {args.truth}"
        )
    low = evaluate.below_bar(result.scores, args.min_precision, args.min_recall)
    if low:
        bar = f"precision >= {args.min_precision:g}, recall >= {args.min_recall:g}"
        print(f"motwatch evaluate: below the bar ({bar}): {', '.join(s.kind for s in low)}", file=sys.stderr)
        return 1
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from motwatch.deadletter import encode_dead_letter
    from motwatch.detect import run_detect
    from motwatch.garbage import collect_less_often

    settings = load_settings(args.config)
    lines = _read_lines(args.file)
    collect_less_often()
    out = _open_out(args.output)
    dead: IO[bytes] | None = _open_out(args.dead_letter) if args.dead_letter else None
    try:
        summary = run_detect(
            lines,
            settings,
            on_moment=lambda m: out.write(m.to_json() + b"\n"),
            on_reject=lambda r: dead.write(encode_dead_letter(r) + b"\n") if dead else None,
            source_name=args.file,
            flush=args.flush,
        )
    finally:
        out.flush()
        if out is not sys.stdout.buffer:
            out.close()
        if dead is not None:
            dead.close()
    for line in summary.lines():
        print(line, file=sys.stderr)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from motwatch.streams.schema import schemas

    for name, schema in schemas().items():
        if args.name in (None, name):
            sys.stdout.buffer.write(orjson.dumps(schema, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from motwatch.moments import KINDS

    parser = _Parser(
        prog="motwatch",
        description="Watch customer journeys live and raise the alarm when a moment of truth fails.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("worker", help="run the stream worker (all agents)")
    _add_broker(p)
    p.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("produce", help="send a JSONL file, one message per line, to a topic")
    p.add_argument("file", metavar="FILE.jsonl", help="events, one JSON object per line ('-' for stdin)")
    p.add_argument("--topic", metavar="NAME", help="topic (default: the touchpoints topic)")
    _add_broker(p)
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("record", help="write a topic's messages to a JSONL file")
    p.add_argument("topic", metavar="TOPIC", help=f"topic name, or one of {', '.join(LOGICAL_TOPICS)}")
    p.add_argument("--out", metavar="FILE.jsonl", required=True, help="output file ('-' for stdout)")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    p.add_argument(
        "--idle",
        metavar="SECONDS",
        type=_positive(float),
        default=5.0,
        help="stop after this long without new messages",
    )
    p.add_argument("--max", metavar="N", type=_positive(int), help="stop after N messages")
    p.add_argument(
        "--with-meta", action="store_true", help="write key, partition, offset, timestamp and headers too"
    )
    _add_range(p)
    _add_broker(p)
    p.set_defaults(func=cmd_record)

    p = sub.add_parser(
        "replay",
        help="replay a recorded file or topic into a (sandbox) topic",
        description=(
            "Sends a recorded file or a topic's range to a topic, keeping keys, timestamps and headers; "
            "a recording's partitions go side by side in time order. A logical --to name goes under the "
            "sandbox prefix, where a worker started with the same --prefix processes it in isolation."
        ),
    )
    p.add_argument(
        "source", metavar="SOURCE", help="a JSONL file (events, or record --with-meta lines), or kafka:TOPIC"
    )
    _add_target(p, default="touchpoints")
    p.add_argument("--rewrite-ids", action="store_true", help="give every event a fresh event_id")
    p.add_argument(
        "--idle",
        metavar="SECONDS",
        type=_positive(float),
        default=5.0,
        help="kafka source: stop after this long without news",
    )
    _add_range(p)
    _add_config(p)
    p.add_argument("--broker", metavar="HOST:PORT", help="Kafka bootstrap server (default: from settings)")
    p.set_defaults(func=cmd_replay)

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
        "--journeys", metavar="N", type=_positive(int), help="journeys to simulate (default: 1000)"
    )
    size.add_argument(
        "--duration",
        type=_duration,
        metavar="D",
        help="instead of --journeys: new customers arrive for this long, e.g. 30m, 2h, 1d",
    )
    size.add_argument(
        "--rate",
        metavar="R",
        type=_positive(float),
        default=2.0,
        help="new customers per second of event time (default: 2)",
    )
    size.add_argument(
        "--customers",
        metavar="N",
        type=_positive(int),
        help="fewer customers than journeys: returning customers, one journey key each (default: one each)",
    )
    size.add_argument(
        "--start",
        metavar="TIME",
        type=_time,
        default=None,
        help="event time of the start: RFC 3339, or 30d for 30 days ago (default: 2026-03-02T00:00Z)",
    )
    size.add_argument(
        "--tail",
        type=_duration,
        metavar="D",
        default=8 * 86400.0,
        help="quiet traffic after the journeys, so every timeout fires (default: 8d)",
    )
    size.add_argument(
        "--seed",
        metavar="N",
        type=_positive(int),
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
        type=_fraction,
        default=0.35,
        help="injected timeouts that recover later (default: 0.35)",
    )
    mix.add_argument(
        "--anonymous-share",
        metavar="X",
        type=_fraction,
        default=0.3,
        help="journeys that start anonymous (default: 0.3)",
    )
    mix.add_argument(
        "--guest-share",
        metavar="X",
        type=_fraction,
        default=0.5,
        help="anonymous buyers who check out as guests and log in to pay (default: 0.5)",
    )
    mix.add_argument(
        "--disorder",
        type=_duration,
        metavar="D",
        default=0.0,
        help="each event reaches the file up to D after it happened, out of order (default: 0; "
        "the truth holds up to the allowed lateness, 2m)",
    )
    mix.add_argument(
        "--invalid-share",
        metavar="X",
        type=_fraction,
        default=0.0,
        help="malformed lines among all (default: 0)",
    )
    topic = p.add_argument_group("to a topic")
    _add_target(topic, default=None)
    _add_config(topic)
    topic.add_argument(
        "--broker", metavar="HOST:PORT", help="Kafka bootstrap server (default: from settings)"
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "evaluate",
        help="precision and recall of reported moments against a ground truth, per kind",
        description=(
            "Matches moments to the truth by journey, kind and status (each truth line once). The truth is "
            "a simulate truth file, or another run's moments (then moment ids are compared too). Exits 1 "
            "when a kind falls below --min-precision or --min-recall."
        ),
    )
    p.add_argument(
        "--moments", metavar="FILE.jsonl", required=True, help="the moments reported ('-' for stdin)"
    )
    p.add_argument("--truth", metavar="FILE.jsonl", required=True, help="what should have been reported")
    p.add_argument(
        "--min-precision",
        metavar="P",
        type=_fraction,
        default=0.0,
        help="the bar for every kind (default: 0)",
    )
    p.add_argument(
        "--min-recall", metavar="R", type=_fraction, default=0.0, help="the bar for every kind (default: 0)"
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("broker", help="run a single-node Kafka broker on 127.0.0.1 (fetches its jars once)")
    p.add_argument("--port", type=_positive(int), default=9092, help="listener port (0 picks a free one)")
    p.add_argument("--fetch-only", action="store_true", help="only fetch the broker's jars into the cache")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("demo", help="run broker, worker and simulated journeys live on this machine")
    p.add_argument("--journeys", type=_positive(int), default=300, help="simulated journeys to feed")
    p.add_argument("--rate", type=_positive(float), default=150.0, help="messages per second")
    p.add_argument(
        "--dir",
        metavar="DIR",
        default=".motwatch-data/demo",
        help="where its files go: events, moments reported, ground truth, worker log (default: %(default)s)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("status", help="a one-screen summary of a running worker, from its /metrics")
    p.add_argument(
        "--url",
        metavar="URL",
        help="the worker: host:port, its base URL or its /metrics URL (default: web_port of the settings)",
    )
    p.add_argument(
        "--window",
        metavar="SECONDS",
        type=_positive(float),
        default=5.0,
        help="read the worker twice this far apart; rates are over this window (default: 5)",
    )
    _add_config(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("detect", help="run the detectors on a JSONL file, offline, without Kafka")
    p.add_argument("file", metavar="FILE.jsonl", help="touchpoint events ('-' for stdin)")
    p.add_argument("--output", metavar="FILE", help="moment events, one per line (default: stdout)")
    p.add_argument("--dead-letter", metavar="FILE", help="rejected lines, as dead-letter records")
    p.add_argument(
        "--flush", action="store_true", help="at the end, fire every open timeout as if the stream went on"
    )
    _add_config(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("schema", help="print the JSON Schema of the contract")
    p.add_argument("name", nargs="?", choices=["touchpoint", "moment", "deadletter"])
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from motwatch.broker import BrokerError
    from motwatch.replay import ReplayError
    from motwatch.transport import TransportError

    try:
        return int(args.func(args) or 0)
    except (UsageError, ConfigError, BrokerError, TransportError, ReplayError) as exc:
        print(f"motwatch {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
