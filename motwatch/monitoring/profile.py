"""The rules and routing on a faster clock: every window, ``for`` and grouping delay divided alike.

An alert that looks back 15 minutes and fires after 10 takes a quarter of an
hour to prove anything, and a resolved notification as long again. A
profile divides every duration of the rules (range selectors, ``offset``,
subquery steps, ``for``) and Alertmanager's grouping delays by one factor,
so a test sees the real rules, with their real expressions and thresholds,
fire and resolve within seconds. Nothing else changes: recording rule names
(``increase5m``) keep their production names, which is what the alerts read.

The production files are the profile with factor 1 (``PRODUCTION``); a test
checks that this identity holds, so the profile cannot drift from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from motwatch.monitoring.alertmanager import GROUP_INTERVAL, GROUP_WAIT, alertmanager_config
from motwatch.monitoring.model import Alert, Recording
from motwatch.monitoring.rules import render_rules
from motwatch.settings import Settings

_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A duration where PromQL takes one: "[5m]", "[1d:5m]", "offset 15m"; never inside a name.
_RANGE = re.compile(r"\[(\d+[smhd])(?::(\d+[smhd]))?\]")
_OFFSET = re.compile(r"\boffset (\d+[smhd])\b")


def seconds(duration: str) -> int:
    """``"15m"`` -> 900."""
    match = re.fullmatch(r"(\d+)([smhd])", duration)
    if match is None:
        raise ValueError(f"not a duration like 5m: {duration!r}")
    return int(match[1]) * _SECONDS[match[2]]


def _text(total: int) -> str:
    for unit in ("d", "h", "m"):
        if total and total % _SECONDS[unit] == 0:
            return f"{total // _SECONDS[unit]}{unit}"
    return f"{total}s"


@dataclass(frozen=True)
class Profile:
    """Every duration divided by ``factor`` (whole seconds only, so no window collapses to zero)."""

    name: str
    factor: int

    def duration(self, text: str) -> str:
        total = seconds(text)
        if total % self.factor:
            raise ValueError(f"{self.name}: {text} is not a whole number of seconds divided by {self.factor}")
        return _text(total // self.factor)

    def promql(self, expr: str) -> str:
        def in_range(match: re.Match[str]) -> str:
            step = f":{self.duration(match[2])}" if match[2] else ""
            return f"[{self.duration(match[1])}{step}]"

        expr = _RANGE.sub(in_range, expr)
        return _OFFSET.sub(lambda match: f"offset {self.duration(match[1])}", expr)

    def recording(self, rule: Recording) -> Recording:
        return replace(rule, expr=self.promql(rule.expr))

    def alert(self, alert: Alert) -> Alert:
        guard = self.promql(alert.guard) if alert.guard else alert.guard
        return replace(alert, query=self.promql(alert.query), guard=guard, for_=self.duration(alert.for_))

    def rules(self, recordings: tuple[Recording, ...], alerts: tuple[Alert, ...]) -> str:
        """The rules file of ``grafana/rules/``, every duration divided."""
        return render_rules(
            tuple(self.recording(r) for r in recordings), tuple(self.alert(a) for a in alerts)
        )

    def alertmanager(self, settings: Settings, alerts: tuple[Alert, ...]) -> dict[str, Any]:
        """Alertmanager's configuration with its grouping delays divided (repeats stay: hours)."""
        config = alertmanager_config(settings, alerts)
        config["route"]["group_wait"] = self.duration(GROUP_WAIT)
        config["route"]["group_interval"] = self.duration(GROUP_INTERVAL)
        return config


PRODUCTION = Profile("production", 1)
# 5-minute windows of 10 s, "for: 10m" of 20 s, grouping within a second and flushed every 10 s.
TEST = Profile("test", 30)
