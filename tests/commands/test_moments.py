"""``motwatch moments`` without Kafka: filters, order, counts and table over moment dicts; bad arguments."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from motwatch.commands import moments as cmd
from motwatch.core.moments import Moment
from tests.workers import run_cli

BASE_MS = 1_788_000_000_000


def _moment(n: int, kind: str, status: str, owner: str, journey: str, at_s: int, **details) -> dict:
    return Moment(
        moment_id=f"{n:x}" + "c0ffee" * 5 + "d",  # n: its first digit
        status=status,  # type: ignore[arg-type]
        kind=kind,
        moment="FMOT" if kind != "negative_review" else "UMOT",
        phase="purchase",
        severity="high",
        owner=owner,
        journey_key=journey,
        channel="web",
        occurred_ms=BASE_MS + at_s * 1000,
        evidence=(f"e{n}",),
        details=details,
    ).to_dict()


MOMENTS = [
    _moment(1, "broken_link", "failed", "web", "c:1", 10, url="/sale", http_status=404),
    _moment(2, "abandoned_checkout", "failed", "ecommerce", "c:2", 30, cart_value=99.5),
    _moment(3, "abandoned_checkout", "recovered", "ecommerce", "c:2", 50),
    _moment(4, "negative_review", "failed", "support", "c:3", 30, rating=1),
    _moment(5, "broken_link", "failed", "web", "c:1", 70, url="/x " * 40),
]


def _values(moments: list[dict]) -> list[bytes]:
    return [orjson.dumps(m) for m in moments]


def _ids(moments: list[dict]) -> list[int]:
    return [int(m["moment_id"][0], 16) for m in moments]


@pytest.mark.parametrize(
    "filters, expected",
    [
        (cmd.Filters(), [1, 2, 3, 4, 5]),
        (cmd.Filters(kinds=frozenset({"broken_link", "negative_review"})), [1, 4, 5]),
        (cmd.Filters(owners=frozenset({"ecommerce"})), [2, 3]),
        (cmd.Filters(status="recovered"), [3]),
        (cmd.Filters(moment="UMOT"), [4]),
        (cmd.Filters(journey="c:1"), [1, 5]),
        (cmd.Filters(journey="c:2", status="failed"), [2]),
        (cmd.Filters(id_prefix=MOMENTS[3]["moment_id"][:12]), [4]),
        (cmd.Filters(kinds=frozenset({"broken_link"}), owners=frozenset({"support"})), []),
    ],
)
def test_select_keeps_the_moments_every_filter_matches(filters, expected):
    found = cmd.select(_values(MOMENTS), filters)
    assert _ids(found.moments) == expected
    assert (found.unreadable, found.repeats) == (0, 0)


def test_select_drops_repeated_ids_and_counts_what_is_no_moment():
    values = [b"not json", b"[1]", orjson.dumps({"moment_id": "x", "occurred_at": "yesterday"}), None]
    values += _values(MOMENTS) + _values(MOMENTS[:2])
    found = cmd.select(values, cmd.Filters())
    assert _ids(found.moments) == [1, 2, 3, 4, 5]
    assert found.unreadable == 4
    assert found.repeats == 2


def test_newest_first_by_occurred_at_then_by_id():
    shuffled = [MOMENTS[i] for i in (3, 0, 4, 1, 2)]
    # 2 and 4 happened at the same time: the smaller id first.
    assert _ids(cmd.newest_first(shuffled)) == [5, 3, 2, 4, 1]


def test_newest_first_compares_times_not_text():
    late = dict(MOMENTS[0], occurred_at="2026-08-30T10:00:00.000+02:00", moment_id="b")
    early = dict(MOMENTS[0], occurred_at="2026-08-30T09:00:00.000Z", moment_id="a")  # 1 h after late
    assert [m["moment_id"] for m in cmd.newest_first([late, early])] == ["a", "b"]


def test_counts_per_kind_and_status():
    assert cmd.counts(MOMENTS) == {
        "abandoned_checkout": {"failed": 1, "recovered": 1},
        "broken_link": {"failed": 2},
        "negative_review": {"failed": 1},
    }
    lines = cmd.summary(MOMENTS, shown=2)
    assert lines[0] == "5 moments matched, 2 shown"
    assert [line.split() for line in lines[1:]] == [
        ["abandoned_checkout", "failed", "1", "recovered", "1"],
        ["broken_link", "failed", "2", "recovered", "0"],
        ["negative_review", "failed", "1", "recovered", "0"],
    ]


def test_table_one_aligned_row_per_moment_with_a_short_id_and_a_one_line_detail():
    rows = cmd.table(cmd.newest_first(MOMENTS))
    assert rows[0].split() == list(cmd.TABLE_COLUMNS)
    assert len(rows) == 1 + len(MOMENTS)
    starts = {
        row.index(m["moment_id"][: cmd.SHORT_ID])
        for row, m in zip(rows[1:], cmd.newest_first(MOMENTS), strict=True)
    }
    assert len(starts) == 1  # the id column lines up
    first = rows[1]
    assert first.startswith(MOMENTS[4]["occurred_at"])
    assert MOMENTS[4]["moment_id"] not in first  # shortened
    assert "\n" not in "".join(rows)
    assert "FMOT high web url=/x /x" in first
    assert first.endswith("…") and len(cmd.detail(MOMENTS[4])) == cmd.DETAIL_WIDTH
    assert cmd.detail(MOMENTS[0]) == "FMOT high web url=/sale http_status=404"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Built-in settings and an unreachable broker: argument errors must come before any connection."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOTWATCH_")}
    clean["MOTWATCH_BROKER"] = "127.0.0.1:1"
    (tmp_path / "defaults.toml").write_text("")
    clean["MOTWATCH_CONFIG"] = str(tmp_path / "defaults.toml")
    return clean


@pytest.mark.parametrize(
    "args, says",
    [
        (("--kind", "abandoned_cart"), "unknown kind 'abandoned_cart'"),
        (("--kind", "broken_link", "--kind", "nope"), "unknown kind 'nope'"),
        (("--moment", "TMOT"), "unknown moment 'TMOT'"),
        (("--status", "open"), "invalid choice: 'open'"),
        (("--since", "yesterday"), "'yesterday' is neither an RFC 3339 time"),
        (("--until", "2026-03-02T10:00:00"), "needs a UTC offset"),
        (("--limit", "-1"), "must not be negative"),
        (("--since", "1h", "--until", "2h"), "--until is before --since"),
    ],
)
def test_bad_arguments_end_in_one_line_and_exit_2(env, args, says):
    done = run_cli("moments", *args, env=env, timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert says in err
    assert done.stdout == b""


def test_help_says_the_default_since(env):
    done = run_cli("moments", "--help", env=env, timeout=60)
    assert done.returncode == 0
    assert "(default: 1h)" in " ".join(done.stdout.decode().split())
