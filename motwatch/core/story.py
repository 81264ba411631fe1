"""One journey's story (``motwatch explain``): its touchpoints, open deadlines and moments, as one dict.

Built from what was read about the journey, wherever it came from: its
touchpoints (in any order, repeats allowed), the moments reported for it
(dicts as on the moments topic), and its state (a worker's live state, or
the last one it wrote) when there is one. :func:`assemble` gives the story
as JSON types; :func:`render` gives the same story as lines of text for one
screen. Each touchpoint gets the moment of truth and phase the classifier
gives it; each moment, the threshold that decided it (the value the moment
itself carries in its details when it has one, else the settings'), and its
evidence events as read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from motwatch.core.classify import Classifier
from motwatch.core.engine import JourneyEngine
from motwatch.core.events import Touchpoint
from motwatch.core.journey import JourneyState
from motwatch.core.moments import iso_ms
from motwatch.settings import Settings

# Items of a journey's state that wait for a deadline: (state field, kind, the item's name field).
OPEN_ITEMS = (
    ("checkouts", "abandoned_checkout", "cart_id"),
    ("chats", "chat_unanswered", "chat_id"),
    ("onboardings", "onboarding_stalled", "plan"),
)


def span(seconds: float) -> str:
    """A duration for people: ``45 s``, ``30 min``, ``2 h 5 min``, ``7 d``."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:g} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def threshold(kind: str, details: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The setting that decided a moment of ``kind``: its name, its value and the rule in words."""
    kinds = settings.kinds

    def rule(setting: str, value: Any, text: str) -> dict[str, Any]:
        return {"setting": f"kinds.{kind}.{setting}", "value": value, "rule": text}

    if kind == "abandoned_checkout":
        window = details.get("window_s", kinds.abandoned_checkout.window_s)
        return rule("window_s", window, f"no order within {span(window)} of checkout_started")
    if kind == "checkout_error":
        bar = kinds.checkout_error.min_http_status
        if details.get("step") == "payment":
            return {
                "setting": None,
                "value": None,
                "rule": "a payment_failed event fails the checkout at once",
            }
        return rule("min_http_status", bar, f"a checkout step answered with HTTP status >= {bar}")
    if kind == "broken_link":
        bar = kinds.broken_link.min_http_status
        return rule("min_http_status", bar, f"a page or link target answered with HTTP status >= {bar}")
    if kind == "first_impression_bounce":
        ms = details.get("threshold_ms", kinds.first_impression_bounce.min_dwell_s * 1000)
        return rule("min_dwell_s", ms / 1000, f"the first product page left within {span(ms / 1000)}")
    if kind in ("chat_unanswered", "call_unanswered"):
        sla = details.get("sla_s", getattr(kinds, kind).sla_s)
        if kind == "chat_unanswered":
            return rule("sla_s", sla, f"no agent or bot reply within {span(sla)} of chat_started")
        return rule("sla_s", sla, f"a call unanswered, or answered after more than {span(sla)}")
    if kind == "onboarding_stalled":
        window = details.get("window_s", kinds.onboarding_stalled.window_s)
        return rule("window_s", window, f"no onboarding_completed within {span(window)}")
    if kind == "low_satisfaction":
        low = kinds.low_satisfaction
        metric = details.get("metric")
        if metric == "ces":
            return rule("min_ces", low.min_ces, f"a CES score >= {low.min_ces:g}")
        if metric == "nps":
            return rule("max_nps", low.max_nps, f"an NPS score <= {low.max_nps:g}")
        return rule("max_csat", low.max_csat, f"a CSAT score <= {low.max_csat:g}")
    if kind == "negative_review":
        bar = kinds.negative_review.max_rating
        return rule("max_rating", bar, f"a review rating <= {bar:g}")
    return {"setting": None, "value": None, "rule": "unknown kind"}


def _milestones(touchpoints: Iterable[Touchpoint], state: JourneyState | None) -> dict[str, int]:
    """The journey's milestones: the state's, and any its touchpoints show earlier."""
    scratch = JourneyState(key="", milestones=dict(state.milestones) if state else {})
    for event in touchpoints:
        JourneyEngine.note_milestones(scratch, event)
    return scratch.milestones


