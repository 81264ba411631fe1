"""Every curl command of the README's "Sending events" section works against a real collector.

The commands are read from the README between ``<!-- sending:begin -->`` and
``<!-- sending:end -->`` and run by bash as written, with ``MW`` (the
collector's address) and ``KEY`` (the key the README sets beside it) in the
environment. Each must be answered 2xx, and each must have put its events on
the touchpoints topic (every ``readme-…`` id it names), valid and keyed by
journey, with nothing on the dead-letter topic.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from motwatch.core.events import Touchpoint
from motwatch.core.validation import validate_touchpoint
from tests.integration.test_collector import CollectorProcess
from tests.workers import motwatch_env, read_topic

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- sending:begin -->", "<!-- sending:end -->"
OTHER_KEY = "shop-server-81d0"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def section() -> str:
    text = README.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "README needs one pair of sending markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0]


def curl_commands(text: str) -> list[str]:
    """Each ``curl`` command of the ``sh`` blocks, its continuation lines and multi-line quotes included."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        current: str | None = None
        for line in block.splitlines():
            if current is None:
                if not line.startswith("curl "):
                    continue
                current = line
            else:
                current += "\n" + line
            try:
                shlex.split(current)
            except ValueError:  # a quote still open
                continue
            if not current.endswith("\\"):
                commands.append(current)
                current = None
        assert current is None, f"an unfinished curl command: {current!r}"
    return commands


def holds(records: list, seen: int, ids: set[str]) -> bool:
    """Whether ``records`` go past the ``seen`` ones and hold an event id ending in each of ``ids``."""
    if len(records) <= seen:
        return False
    values = [r.value.decode(errors="replace") for r in records]
    return all(any(f'{one}"' in value for value in values) for one in ids)


def readme_key(text: str) -> str:
    match = re.search(r"^MW=\S+ KEY=(\S+)$", text, re.M)
    assert match, "the section sets MW and KEY for its examples"
    return match.group(1)


def test_the_section_has_a_curl_example_for_every_endpoint() -> None:
    commands = "\n".join(curl_commands(section()))
    for path in ("/v1/track", "/v1/batch", "/i?", "/com.snowplowanalytics.snowplow/tp2", "/mp/collect?"):
        assert f"$MW{path}" in commands, path
    for mode in ("application/cloudevents+json", "application/cloudevents-batch+json", "ce-specversion"):
        assert mode in commands, mode


async def test_each_curl_example_is_stored_on_the_touchpoints_topic(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    text = section()
    commands = curl_commands(text)
    key = readme_key(text)
    env = motwatch_env(kafka_bootstrap, topic_prefix, write_keys=f"{key},{OTHER_KEY}", partitions=2)
    collector = CollectorProcess(env, tmp_path).start()
    touchpoints = f"{topic_prefix}touchpoints"
    seen: set[tuple[int, int]] = set()
    try:
        for command in commands:
            done = subprocess.run(
                ["bash", "-c", command + " -sS -w '\\n%{http_code}'"],
                env={"PATH": env["PATH"], "MW": collector.url, "KEY": key},
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            status = done.stdout.strip().splitlines()[-1]
            assert done.returncode == 0 and status.startswith("2"), (command, done.stdout, done.stderr)
            # The answer came after Kafka's acknowledgement: the events are there now.
            named = set(re.findall(r"readme-[a-z0-9]+-\d+", command))
            before = len(seen)
            records = await read_topic(
                kafka_bootstrap, touchpoints, lambda r, n=before, ids=named: holds(r, n, ids), timeout=20
            )
            new = [r for r in records if (r.partition, r.offset) not in seen]
            assert new, f"nothing stored for {command!r}"
            seen |= {(r.partition, r.offset) for r in new}
            events = []
            for record in new:
                event = validate_touchpoint(record.value)
                assert isinstance(event, Touchpoint), record.value
                assert record.key == event.journey_key.encode()
                events.append(event)
            for one in named:
                assert any(e.event_id.endswith(one) for e in events), (one, [e.event_id for e in events])
        letters = await read_topic(kafka_bootstrap, f"{topic_prefix}deadletter", lambda r: False, timeout=2)
    finally:
        code = collector.stop()
    assert code == 0, collector.log()[-2000:]
    assert letters == [], [r.value for r in letters]
