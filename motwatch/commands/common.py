"""What the commands share: one-line usage errors, argument types, settings from flags, files in and out."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn

from motwatch.settings import Settings, load_settings

LOGICAL_TOPICS = ("touchpoints", "touchpoints-by-journey", "moments", "deadletter")

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class UsageError(Exception):
    """A problem the user can fix; printed as one line."""


class ArgumentParser(argparse.ArgumentParser):
    """Bad arguments end in one line that points to ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- settings from flags -------------------------------------------------------
def add_config(parser: Any) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="settings file (default: $MOTWATCH_CONFIG, else ./config/motwatch.toml, else built-in defaults)",
    )


def add_broker(parser: Any) -> None:
    add_config(parser)
    parser.add_argument(
        "--broker", metavar="HOST:PORT", help="Kafka bootstrap server (default: from settings)"
    )
    parser.add_argument("--prefix", metavar="PREFIX", help="topic prefix (default: from settings)")


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings file, with ``--broker`` and ``--prefix`` over it."""
    overrides: dict[str, Any] = {}
    if getattr(args, "broker", None):
        overrides["broker"] = args.broker
    if getattr(args, "prefix", None) is not None:
        overrides["topic_prefix"] = args.prefix
    return load_settings(args.config, **overrides)


def topic_name(settings: Settings, name: str) -> str:
    """A logical name (``moments``) gets the prefix; any other name is taken as it is."""
    return settings.topic(name) if name in LOGICAL_TOPICS else name


# -- times and durations -------------------------------------------------------
def parse_duration(text: str) -> float | None:
    """``90s``, ``30m``, ``2h``, ``7d``, ``1w`` → seconds; None when the text is no such duration."""
    match = _RELATIVE.match(text.strip())
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


def parse_time(text: str, now: datetime | None = None) -> int:
    """RFC 3339 (``2026-03-02T14:00:00Z``) or relative to now (``90m``, ``2h``, ``7d``) → epoch ms."""
    seconds = parse_duration(text)
    if seconds is not None:
        ago = timedelta(seconds=seconds)
        return round(((now or datetime.now(UTC)) - ago).timestamp() * 1000)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{text!r} is neither an RFC 3339 time nor a relative one like 2h") from None
    if when.tzinfo is None:
        example = when.isoformat(timespec="seconds")
        raise UsageError(f"{text!r} needs a UTC offset, e.g. {example}Z or {example}+01:00")
    return round(when.timestamp() * 1000)


def parse_offsets(text: str) -> dict[int, tuple[int | None, int | None]]:
    """``0:100-200,1:50-,2:-99`` → {partition: (first, last)} with inclusive, open-ended ranges."""
    ranges: dict[int, tuple[int | None, int | None]] = {}
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d*)\s*-\s*(\d*)\s*", part)
        if not match:
            raise UsageError(f"bad offset range {part.strip()!r}: use PARTITION:FIRST-LAST, e.g. 0:100-200")
        first = int(match.group(2)) if match.group(2) else None
        last = int(match.group(3)) if match.group(3) else None
        if first is not None and last is not None and last < first:
            raise UsageError(f"bad offset range {part.strip()!r}: last is before first")
        ranges[int(match.group(1))] = (first, last)
    return ranges


# -- argument types ------------------------------------------------------------
def positive(kind: type) -> Callable[[str], Any]:
    """An argument type: a number of ``kind`` (int, float) that is not negative."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
        return value

    return parse


def fraction(text: str) -> float:
    """An argument type: a number within 0..1."""
    value = positive(float)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be within 0..1")
    return value


def duration(text: str) -> float:
    """An argument type: a duration like 90s, 30m, 2h, 7d, in seconds."""
    seconds = parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 2h, 7d")
    return seconds


def point_in_time(text: str) -> datetime:
    """An argument type: RFC 3339, or a duration ago."""
    try:
        return datetime.fromtimestamp(parse_time(text) / 1000, UTC)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- files ---------------------------------------------------------------------
def read_lines(path: str) -> list[bytes]:
    """The file's lines (``-``: stdin); a missing or unreadable file is a UsageError."""
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


def open_out(path: str | None) -> IO[bytes]:
    """The file to write (None or ``-``: stdout); one that cannot be written is a UsageError."""
    if path is None or path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "wb")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def close_out(out: IO[bytes]) -> None:
    """Flush ``out``; close it unless it is stdout."""
    out.flush()
    if out is not sys.stdout.buffer:
        out.close()


def write_lines(path: str, lines: Iterable[bytes]) -> None:
    out = open_out(path)
    try:
        out.writelines(line + b"\n" for line in lines)
    finally:
        close_out(out)
