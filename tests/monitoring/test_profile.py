"""The rules on a faster clock: the same rules with every duration divided, and nothing else changed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from motwatch.monitoring.alertmanager import alertmanager_config
from motwatch.monitoring.definitions import ALERTS, RECORDING_RULES
from motwatch.monitoring.generate import RULES_FILE
from motwatch.monitoring.profile import PRODUCTION, TEST, Profile, seconds
from motwatch.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _rules(text: str) -> dict[str, dict]:
    rules = yaml.safe_load(text)["groups"][0]["rules"]
    return {rule.get("record") or rule["alert"]: rule for rule in rules}


def test_production_is_the_committed_rules_file() -> None:
    assert PRODUCTION.rules(RECORDING_RULES, ALERTS) == (REPO / RULES_FILE).read_text(encoding="utf-8")
    assert PRODUCTION.alertmanager(Settings(), ALERTS) == alertmanager_config(Settings(), ALERTS)


def test_every_window_and_for_is_divided_and_names_are_kept() -> None:
    production = _rules(PRODUCTION.rules(RECORDING_RULES, ALERTS))
    fast = _rules(TEST.rules(RECORDING_RULES, ALERTS))
    assert list(fast) == list(production)
    increase5m = fast["motwatch:moments_failed:increase5m"]["expr"]
    assert "offset 10s" in increase5m and "[10s]" in increase5m and "5m" not in increase5m
    assert "[48m]" in fast["motwatch:moments_failed:increase1h:avg1d"]["expr"]  # a day / 30
    # the alerts read the recording rules by their production names
    assert "motwatch:moments_failed:increase5m{" in fast["MotwatchCheckoutErrorBurst"]["expr"]
    for name, rule in production.items():
        if "for" in rule:
            assert seconds(fast[name]["for"]) * 30 == seconds(rule["for"]), name
        else:
            assert "for" not in fast[name], name
        # thresholds, labels and annotations are the production ones
        assert {k: v for k, v in fast[name].items() if k not in ("expr", "for")} == {
            k: v for k, v in rule.items() if k not in ("expr", "for")
        }


def test_grouping_delays_are_divided_and_repeats_kept() -> None:
    route = TEST.alertmanager(Settings(), ALERTS)["route"]
    assert (route["group_wait"], route["group_interval"]) == ("1s", "10s")
    assert route["repeat_interval"] == alertmanager_config(Settings(), ALERTS)["route"]["repeat_interval"]


def test_a_duration_that_does_not_divide_is_refused() -> None:
    with pytest.raises(ValueError, match="whole number of seconds"):
        Profile("odd", 7).duration("5m")
    with pytest.raises(ValueError, match="not a duration"):
        seconds("5 minutes")


@pytest.mark.external
def test_promtool_accepts_the_fast_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run make prometheus", pytrace=False)
    (tmp_path / "fast.yml").write_text(TEST.rules(RECORDING_RULES, ALERTS), encoding="utf-8")
    done = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "fast.yml")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
