"""``motwatch broker``: a single-node Kafka broker on 127.0.0.1, its jars fetched once."""

from __future__ import annotations

import argparse
import sys

from motwatch.commands.common import positive


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help="run a single-node Kafka broker on 127.0.0.1 (fetches its jars once)")
    p.add_argument("--port", type=positive(int), default=9092, help="listener port (0 picks a free one)")
    p.add_argument("--fetch-only", action="store_true", help="only fetch the broker's jars into the cache")
    p.add_argument(
        "--secure",
        action="store_true",
        help="also listen with TLS (SSL) and TLS+SCRAM-SHA-512 (SASL_SSL), with ACLs on; prints "
        "a 'ready' line per listener, the CA file and the credentials file",
    )
    p.add_argument(
        "--grant-all",
        action="store_true",
        help="with --secure: give its SCRAM user every right (it has none otherwise)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from motwatch.kafka.broker import check_tools, ensure_jars, lib_dir, run_foreground

    if args.fetch_only:
        check_tools()
        ensure_jars(announce=lambda line: print(line, file=sys.stderr))
        print(f"Kafka jars in {lib_dir()}")
        return 0
    return run_foreground(args.port, secure=args.secure, grant_all=args.grant_all)
