"""``python -m motwatch.kafka.broker --port N``: the broker without the rest of the CLI.

Handy in scripts and tests that must not depend on ``motwatch.cli``.
"""

from __future__ import annotations

import argparse
import sys

from . import BrokerError, run_foreground


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m motwatch.kafka.broker",
        description="Run a local single-node Kafka broker until interrupted.",
    )
    parser.add_argument("--port", type=int, default=9092, help="listener port; 0 = any free port")
    parser.add_argument("--heap-mb", type=int, default=512, help="JVM heap size in MiB")
    parser.add_argument("--data-dir", default=None, help="keep data here instead of a temp dir")
    parser.add_argument("--secure", action="store_true", help="add SSL and SASL_SSL listeners and ACLs")
    parser.add_argument("--grant-all", action="store_true", help="with --secure: give its user every right")
    args = parser.parse_args(argv)
    try:
        return run_foreground(
            args.port,
            heap_mb=args.heap_mb,
            data_dir=args.data_dir,
            secure=args.secure,
            grant_all=args.grant_all,
        )
    except BrokerError as exc:
        print(f"motwatch broker: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
