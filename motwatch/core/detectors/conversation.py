"""Conversations with the brand: chats and calls nobody answered in time."""

from __future__ import annotations

from typing import Any

from motwatch.core.detectors.base import Detector, Origin, earliest_open_deadline, keep
from motwatch.core.events import Touchpoint
from motwatch.core.journey import JourneyState, trim_items
from motwatch.core.moments import Moment


class ChatUnanswered(Detector):
    """No agent or bot message within the SLA of ``chat_started``, or the chat ended first.

    A reply that comes after a reported breach is a recovery.
    """

    kind = "chat_unanswered"
    types = frozenset({"chat_started", "chat_message", "chat_ended"})

    def on_event(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        props: Any = event.properties
        if event.type == "chat_started":
            return self._started(state, event)
        if event.type == "chat_message" and props.sender in ("agent", "bot"):
            return self._answered(state, event)
        if event.type == "chat_ended":
            return self._ended(state, event)
        return []

    def _chat(self, state: JourneyState, chat_id: str) -> dict[str, Any]:
        chat = state.chats.get(chat_id)
        if chat is None:
            chat = state.chats[chat_id] = {"chat_id": chat_id, "state": "unstarted", "started_ms": 0}
            trim_items(state.chats)
        return chat

    def _started(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        chat = self._chat(state, event.properties.chat_id)  # type: ignore[attr-defined]
        if chat["state"] != "unstarted":
            return []
        sla_ms = round(self.settings.sla_s * 1000)
        chat.update(
            state="open",
            started_ms=event.occurred_ms,
            deadline_ms=event.occurred_ms + sla_ms,
            event_id=event.event_id,
            origin=self.reporter.origin(self.kind, state, event).to_dict(),
        )
        topic = getattr(event.properties, "topic", None)
        if topic is not None:
            chat["topic"] = topic
        # A reply or an end already seen (they arrived late, before the start).
        reply = chat.get("reply_ms")
        if reply is not None and reply <= chat["deadline_ms"]:
            chat["state"] = "answered"
        elif chat.get("ended_ms") is not None and chat["ended_ms"] <= chat["deadline_ms"]:
            return self._fail(state, chat, chat["ended_ms"], chat["ended_event_id"])
        return []

    def _answered(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        chat = self._chat(state, event.properties.chat_id)  # type: ignore[attr-defined]
        if chat.get("reply_ms") is None or event.occurred_ms < chat["reply_ms"]:
            chat["reply_ms"] = event.occurred_ms
            chat["reply_event_id"] = event.event_id
        if chat["state"] in ("open", "failed"):
            self.reporter.measure("chat_first_response", (event.occurred_ms - chat["started_ms"]) / 1000)
        if chat["state"] == "open" and event.occurred_ms <= chat["deadline_ms"]:
            chat["state"] = "answered"
        elif chat["state"] == "failed":
            return self._recover(state, chat)
        return []

    def _ended(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        chat = self._chat(state, event.properties.chat_id)  # type: ignore[attr-defined]
        if chat.get("ended_ms") is None:
            chat["ended_ms"] = event.occurred_ms
            chat["ended_event_id"] = event.event_id
            chat["ended_by"] = getattr(event.properties, "ended_by", None)
        if chat["state"] == "open" and event.occurred_ms <= chat["deadline_ms"]:
            return self._fail(state, chat, event.occurred_ms, event.event_id)
        return []

    def _details(self, chat: dict[str, Any]) -> dict[str, Any]:
        details = {"chat_id": chat["chat_id"], "sla_s": self.settings.sla_s}
        if chat.get("topic") is not None:
            details["topic"] = chat["topic"]
        return details

    def _fail(self, state: JourneyState, chat: dict[str, Any], at_ms: int, by: str | None) -> list[Moment]:
        chat["state"] = "failed"
        details = self._details(chat) | {"waited_s": (at_ms - chat["started_ms"]) / 1000}
        if by is not None:
            details["ended_by"] = chat.get("ended_by") or "unknown"
        evidence = (chat["event_id"],) if by is None else (chat["event_id"], by)
        out: list[Moment] = []
        keep(
            self.reporter.report(
                state,
                self.kind,
                chat["chat_id"],
                Origin.from_dict(chat["origin"]),
                at_ms=at_ms,
                evidence=evidence,
                details=details,
            ),
            out,
        )
        if chat.get("reply_ms") is not None and by is None:
            out.extend(self._recover(state, chat))
        return out

    def _recover(self, state: JourneyState, chat: dict[str, Any]) -> list[Moment]:
        chat["state"] = "recovered"
        moment = self.reporter.report(
            state,
            self.kind,
            chat["chat_id"],
            Origin.from_dict(chat["origin"]),
            status="recovered",
            at_ms=chat["reply_ms"],
            evidence=(chat["event_id"], chat["reply_event_id"]),
            details=self._details(chat)
            | {"first_response_s": (chat["reply_ms"] - chat["started_ms"]) / 1000},
        )
        return [moment] if moment else []

    def next_deadline(self, state: JourneyState) -> int | None:
        return earliest_open_deadline(state.chats)

    def on_deadline(self, state: JourneyState, deadline: int) -> list[Moment]:
        out: list[Moment] = []
        for chat in list(state.chats.values()):
            if chat["state"] == "open" and chat["deadline_ms"] == deadline:
                out.extend(self._fail(state, chat, deadline, None))
        return out


class CallUnanswered(Detector):
    """A call that ended unanswered, or answered only after the SLA."""

    kind = "call_unanswered"
    types = frozenset({"call_ended"})

    def on_event(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        if event.type != "call_ended":
            return []
        props: Any = event.properties
        too_long = props.wait_s is not None and props.wait_s > self.settings.sla_s
        if props.answered is not False and not too_long:
            return []
        details: dict[str, Any] = {"call_id": props.call_id, "sla_s": self.settings.sla_s}
        if props.answered is not None:
            details["answered"] = props.answered
        if props.wait_s is not None:
            details["wait_s"] = props.wait_s
        return self.fail_now(state, event, props.call_id, details)
