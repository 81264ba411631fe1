"""Moment events (EVENTS.md §2): what motwatch reports when a moment of truth fails."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

Status = Literal["failed", "recovered"]
KINDS: tuple[str, ...] = (
    "abandoned_checkout",
    "checkout_error",
    "broken_link",
    "first_impression_bounce",
    "chat_unanswered",
    "call_unanswered",
    "onboarding_stalled",
    "low_satisfaction",
    "negative_review",
)


def moment_id(journey_key: str, kind: str, cause: str, status: str) -> str:
    """Same journey, kind, cause and status give the same id, so repeats are recognisable."""
    digest = hashlib.blake2b(f"{journey_key}\x1f{kind}\x1f{cause}\x1f{status}".encode(), digest_size=16)
    return digest.hexdigest()


def iso_ms(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds, as the contract writes timestamps."""
    text = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Moment:
    """One failed (or recovered) moment of truth of one journey."""

    moment_id: str
    status: Status
    kind: str
    moment: str
    phase: str
    severity: str
    owner: str
    journey_key: str
    channel: str
    occurred_ms: int
    evidence: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "moment_id": self.moment_id,
            "status": self.status,
            "kind": self.kind,
            "moment": self.moment,
            "phase": self.phase,
            "severity": self.severity,
            "owner": self.owner,
            "journey_key": self.journey_key,
            "channel": self.channel,
            "occurred_at": iso_ms(self.occurred_ms),
            "evidence": list(self.evidence),
            "details": self.details,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())
