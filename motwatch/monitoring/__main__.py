"""``python -m motwatch.monitoring [--check]``: regenerate the dashboards, rules, alerts and their tables."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from motwatch.monitoring.generate import REPO, stale, write_all
from motwatch.settings import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motwatch.monitoring", description=__doc__)
    parser.add_argument("--root", type=Path, default=REPO, help="repository root (default: this checkout)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    parser.add_argument(
        "--config", type=Path, help="settings file whose [teams] alert routing uses (default: defaults)"
    )
    args = parser.parse_args(argv)
    try:
        settings = None if args.config is None else load_settings(args.config, environ={})
        if args.check:
            out_of_date = stale(args.root, settings)
            for path in out_of_date:
                print(f"out of date: {path} (run python -m motwatch.monitoring)", file=sys.stderr)
            return 1 if out_of_date else 0
        for path in write_all(args.root, settings):
            print(f"wrote {path}")
    except (ValueError, ConfigError) as exc:  # e.g. README.md lost its marker comments
        print(f"python -m motwatch.monitoring: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
