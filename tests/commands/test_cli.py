"""The ``motwatch`` command as a user meets it: help, one-line errors, ``detect`` offline.

Every command runs in a subprocess, the way a shell runs it, so a traceback
or a wrong exit code cannot hide behind an exception caught in the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from motwatch.streams.schema import MomentRecord
from tests.journeys import line
from tests.workers import run_cli

pytestmark = pytest.mark.external

COMMANDS = (
    "worker",
    "collect",
    "produce",
    "record",
    "replay",
    "simulate",
    "evaluate",
    "broker",
    "demo",
    "detect",
    "status",
    "moments",
    "explain",
    "schema",
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Built-in settings, none from this machine's environment; an unreachable broker."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOTWATCH_")}
    clean["MOTWATCH_BROKER"] = "127.0.0.1:1"
    defaults = tmp_path / "defaults.toml"
    defaults.write_text("")
    clean["MOTWATCH_CONFIG"] = str(defaults)
    return clean


def _one_line_error(result, code: int = 1) -> str:
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_help_names_every_command(env):
    result = run_cli("--help", env=env)
    assert result.returncode == 0
    text = result.stdout.decode()
    for command in COMMANDS:
        assert command in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(env, command):
    result = run_cli(command, "--help", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith(f"usage: motwatch {command}")


@pytest.mark.parametrize(
    "args, says",
    [
        ((), "required"),
        (("teleport",), "invalid choice"),
        (("record", "moments"), "--out"),
        (("broker", "--port", "ninety"), "'ninety' is not a number"),
        (("replay", "x.jsonl", "--speed", "-2"), "must not be negative"),
        (("schema", "order"), "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(env, args, says):
    err = _one_line_error(run_cli(*args, env=env), code=2)
    assert says in err
    assert "--help" in err


def test_a_missing_input_file_is_one_line(env, tmp_path):
    err = _one_line_error(run_cli("detect", str(tmp_path / "nowhere.jsonl"), env=env))
    assert err == f"motwatch detect: no such file: {tmp_path / 'nowhere.jsonl'}"


def test_a_directory_as_input_is_one_line(env, tmp_path):
    err = _one_line_error(run_cli("produce", str(tmp_path), env=env))
    assert "is a directory" in err


def test_a_bad_config_file_is_one_line(env, tmp_path):
    config = tmp_path / "motwatch.toml"
    config.write_text("allowed_lateness_s = 'two minutes'\n")
    err = _one_line_error(run_cli("detect", "-", "--config", str(config), env=env))
    assert "allowed_lateness_s" in err


def test_an_unreachable_broker_is_one_line(env, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(line("page_view", 0, url="https://shop.example/") + b"\n")
    result = run_cli("produce", str(events), env=env, timeout=60)
    err = _one_line_error(result)
    assert "127.0.0.1:1" in err


def test_an_unwritable_output_is_one_line(env, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(line("page_view", 0, url="https://shop.example/") + b"\n")
    missing_dir = tmp_path / "no" / "moments.jsonl"
    err = _one_line_error(run_cli("detect", str(events), "--output", str(missing_dir), env=env))
    assert "cannot write" in err


def _mixed_input(path: Path) -> None:
    lines = [
        line("page_view", 0, url="https://shop.example/p/1", product_id="p1"),
        line("page_view", 5, url="https://shop.example/p/404", http_status=404),
        b'{"event_id": "cut", "occurred_at": ',
        line("checkout_started", 60, cart_id="c1", value=50.0),
        b'{"event_id": "x", "occurred_at": "2026-03-02T14:00:00.000Z", "anonymous_id": "a",'
        b' "channel": "web", "type": "teleport", "properties": {}}',
        # Moves the watermark past the broken link (five minutes minus the
        # allowed lateness), not past the checkout's abandonment window.
        line("page_view", 300, url="https://shop.example/"),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_detect_writes_moments_dead_letters_and_a_summary(env, tmp_path):
    source = tmp_path / "events.jsonl"
    _mixed_input(source)
    out, dead = tmp_path / "moments.jsonl", tmp_path / "dead.jsonl"
    result = run_cli(
        "detect", str(source), "--output", str(out), "--dead-letter", str(dead), "--flush", env=env
    )
    assert result.returncode == 0, result.stderr
    moments = [MomentRecord.model_validate_json(raw) for raw in out.read_bytes().splitlines()]
    assert sorted(m.kind for m in moments) == ["abandoned_checkout", "broken_link"]
    assert all(m.journey_key == "cust-1" for m in moments)

    records = [orjson.loads(raw) for raw in dead.read_bytes().splitlines()]
    assert sorted(r["reason"] for r in records) == ["invalid_json", "unknown_type"]
    assert all(r["source"]["file"] == str(source) for r in records)

    summary = result.stderr.decode()
    assert "events: 4  rejected: 2" in summary
    assert "moments: 2" in summary


def test_detect_reads_stdin_and_writes_stdout_and_repeats_itself(env, tmp_path):
    source = tmp_path / "events.jsonl"
    _mixed_input(source)
    runs = [
        run_cli_stdin(source.read_bytes(), "detect", "-", "--flush", env=env),
        run_cli_stdin(source.read_bytes(), "detect", "-", "--flush", env=env),
    ]
    assert all(r.returncode == 0 for r in runs)
    first, second = (r.stdout.splitlines() for r in runs)
    assert len(first) == 2 and first == second


def test_without_flush_an_open_checkout_is_not_yet_abandoned(env, tmp_path):
    source = tmp_path / "events.jsonl"
    _mixed_input(source)
    result = run_cli("detect", str(source), env=env)
    kinds = [orjson.loads(raw)["kind"] for raw in result.stdout.splitlines()]
    assert kinds == ["broken_link"]
    assert "open timeouts at end: 1" in result.stderr.decode()


def run_cli_stdin(data: bytes, *args: str, env: dict[str, str]):
    return subprocess.run(
        [sys.executable, "-m", "motwatch.cli", *args],
        input=data,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
