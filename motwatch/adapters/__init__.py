"""Vendor adapters: Segment/RudderStack, Snowplow, GA4 Measurement Protocol and CloudEvents as touchpoints.

Pure conversion, no I/O: the HTTP collector and the worker's Kafka input
both hand a vendor message and the time it arrived to
:func:`motwatch.adapters.intake.check_message` (or ``check_payload`` for a
parsed query string) and get back the touchpoints to produce and every
vendor event rejected, with a reason code (``base.REASONS``, then the
validator's). Which vendor event becomes which touchpoint is in
:mod:`motwatch.adapters.mapping`, extended by ``[mapping.<vendor>]``.
"""

from motwatch.adapters.base import REASONS, Converted, Rejected
from motwatch.adapters.intake import (
    Accepted,
    Checked,
    check,
    check_message,
    check_payload,
    convert,
    convert_message,
)
from motwatch.adapters.mapping import DEFAULT_MAPPINGS, VENDORS, Mappings, Rule, mapping_markdown

__all__ = [
    "DEFAULT_MAPPINGS",
    "REASONS",
    "VENDORS",
    "Accepted",
    "Checked",
    "Converted",
    "Mappings",
    "Rejected",
    "Rule",
    "check",
    "check_message",
    "check_payload",
    "convert",
    "convert_message",
    "mapping_markdown",
]
