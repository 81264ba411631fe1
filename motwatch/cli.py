"""The ``motwatch`` command: one sub-command per module of :mod:`motwatch.commands`.

Every failure a user can cause (a bad argument, a missing file, a bad config,
an unreachable broker) ends in one line on stderr and a non-zero exit, never
a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from motwatch.commands import (
    broker,
    collect,
    demo,
    detect,
    evaluate,
    explain,
    moments,
    produce,
    record,
    replay,
    schema,
    simulate,
    status,
    worker,
)
from motwatch.commands.common import ArgumentParser, UsageError
from motwatch.kafka.broker import BrokerError
from motwatch.kafka.connection import TransportError
from motwatch.settings import ConfigError

# In the order ``motwatch --help`` lists them.
COMMANDS = (
    worker,
    collect,
    produce,
    record,
    replay,
    simulate,
    evaluate,
    broker,
    demo,
    status,
    moments,
    explain,
    detect,
    schema,
)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="motwatch",
        description="Watch customer journeys live and raise the alarm when a moment of truth fails.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, ConfigError, BrokerError, TransportError, replay.ReplayError) as exc:
        print(f"motwatch {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
