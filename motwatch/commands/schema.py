"""``motwatch schema``: print the JSON Schema of the contract (touchpoint, moment, dead-letter record)."""

from __future__ import annotations

import argparse
import sys

import orjson


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of the contract")
    p.add_argument("name", nargs="?", choices=["touchpoint", "moment", "deadletter"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from motwatch.streams.schema import schemas

    for name, schema in schemas().items():
        if args.name in (None, name):
            sys.stdout.buffer.write(orjson.dumps(schema, option=orjson.OPT_INDENT_2) + b"\n")
    return 0
