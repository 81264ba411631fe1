"""A record in another input format: each touchpoint it carries dispatched, each mistake dead-lettered."""

from __future__ import annotations

from collections.abc import Iterable

from motwatch.core.clock import PartitionClock
from motwatch.core.dispatch import Inbound, JourneyDispatch
from motwatch.core.engine import JourneyEngine
from motwatch.core.records import source_name
from motwatch.core.validation import Rejection
from motwatch.settings import Settings
from tests.journeys import line

CARRIED = [
    line("page_view", 0, customer_id="c-1", url="https://shop.example/"),
    line("cart_add", 1, customer_id="c-1"),
]


def _dispatch(input_format: object) -> JourneyDispatch:
    settings = Settings.model_validate({"allowed_lateness_s": 0})
    engine = JourneyEngine(settings, clock=PartitionClock(lateness_ms=0, self_timed=False))
    return JourneyDispatch(settings, lambda _: engine, partitions=1, direct=True, input_format=input_format)  # type: ignore[arg-type]


def _carrying(*items: bytes | Rejection):
    def convert(record: Inbound) -> Iterable[Inbound | Rejection]:
        for item in items:
            yield (
                item
                if isinstance(item, Rejection)
                else Inbound(item, record.partition, topic=record.topic, offset=record.offset)
            )

    return convert


def test_each_touchpoint_carried_is_applied_and_each_mistake_dead_lettered_with_the_whole_record() -> None:
    dispatch = _dispatch(
        _carrying(
            CARRIED[0],
            Rejection("unmapped_event", "batch[1]: no touchpoint is named 'Coupon Spun'"),
            CARRIED[1],
        )
    )
    vendor = b'{"batch": ["..."]}'
    outcomes = dispatch.touchpoints(Inbound(vendor, 0, topic="segment", offset=7))
    assert [o.event.type if o.event else o.rejection.reason for o in outcomes] == [
        "page_view",
        "unmapped_event",
        "cart_add",
    ]  # type: ignore[union-attr]
    letter = outcomes[1].dead_letter
    assert letter is not None and letter["reason"] == "unmapped_event" and "batch[1]" in letter["error"]
    assert letter["raw"] == vendor.decode()
    assert dispatch.reads.next_offset[source_name("segment", 0)] == 8


def test_a_record_that_carries_nothing_is_read_all_the_same() -> None:
    dispatch = _dispatch(_carrying())
    assert dispatch.touchpoints(Inbound(b"{}", 0, topic="snowplow", offset=12, behind=True)) == []
    source = source_name("snowplow", 0)
    assert dispatch.reads.next_offset[source] == 13 and dispatch.reads.behind[source] is True


def test_without_an_input_format_a_record_is_one_touchpoint() -> None:
    dispatch = _dispatch(None)
    (outcome,) = dispatch.touchpoints(Inbound(CARRIED[0], 0, topic="touchpoints"))
    assert outcome.event is not None and outcome.event.type == "page_view"
