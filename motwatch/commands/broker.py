"""``motwatch broker``: a Kafka broker on 127.0.0.1 (or a cluster of them), its jars fetched once."""

from __future__ import annotations

import argparse
import sys

from motwatch.commands.common import positive


def node_count(text: str) -> int:
    """An argument type: a whole number of nodes, at least 1."""
    value = positive(int)(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "broker", help="run a Kafka broker (or a cluster of them) on 127.0.0.1 (fetches its jars once)"
    )
    p.add_argument(
        "--port",
        type=positive(int),
        default=9092,
        help="listener port (0 picks a free one); with --nodes N the first node's, the others "
        "on the next N-1 ports (0: free ports for all)",
    )
    p.add_argument(
        "--nodes",
        type=node_count,
        default=1,
        help="run a KRaft cluster of N nodes, each broker and controller in its own JVM (384 MiB "
        "heap each); topics default to 3 replicas with 2 in sync (2 and 1 for two nodes); prints "
        "one 'ready' line listing every node; not with --secure (default: 1)",
    )
    p.add_argument("--fetch-only", action="store_true", help="only fetch the broker's jars into the cache")
    p.add_argument(
        "--secure",
        action="store_true",
        help="also listen with TLS (SSL) and TLS+SCRAM-SHA-512 (SASL_SSL), with ACLs on; prints "
        "a 'ready' line per listener, the CA file and the credentials file (a single node only)",
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
    return run_foreground(args.port, secure=args.secure, grant_all=args.grant_all, nodes=args.nodes)
