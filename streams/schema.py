"""JSON Schema of the contract, generated from the models (kept in sync by a test).

``streams/schema/*.schema.json`` is what producers and consumers outside
Python validate against; ``motwatch schema`` prints the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from motwatch.core.events import TOUCHPOINT_ADAPTER
from motwatch.core.moments import KINDS
from motwatch.core.validation import REASONS

SCHEMA_DIR = Path(__file__).parent / "schema"


class MomentRecord(BaseModel):
    """A moment event on the moments topic (EVENTS.md §2)."""

    model_config = ConfigDict(title="Moment event")

    moment_id: str = Field(description="deterministic: same input, same id")
    status: Literal["failed", "recovered"]
    kind: Literal[KINDS]  # type: ignore[valid-type]
    moment: Literal["<ZMOT", "ZMOT", "FMOT", "SMOT", "UMOT"]
    phase: Literal["awareness", "engagement", "evaluation", "purchase", "post_purchase", "loyalty"]
    severity: Literal["critical", "high", "medium", "low"]
    owner: str
    journey_key: str
    channel: str
    occurred_at: str = Field(description="RFC 3339; for timeouts, the deadline")
    evidence: list[str]
    details: dict[str, Any]


class DeadLetterRecord(BaseModel):
    """A rejected message on the dead-letter topic (EVENTS.md §3)."""

    model_config = ConfigDict(title="Dead-letter record")

    reason: str = Field(
        description="machine-readable code: " + "; ".join(f"{code}: {what}" for code, what in REASONS.items())
    )
    error: str = Field(description="human-readable, names the field")
    raw: str = Field(description="the original message value, unchanged (base64 when not UTF-8)")
    raw_encoding: Literal["utf-8", "base64"]
    source: dict[str, Any] = Field(description="topic, partition, offset; or file and line")
    received_at: str


def schemas() -> dict[str, dict[str, Any]]:
    touchpoint = TOUCHPOINT_ADAPTER.json_schema()
    touchpoint["title"] = "Touchpoint event"
    return {
        "touchpoint": touchpoint,
        "moment": MomentRecord.model_json_schema(),
        "deadletter": DeadLetterRecord.model_json_schema(),
    }


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    import json

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_schemas():
        print(p)