def _at(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms)


def _evidence(event_id: str, events: Mapping[str, Touchpoint]) -> dict[str, Any]:
    """An evidence event: its id, and its type and time when it was among the touchpoints read."""
    event = events.get(event_id)
    if event is None:
        return {"event_id": event_id}
    return {"event_id": event_id, "type": event.type, "occurred_at": _at(event.occurred_ms)}


def _occurred_ms(moment: Mapping[str, Any]) -> int:
    try:
        return round(datetime.fromisoformat(str(moment.get("occurred_at"))).timestamp() * 1000)
    except ValueError:
        return 0


def assemble(
    key: str,
    touchpoints: Iterable[Touchpoint],
    moments: Iterable[Mapping[str, Any]],
    state: JourneyState | None,
    settings: Settings,
    *,
    watermark_ms: int | None = None,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The story of journey ``key`` as JSON types (see the module docstring).

    ``source``: where the state came from, said as it is (e.g. the worker's URL).
    """
    unique = {event.event_id: event for event in touchpoints}
    events = sorted(unique.values(), key=lambda e: (e.occurred_ms, e.event_id))
    classifier = Classifier(settings.classification)
    milestones = _milestones(events, state)
    held = {e.event_id for e in state.pending} if state else set()
    rows = []
    for event in events:
        moment, phase = classifier.classify(event, milestones)
        row: dict[str, Any] = {
            "event_id": event.event_id,
            "occurred_at": _at(event.occurred_ms),
            "type": event.type,
            "channel": event.channel,
            "moment": moment,
            "phase": phase,
        }
        if event.journey_key != key:
            row["journey_key"] = event.journey_key
        if event.event_id in held:
            row["held"] = True  # waits for the watermark: not applied yet
        rows.append(row)

    joined_from = [
        {"anonymous_id": e.anonymous_id, "identify": e.event_id, "at": _at(e.occurred_ms)}
        for e in events
        if e.type == "identify" and e.customer_id == key and e.anonymous_id not in (None, key)
    ]
    merged_into = state.merged_into if state else None
    if merged_into is None:
        merged_into = next(
            (
                e.customer_id
                for e in events
                if e.type == "identify" and e.anonymous_id == key and e.customer_id
            ),
            None,
        )

    deadlines = []
    if state is not None:
        for field_name, kind, name in OPEN_ITEMS:
            for item in getattr(state, field_name).values():
                if item.get("state") != "open":
                    continue
                due, started = item["deadline_ms"], item.get("started_ms", item["deadline_ms"])
                # The window the worker gave the item: its deadline less its start.
                window = {"sla_s" if kind == "chat_unanswered" else "window_s": (due - started) / 1000}
                deadlines.append(
                    {
                        "kind": kind,
                        "item": item.get(name),
                        "started_at": _at(started),
                        "due_at": _at(due),
                        "due_in_s": None if watermark_ms is None else (due - watermark_ms) / 1000,
                        "evidence": [_evidence(item["event_id"], unique)] if item.get("event_id") else [],
                        "threshold": threshold(kind, window, settings),
                    }
                )
        deadlines.sort(key=lambda d: (d["due_at"], d["kind"], str(d["item"])))

    seen: dict[str, Mapping[str, Any]] = {}
    for m in moments:
        if m.get("journey_key") == key and isinstance(m.get("moment_id"), str):
            seen.setdefault(m["moment_id"], m)
    reported = []
    for m in sorted(
        seen.values(), key=lambda m: (_occurred_ms(m), m.get("status") != "failed", m["moment_id"])
    ):
        details = m.get("details") if isinstance(m.get("details"), dict) else {}
        evidence = [_evidence(event_id, unique) for event_id in m.get("evidence") or []]
        reported.append(
            {
                "moment_id": m["moment_id"],
                "occurred_at": m.get("occurred_at"),
                "kind": m.get("kind"),
                "status": m.get("status"),
                "moment": m.get("moment"),
                "phase": m.get("phase"),
                "severity": m.get("severity"),
                "owner": m.get("owner"),
                "channel": m.get("channel"),
                "evidence": evidence,
                "threshold": threshold(str(m.get("kind")), details, settings),
                "details": details,
            }
        )

    return {
        "journey_key": key,
        "source": dict(source or {}),
        "watermark": _at(watermark_ms),
        "state": None
        if state is None
        else {
            "first_seen": _at(state.first_seen_ms),
            "last_seen": _at(state.last_seen_ms),
            "reached": list(state.reached),
            "milestones": {name: _at(at) for name, at in sorted(state.milestones.items())},
            "held_events": len(state.pending),
            "waiting_for_merge": sorted(k for k, v in state.merges.items() if v == "waiting"),
        },
        "joined_from": joined_from,
        "merged_into": merged_into,
        "touchpoints": rows,
        "open_deadlines": deadlines,
        "moments": reported,
    }


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]


def render(story: Mapping[str, Any]) -> list[str]:
    """The story as lines of text for one screen."""
    key = story["journey_key"]
    lines = [f"Journey {key}"]
    source = story.get("source") or {}
    if source.get("note"):
        lines.append(f"  {source['note']}")
    watermark = story.get("watermark")
    lines.append(f"  watermark {watermark}" if watermark else "  watermark unknown")
    state = story.get("state")
    if state is not None:
        reached = " > ".join(state["reached"]) or "none"
        lines.append(f"  first seen {state['first_seen']}, last seen {state['last_seen']}; reached {reached}")
        if state["milestones"]:
            lines.append("  milestones " + ", ".join(f"{k} {v}" for k, v in state["milestones"].items()))
        if state["held_events"]:
            lines.append(f"  {state['held_events']} events held until the watermark reaches them")
        for identify in state["waiting_for_merge"]:
            lines.append(f"  waiting for the anonymous journey's state (identify {identify})")
    if story["merged_into"]:
        lines.append(f"  joined to customer journey {story['merged_into']}: its story goes on there")
    if story["joined_from"]:
        for j in story["joined_from"]:
            lines.append(
                f"  joined from anonymous journey {j['anonymous_id']} at {j['at']} (identify {j['identify']})"
            )
    elif not story["merged_into"]:
        lines.append("  not joined from an anonymous journey")

    touchpoints = story["touchpoints"]
    lines += ["", f"Touchpoints ({len(touchpoints)}, in event time)"]
    if touchpoints:
        rows = []
        for t in touchpoints:
            notes = []
            if t.get("journey_key"):
                notes.append(f"as {t['journey_key']}")
            if t.get("held"):
                notes.append("held")
            rows.append(
                (
                    t["occurred_at"],
                    t["type"],
                    t["channel"],
                    t["moment"],
                    t["phase"],
                    t["event_id"],
                    " ".join(notes),
                )
            )
        lines += _table(("OCCURRED_AT", "TYPE", "CHANNEL", "MOT", "PHASE", "EVENT_ID", ""), rows)

    deadlines = story["open_deadlines"]
    lines += ["", f"Open deadlines ({len(deadlines)})"]
    for d in deadlines:
        due_in = d["due_in_s"]
        when = (
            "" if due_in is None else (f" (in {span(due_in)} of event time)" if due_in >= 0 else " (passed)")
        )
        lines.append(f"  {d['kind']} {d['item']}: due {d['due_at']}{when}, started {d['started_at']}")
        lines += _why(d)

    moments = story["moments"]
    lines += ["", f"Moments ({len(moments)})"]
    for m in moments:
        lines.append(
            f"  {m['occurred_at']}  {m['kind']} {m['status']}  {m['moment']} {m['phase']}  "
            f"{m['severity']} -> {m['owner']}  id {str(m['moment_id'])[:12]}"
        )
        lines += _why(m)
    return lines


def _why(entry: Mapping[str, Any]) -> list[str]:
    """A deadline's or a moment's threshold and evidence, as two indented lines."""
    th = entry["threshold"]
    setting = "" if th["setting"] is None else f" ({th['setting']}={th['value']:g})"
    evidence = [
        e["event_id"] if "type" not in e else f"{e['event_id']} ({e['type']} at {e['occurred_at']})"
        for e in entry["evidence"]
    ]
    return [f"      threshold: {th['rule']}{setting}", f"      evidence: {', '.join(evidence) or 'none'}"]
