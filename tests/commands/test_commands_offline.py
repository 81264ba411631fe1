"""Commands that need no broker, as the README promises them: ``detect --config``, ``schema``, and
``detect`` run in-process leaving the garbage collector as it found it.

``detect`` and ``schema`` run in a subprocess, as a shell runs them (marked
``external``); the collector tests call ``motwatch.cli.main`` in this process,
since the collector it must restore is this process's.
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from motwatch.cli import main
from motwatch.commands import detect
from motwatch.commands.common import UsageError
from motwatch.garbage import THRESHOLDS
from motwatch.streams.schema import SCHEMA_DIR
from tests.journeys import iso, line
from tests.workers import run_cli

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples.jsonl"
SCHEMA_NAMES = ("touchpoint", "moment", "deadletter")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Built-in settings (an empty config file), nothing from this machine's environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOTWATCH_")}
    defaults = tmp_path / "defaults.toml"
    defaults.write_text("")
    clean["MOTWATCH_CONFIG"] = str(defaults)
    return clean


def _moments(done: Any) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr.decode()
    return [orjson.loads(raw) for raw in done.stdout.splitlines()]


# ---------------------------------------------------------------- detect --config


@pytest.mark.external  # motwatch in a subprocess
def test_detect_config_overrides_thresholds_severity_and_owner(env, tmp_path):
    # A checkout left alone; twenty minutes later the watermark (less 2 min of lateness) is at 18 min:
    # short of the default 30-minute window, past a 10-minute one.
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        line("checkout_started", 0, cart_id="c1", value=80.0)
        + b"\n"
        + line("page_view", 20 * 60, url="https://shop.example/")
        + b"\n"
    )
    override = tmp_path / "short-window.toml"
    override.write_text(
        '[kinds.abandoned_checkout]\nwindow_s = 600\nseverity = "critical"\n\n'
        '[owners]\ncheckout = "payments"\n'
    )

    default = run_cli("detect", str(events), env=env)
    assert _moments(default) == []
    assert "open timeouts at end: 1" in default.stderr.decode()

    overridden = run_cli("detect", str(events), "--config", str(override), env=env)
    [moment] = _moments(overridden)
    assert (moment["kind"], moment["status"]) == ("abandoned_checkout", "failed")
    assert moment["occurred_at"] == iso(600)  # a timeout is reported at its deadline: the window's end
    assert (moment["severity"], moment["owner"]) == ("critical", "payments")
    assert "open timeouts at end: 0" in overridden.stderr.decode()


# ---------------------------------------------------------------- schema


def _documents(text: str) -> list[Any]:
    """The JSON documents printed one after another."""
    decoder, docs, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        while text[at].isspace():
            at += 1
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
    return docs


def _committed(name: str) -> Any:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def _schema(name: str, env: dict[str, str]) -> dict[str, Any]:
    done = run_cli("schema", name, env=env)
    assert done.returncode == 0, done.stderr.decode()
    [document] = _documents(done.stdout.decode())
    return document


_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def conforms(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    """``value`` is valid under ``schema``, for the keywords the contract's schemas use ($ref,
    oneOf, anyOf, const, enum, type, required, properties, items, lengths, bounds); no
    jsonschema package is installed here."""
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return conforms(value, target, root)
    if "oneOf" in schema and sum(conforms(value, s, root) for s in schema["oneOf"]) != 1:
        return False
    if "anyOf" in schema and not any(conforms(value, s, root) for s in schema["anyOf"]):
        return False
    if "const" in schema and value != schema["const"]:
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "type" in schema and not _TYPES[schema["type"]](value):
        return False
    if isinstance(value, str) and not schema.get("minLength", 0) <= len(value) <= schema.get(
        "maxLength", 10**9
    ):
        return False
    if _TYPES["number"](value) and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        return False
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        if any(name not in value for name in schema.get("required", ())):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(properties):
            return False
        if not all(conforms(value[name], sub, root) for name, sub in properties.items() if name in value):
            return False
    if isinstance(value, list) and "items" in schema:
        return all(conforms(item, schema["items"], root) for item in value)
    return True


@pytest.mark.external  # motwatch in a subprocess
def test_schema_prints_the_committed_schemas_of_the_contract(env):
    done = run_cli("schema", env=env)
    assert done.returncode == 0, done.stderr.decode()
    printed = _documents(done.stdout.decode())
    assert printed == [_committed(name) for name in SCHEMA_NAMES]
    for name in SCHEMA_NAMES:
        assert _schema(name, env) == _committed(name)


@pytest.mark.external  # motwatch in a subprocess
def test_the_printed_schemas_hold_what_detect_accepts_and_reports(env, tmp_path):
    touchpoint, moment, deadletter = (_schema(name, env) for name in SCHEMA_NAMES)
    examples = [orjson.loads(raw) for raw in EXAMPLES.read_bytes().splitlines() if raw.strip()]
    assert examples and all(conforms(e, touchpoint, touchpoint) for e in examples)

    page_view = next(e for e in examples if e["type"] == "page_view")
    broken = [
        {k: v for k, v in page_view.items() if k != "event_id"},
        page_view | {"channel": "fax"},
        page_view | {"type": "teleport"},
        page_view | {"occurred_at": 1772460000},
        page_view | {"properties": page_view["properties"] | {"http_status": 700}},
    ]
    assert not any(conforms(b, touchpoint, touchpoint) for b in broken)

    # What the schema refuses, detect dead-letters; what it reports fits the other two schemas.
    source = tmp_path / "events.jsonl"
    source.write_bytes(EXAMPLES.read_bytes().rstrip(b"\n") + b"\n" + b"\n".join(map(orjson.dumps, broken)))
    dead = tmp_path / "dead.jsonl"
    done = run_cli("detect", str(source), "--flush", "--dead-letter", str(dead), env=env)
    reported = _moments(done)
    assert f"events: {len(examples)}  rejected: {len(broken)}" in done.stderr.decode()
    assert reported and all(conforms(m, moment, moment) for m in reported)
    records = [orjson.loads(raw) for raw in dead.read_bytes().splitlines()]
    assert len(records) == len(broken) and all(conforms(r, deadletter, deadletter) for r in records)


# ---------------------------------------------------------------- the collector after detect


@pytest.fixture
def events_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``detect`` arguments for the example stream, with built-in settings and no environment."""
    for name in [n for n in os.environ if n.startswith("MOTWATCH_")]:
        monkeypatch.delenv(name)
    defaults = tmp_path / "defaults.toml"
    defaults.write_text("")
    out = tmp_path / "moments.jsonl"
    return ["detect", str(EXAMPLES), "--config", str(defaults), "--flush", "--output", str(out)]


