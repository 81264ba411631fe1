"""``motwatch simulate``, ``detect`` and ``evaluate`` together, offline: the truth is met exactly.

Also the one-line errors of ``simulate``, ``evaluate``, ``replay`` and ``record`` that need no broker.
"""

from __future__ import annotations

import os

import orjson
import pytest

from motwatch.cli import main
from motwatch.core.moments import KINDS

RECOVERABLE = ("abandoned_checkout", "chat_unanswered", "onboarding_stalled")


def _rows(table: str) -> dict[str, list[float]]:
    """evaluate's table → {kind: [reported, expected, matched, precision, recall]}."""
    lines = table.splitlines()
    assert lines[0].split() == ["kind", "reported", "expected", "matched", "precision", "recall"]
    rows = {}
    for text in lines[1:]:
        if not text.startswith("moment ids:"):
            (*name,) = text.split()
            rows[" ".join(name[:-5])] = [float(v) for v in name[-5:]]
    return rows


@pytest.mark.slow
def test_5000_journeys_every_kind_injected_precision_and_recall_are_one(tmp_path, capsys):
    events, moments = tmp_path / "run.jsonl", tmp_path / "moments.jsonl"
    size = ["--journeys", "5000", "--customers", "3500", "--seed", "2026"]
    rc = main(["simulate", "--out", str(events), *size, "--fail", "all=0.12", "--invalid-share", "0.01"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "simulated 5000 journeys of 3500 customers (seed 2026)" in err
    truth = tmp_path / "run.truth.jsonl"  # beside the events
    assert f"in {truth}" in err
    assert main(["detect", str(events), "--output", str(moments)]) == 0
    capsys.readouterr()

    bar = ["--min-precision", "1", "--min-recall", "1"]
    rc = main(["evaluate", "--moments", str(moments), "--truth", str(truth), *bar])
    out = capsys.readouterr()
    assert rc == 0, out.err
    rows = _rows(out.out)
    expected = {f"{k} (failed)" for k in KINDS} | {f"{k} (recovered)" for k in RECOVERABLE} | {"all"}
    assert set(rows) == expected
    for kind, (reported, wanted, matched, precision, recall) in rows.items():
        assert reported == wanted == matched > 0, kind
        assert precision == recall == 1.0, kind
    assert rows["all"][1] > 4000


def test_evaluate_exits_non_zero_below_the_bar_and_names_the_kinds(tmp_path, capsys):
    events, moments = tmp_path / "e.jsonl", tmp_path / "m.jsonl"
    assert main(["simulate", "--out", str(events), "--journeys", "200", "--seed", "4"]) == 0
    assert main(["detect", str(events), "--output", str(moments)]) == 0
    lines = moments.read_bytes().splitlines()
    bounces = [x for x in lines if orjson.loads(x)["kind"] == "first_impression_bounce"]
    # One bounce missed, one other moment reported twice.
    kept = [x for x in lines if x != bounces[0]] + [lines[-1]]
    moments.write_bytes(b"\n".join(kept) + b"\n")
    capsys.readouterr()

    truth = str(tmp_path / "e.truth.jsonl")
    assert main(["evaluate", "--moments", str(moments), "--truth", truth]) == 0  # no bar by default
    capsys.readouterr()
    rc = main(["evaluate", "--moments", str(moments), "--truth", truth, "--min-recall", "0.999"])
    out = capsys.readouterr()
    assert rc == 1
    assert out.err.startswith("motwatch evaluate: below the bar (precision >= 0, recall >= 0.999): ")
    assert "first_impression_bounce (failed)" in out.err and ", all" in out.err
    rows = _rows(out.out)
    bounce = rows["first_impression_bounce (failed)"]
    assert bounce[:3] == [len(bounces) - 1, len(bounces), len(bounces) - 1]
    assert rows["all"][3] < 1.0  # the repeat counts against precision


def test_evaluate_compares_moment_ids_when_both_files_have_them(tmp_path, capsys):
    events, a, b = tmp_path / "e.jsonl", tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(["simulate", "--out", str(events), "--journeys", "60", "--seed", "5"]) == 0
    assert main(["detect", str(events), "--output", str(a)]) == 0
    lines = a.read_bytes().splitlines()
    b.write_bytes(b"\n".join(lines[1:]) + b"\n")
    capsys.readouterr()
    assert main(["evaluate", "--moments", str(b), "--truth", str(a)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"moment ids: {len(lines) - 1} in both, 0 only in {b}, 1 only in {a}"


def test_the_same_seed_gives_the_same_files_and_rates_shape_the_truth(tmp_path, capsys):
    def run(name: str, *extra: str) -> tuple[bytes, list[dict]]:
        out = tmp_path / f"{name}.jsonl"
        assert main(["simulate", "--out", str(out), "--seed", "9", *extra]) == 0
        truth = (tmp_path / f"{name}.truth.jsonl").read_bytes().splitlines()
        return out.read_bytes(), [orjson.loads(t) for t in truth]

    first, truth = run("a", "--journeys", "150")
    again, truth_again = run("b", "--journeys", "150")
    assert first == again and truth == truth_again
    assert {t["kind"] for t in truth} == set(KINDS)
    _, only_chats = run("c", "--journeys", "150", "--fail", "all=0", "--fail", "chat_unanswered=0.5")
    assert {t["kind"] for t in only_chats} == {"chat_unanswered"}
    _, none = run("d", "--journeys", "150", "--fail", "all=0")
    assert none == []
    assert capsys.readouterr().err.count("simulated 150 journeys") == 4
    run("e", "--duration", "1m", "--rate", "0.5")
    assert "simulated 30 journeys of 30 customers" in capsys.readouterr().err


def test_simulate_starts_where_asked_and_writes_stdout_with_a_truth_file(tmp_path, capsys):
    truth = tmp_path / "t.jsonl"
    start = ["--start", "2026-05-01T08:00:00+02:00", "--tail", "1h"]
    assert main(["simulate", "--out", "-", "--truth", str(truth), "--journeys", "3", *start]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert orjson.loads(lines[0])["occurred_at"].startswith("2026-05-01T06:00:")
    assert truth.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate"], "say where the events go"),
        (["simulate", "--out", "-"], "the ground truth needs a file here"),
        (["simulate", "--out", "x.jsonl", "--truth", "x.jsonl"], "name the same file"),
        (["simulate", "--out", "x.jsonl", "--journeys", "5", "--duration", "1h"], "not both"),
        (["simulate", "--out", "x.jsonl", "--journeys", "5", "--customers", "6"], "--customers must be"),
        (["simulate", "--out", "x.jsonl", "--rate", "0"], "--rate must be above 0"),
        (["simulate", "--out", "no/such/dir/x.jsonl", "--journeys", "1"], "cannot write no/such/dir/x.jsonl"),
        (
            ["simulate", "--to", "touchpoints", "--truth", "t.jsonl", "--prefix", "motwatch."],
            "--yes-production",
        ),
        (["evaluate", "--moments", "nope.jsonl", "--truth", "nope.jsonl"], "no such file: nope.jsonl"),
        (["replay", "nope.jsonl"], "no such file: nope.jsonl"),
        (["replay", "nope.jsonl", "--since", "2h"], "select from a topic (kafka:NAME), not a file"),
        (["replay", "kafka:sandbox.touchpoints"], "the source and the target are the same topic"),
        (["replay", "kafka:x", "--since", "yesterday"], "neither an RFC 3339 time nor a relative one"),
        (["replay", "kafka:x", "--offsets", "0:5-2"], "last is before first"),
        (["replay", "x.jsonl", "--to", "motwatch.moments"], "in the production namespace (motwatch.)"),
        (["record", "moments", "--out", "-", "--until", "2026-13-01T00:00Z"], "neither an RFC 3339"),
    ],
)
def test_bad_requests_end_in_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("MOTWATCH_")]:
        monkeypatch.delenv(name)  # the production prefix is the built-in motwatch.
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith(f"motwatch {argv[0]}: ")
    assert not (tmp_path / "x.jsonl").exists()


def test_evaluate_refuses_a_file_that_holds_no_moments(tmp_path, capsys):
    events = tmp_path / "e.jsonl"
    assert main(["simulate", "--out", str(events), "--journeys", "2"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--moments", str(events), "--truth", str(tmp_path / "e.truth.jsonl")]) == 1
    assert capsys.readouterr().err == f"motwatch evaluate: {events} line 1: not a moment or truth record\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "--out", "x", "--duration", "2x"], "not a duration like 90s"),
        (["simulate", "--out", "x", "--fail", "slow=1"], "use KIND=RATE"),
        (["simulate", "--out", "x", "--fail", "broken_link=2"], "RATE must be a number within 0..1"),
        (["simulate", "--out", "x", "--start", "2026-05-01T08:00"], "needs a UTC offset"),
        (["simulate", "--out", "x", "--journeys", "-1"], "must not be negative"),
        (["evaluate", "--moments", "m"], "required: --truth"),
        (["evaluate", "--moments", "m", "--truth", "t", "--min-recall", "1.5"], "within 0..1"),
    ],
)
def test_bad_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "--help" in err


def test_help_explains_simulate_and_evaluate(capsys):
    for command in ("simulate", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "truth" in text
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--journeys",
        "--duration",
        "--rate",
        "--customers",
        "--seed",
        "--fail",
        "--to",
        "--speed",
    ):
        assert option in text
