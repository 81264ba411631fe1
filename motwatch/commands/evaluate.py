"""``motwatch evaluate``: precision and recall of reported moments against a ground truth.

A moment matches a truth entry when journey, kind and status agree; each
truth entry matches at most one moment (multisets, not sets), so a repeat
counts against precision. The truth is ``motwatch simulate``'s truth file,
or moments themselves (another run's, e.g. production's for a replay), and
either file may hold ``motwatch record --with-meta`` lines.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from motwatch.commands.common import UsageError, fraction, read_lines

Key = tuple[str, str, str]  # journey_key, kind, status


@dataclass(frozen=True)
class Score:
    kind: str
    reported: int
    expected: int
    matched: int

    @property
    def precision(self) -> float:
        return self.matched / self.reported if self.reported else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else 1.0


def _records(lines: Iterable[bytes], source: str) -> list[dict[str, Any]]:
    """The JSON objects of a file; a ``record --with-meta`` line stands for its value."""
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            if isinstance(obj, dict) and "offset" in obj and isinstance(obj.get("value"), str):
                obj = orjson.loads(obj["value"])
            if not (isinstance(obj, dict) and isinstance(obj.get("journey_key"), str) and "kind" in obj):
                raise TypeError
        except (orjson.JSONDecodeError, TypeError):
            raise ValueError(f"{source} line {number}: not a moment or truth record") from None
        out.append(obj)
    return out


def _keys(records: list[dict[str, Any]]) -> Counter[Key]:
    return Counter((r["journey_key"], r["kind"], r.get("status", "failed")) for r in records)


@dataclass(frozen=True)
class Comparison:
    """How two files of moments agree: scores per kind, and by ``moment_id`` when both have ids."""

    scores: list[Score]
    # (in both, only reported, only expected) distinct moment ids; None unless both files have ids.
    ids: tuple[int, int, int] | None


def compare(
    moments: Iterable[bytes], truth: Iterable[bytes], names: tuple[str, str] = ("moments", "truth")
) -> Comparison:
    got_records, want_records = _records(moments, names[0]), _records(truth, names[1])
    ids = None
    got_ids = {r.get("moment_id") for r in got_records}
    want_ids = {r.get("moment_id") for r in want_records}
    if None not in got_ids and None not in want_ids and want_records:
        ids = (len(got_ids & want_ids), len(got_ids - want_ids), len(want_ids - got_ids))
    return Comparison(_score(_keys(got_records), _keys(want_records)), ids)


def score(moments: Iterable[bytes], truth: Iterable[bytes]) -> list[Score]:
    """One score per kind (and status), plus ``all``; kinds sorted."""
    return compare(moments, truth).scores


def _score(got: Counter[Key], want: Counter[Key]) -> list[Score]:
    matched = got & want
    groups = sorted({(k[1], k[2]) for k in got | want})
    out = []
    for kind, status in groups:

        def total(counter: Counter[Key], kind: str = kind, status: str = status) -> int:
            return sum(n for key, n in counter.items() if key[1] == kind and key[2] == status)

        out.append(Score(f"{kind} ({status})", total(got), total(want), total(matched)))
    out.append(Score("all", sum(got.values()), sum(want.values()), sum(matched.values())))
    return out


def table(scores: list[Score]) -> list[str]:
    lines = [f"{'kind':<38} {'reported':>8} {'expected':>8} {'matched':>8} {'precision':>9} {'recall':>7}"]
    for s in scores:
        counts = f"{s.reported:>8} {s.expected:>8} {s.matched:>8}"
        lines.append(f"{s.kind:<38} {counts} {s.precision:>9.3f} {s.recall:>7.3f}")
    return lines


def below_bar(scores: list[Score], min_precision: float, min_recall: float) -> list[Score]:
    return [s for s in scores if s.precision < min_precision or s.recall < min_recall]


def add_parser(sub: argparse._SubParsersAction) -> None:
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
        type=fraction,
        default=0.0,
        help="the bar for every kind (default: 0)",
    )
    p.add_argument(
        "--min-recall", metavar="R", type=fraction, default=0.0, help="the bar for every kind (default: 0)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        result = compare(read_lines(args.moments), read_lines(args.truth), names=(args.moments, args.truth))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for line in table(result.scores):
        print(line)
    if result.ids is not None:
        both, only_reported, only_expected = result.ids
        print(
            f"moment ids: {both} in both, {only_reported} only in {args.moments}, "
            f"{only_expected} only in {args.truth}"
        )
    low = below_bar(result.scores, args.min_precision, args.min_recall)
    if low:
        bar = f"precision >= {args.min_precision:g}, recall >= {args.min_recall:g}"
        print(f"motwatch evaluate: below the bar ({bar}): {', '.join(s.kind for s in low)}", file=sys.stderr)
        return 1
    return 0