def _spy_on_the_collector(monkeypatch: pytest.MonkeyPatch, fail: BaseException | None = None) -> list:
    """What the collector looked like while detect ran (and, with ``fail``, detect failing)."""
    seen: list[tuple[tuple[int, int, int], int]] = []
    run_detect = detect.run_detect

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        if fail is not None:
            raise fail
        return run_detect(*args, **kwargs)

    monkeypatch.setattr(detect, "run_detect", spy)
    return seen


def test_detect_in_process_leaves_the_collector_as_it_found_it(events_file, monkeypatch, tmp_path):
    before = gc.get_threshold()
    seen = _spy_on_the_collector(monkeypatch)
    assert main(events_file) == 0
    assert (tmp_path / "moments.jsonl").read_bytes().count(b"\n") > 0
    [(during, frozen)] = seen
    assert during == THRESHOLDS and frozen > 0, "detect runs with the collector slowed down"
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize(
    ("failure", "exit_code"), [(UsageError("cannot write"), 1), (KeyboardInterrupt(), 130)]
)
def test_a_detect_that_fails_restores_the_collector_too(events_file, monkeypatch, failure, exit_code):
    before = gc.get_threshold()
    seen = _spy_on_the_collector(monkeypatch, fail=failure)
    assert main(events_file) == exit_code
    assert seen and seen[0][0] == THRESHOLDS
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
