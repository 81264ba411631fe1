"""Where each record goes: the one path from a record of the journey topics to the engine.

The worker's journey agent and ``motwatch detect`` hand every record to a
:class:`JourneyDispatch` and carry out the :class:`Outcome` it returns: send
the moments, send the records meant for journey partitions (the re-keyed
topic), dead-letter the rejected message. The agent sends them through
Kafka; ``detect`` loops the re-keyed records straight back into the same
dispatch. Both therefore reach the engine by the same path, and give the
same moments by construction.

Two kinds of record come in:

* a *touchpoint as produced* (:meth:`JourneyDispatch.touchpoint`), read
  from a source partition of the input topic: validated (a rejected one is
  dead-lettered), checked against the time it arrived (an event too far in
  the future is rejected, so one wrong clock cannot move event time for
  everyone), counted in the source's progress, and sent to each journey it
  concerns: its own, and for an ``identify`` the anonymous journey it joins
  too. A journey that lives on the partition the record was read from gets
  it at once (``direct``: the input topic is partitioned like the journey
  topics); any other gets it through the re-keyed topic, ahead of the
  progress records that cover it. Both journeys of an ``identify`` thus
  hear of it from its source, never one through the other, so event time
  covers it on both sides, whichever partition each lives on;
* a *record of the re-keyed topic* (:meth:`JourneyDispatch.journey_record`):
  a touchpoint re-keyed or forwarded to its journey, or a record the worker
  wrote itself (the sources' progress, a tick, a merge of two journeys).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from motwatch.core.deadletter import dead_letter_record, file_source, kafka_source
from motwatch.core.engine import JourneyEngine, Step
from motwatch.core.events import Touchpoint
from motwatch.core.moments import Moment
from motwatch.core.partitioner import partition_for_key
from motwatch.core.records import (
    FORWARDED,
    MERGE,
    MERGE_REQUEST,
    PROGRESS,
    RECORD,
    SOURCE,
    SOURCE_PROGRESS,
    TICK,
    Progress,
    control_headers,
    decode_body,
    encode_body,
    forwarded_headers,
    header_map,
    read_progress,
    source_name,
    touchpoint_headers,
)
from motwatch.core.sources import SourceReads
from motwatch.core.validation import Rejection, check_arrival, validate_touchpoint
from motwatch.settings import Settings

log = logging.getLogger("motwatch.dispatch")


@dataclass(slots=True)
class Inbound:
    """One record as read: from a Kafka topic, or a line of a file (``in_file``)."""

    value: bytes
    # The partition it was read from (a file: 0).
    partition: int
    key: bytes | None = None
    headers: Mapping[str, str] | None = None
    # When it arrived: the record's timestamp (a file: see ``motwatch detect``). None: unknown.
    timestamp_ms: int | None = None
    # More records were waiting in its partition after this one when it was read.
    behind: bool = False
    # Where it came from, for a dead letter: topic and offset, or file and line.
    topic: str = ""
    offset: int = 0
    in_file: bool = False

    def origin(self) -> dict[str, Any]:
        if self.in_file:
            return file_source(self.topic, self.offset)
        return kafka_source(self.topic, self.partition, self.offset)


@dataclass(slots=True)
class Outbound:
    """A record for a journey partition, through the re-keyed topic (keyed by journey, or
    sent to ``partition``)."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int | None = None
    partition: int | None = None


@dataclass(slots=True)
class Outcome:
    """What one record caused: the touchpoint it carried (when valid), or why it was
    rejected and its dead letter; the engine's steps (their moments); the records to send on."""

    event: Touchpoint | None = None
    rejection: Rejection | None = None
    dead_letter: dict[str, Any] | None = None
    steps: list[Step] = field(default_factory=list)
    sends: list[Outbound] = field(default_factory=list)

    def moments(self) -> Iterator[Moment]:
        for step in self.steps:
            yield from step.moments


# An input format other than motwatch's own: one record as read, as the touchpoint records it
# carries (each in motwatch's format, read from the same place) and the rejections of the rest.
InputFormat = Callable[["Inbound"], Iterable["Inbound | Rejection"]]


class JourneyDispatch:
    """Takes records, drives the engine of the journey partition each concerns, and says what to send.

    ``engine_for(partition)``: the engine of a journey partition this
    dispatch serves (the worker: those assigned to it; ``detect``: one).
    ``partitions``: how many journey partitions there are; ``direct``: the
    input topic is partitioned like them, so a touchpoint read from partition
    *p* whose journey lives on *p* is applied at once. ``reads`` keeps what
    was read from each source partition (its news is announced to every
    journey partition by the worker). ``input_format``: how the input
    topic's records become touchpoints when they are not motwatch's own
    (a vendor's, ``motwatch/adapters``): see :meth:`touchpoints`.
    """

    def __init__(
        self,
        settings: Settings,
        engine_for: Callable[[int], JourneyEngine],
        *,
        partitions: int,
        direct: bool,
        reads: SourceReads | None = None,
        input_format: InputFormat | None = None,
    ) -> None:
        self.engine_for = engine_for
        self.input_format = input_format
        self.partitions = partitions
        self.direct = direct
        self.reads = reads or SourceReads()
        self.input_topic = settings.touchpoints_topic
        self.max_skew_ms = round(settings.max_future_skew_s * 1000)
        self.limits = settings.limits
        self._sources: dict[tuple[str, int], str] = {}

    # -- touchpoints as produced --------------------------------------------------
    def touchpoints(self, record: Inbound) -> list[Outcome]:
        """A record of the input topic in its input format: an outcome for each touchpoint it
        carries (as :meth:`touchpoint`), and for each of its events rejected (dead-lettered with
        the whole record). A record that carries neither (a vendor's heartbeat) is read all the same."""
        if self.input_format is None:
            return [self.touchpoint(record)]
        outcomes = [
            self._reject(record, item) if isinstance(item, Rejection) else self.touchpoint(item)
            for item in self.input_format(record)
        ]
        if not outcomes or any(outcome.rejection for outcome in outcomes):  # read all the same
            self.reads.passed(self._source(record.topic, record.partition), record.behind, record.offset)
        return outcomes

    def touchpoint(self, record: Inbound) -> Outcome:
        """A record of the input topic, read from its partition ``record.partition``."""
        source = self._source(record.topic, record.partition)
        result = validate_touchpoint(record.value, self.limits)
        if not isinstance(result, Rejection):
            rejection = check_arrival(result, record.timestamp_ms, self.max_skew_ms)
            result = result if rejection is None else rejection
        if isinstance(result, Rejection):
            # Read all the same: whether records still wait behind it is news.
            self.reads.passed(source, record.behind, record.offset)
            return self._reject(record, result)
        outcome = Outcome(event=result)
        read = self.reads.observe(source, result.occurred_ms, record.behind, record.offset)
        self._route(result, result.journey_key, record, source, read, outcome)
        if result.type == "identify" and result.anonymous_id != result.customer_id:
            # The anonymous journey it joins hears of it from here too, not through the customer's.
            self._route(result, result.anonymous_id, record, source, read, outcome)  # type: ignore[arg-type]
        return outcome

    def _route(
        self, event: Touchpoint, key: str, record: Inbound, source: str, read: int, outcome: Outcome
    ) -> None:
        if self.direct and partition_for_key(key, self.partitions) == record.partition:
            engine = self.engine_for(record.partition)
            engine.clock.read_here(source, read)
            self._follow(engine.process(event, key=key), record.value, outcome)
        else:
            headers = touchpoint_headers(source)
            outcome.sends.append(Outbound(key.encode(), record.value, headers, event.occurred_ms))

    def _source(self, topic: str, partition: int) -> str:
        name = self._sources.get((topic, partition))
        if name is None:
            name = self._sources[(topic, partition)] = source_name(topic, partition)
        return name

    # -- the re-keyed topic ---------------------------------------------------------
    def journey_record(self, record: Inbound) -> Outcome:
        """A record of the re-keyed topic, on the journey partition ``record.partition``."""
        headers = record.headers or {}
        kind = headers.get(RECORD)
        if kind is None:
            return self._journey_touchpoint(record, headers)
        if kind not in (SOURCE_PROGRESS, TICK, MERGE_REQUEST, MERGE):
            log.warning("unknown record %r on %s[%s]@%s", kind, record.topic, record.partition, record.offset)
            return Outcome()
        engine = self.engine_for(record.partition)
        if kind == SOURCE_PROGRESS:
            step = engine.progress(self._vouched(read_progress(record.value), record.partition))
        elif kind == TICK:
            step = engine.tick(int(decode_body(record.value)["wall_ms"]))
        else:
            step = engine.control((record.key or b"").decode(), kind, decode_body(record.value))
        outcome = Outcome()
        self._follow(step, record.value, outcome)
        return outcome

    def _vouched(self, news: Progress, partition: int) -> Progress:
        """The news, with the progress of the source read on ``partition`` itself only as far as
        this dispatch has read that source, and that source behind while the news is ahead.

        With ``direct``, the input partition numbered like a journey partition is read where that
        journey partition is held, and the records applied there reach its clock outside the
        re-keyed topic's order. Whoever takes the partitions over (a restart, a rebalance) reads
        the re-keyed topic from its committed offset, where the last holder's news of that
        source may stand ahead of records that are read again from the input topic's committed
        offset: taken at its word, it would move event time past them, and timeouts would fire
        before the events that settle them. What this reader has not read yet of what the news
        tells waits to be read: the source has a backlog, whatever the last holder said of its
        own, so the last holder's ticks that follow do not find it idle. Live, the news was made
        from these very reads and is never ahead of them.
        """
        if not self.direct:
            return news
        own = self._source(self.input_topic, partition)
        told = news.reads.get(own)
        if told is None:
            return news
        read = self.reads.read.get(own)
        if read is not None and read >= told:
            return news
        reads = dict(news.reads)
        unread = news.unread
        if read is None:
            del reads[own]
            unread = unread | {own}
        else:
            reads[own] = read
        behind = None if news.behind is None else news.behind | {own}
        return replace(news, reads=reads, unread=unread, behind=behind)

    def _journey_touchpoint(self, record: Inbound, headers: Mapping[str, str]) -> Outcome:
        result = validate_touchpoint(record.value, self.limits)
        if isinstance(result, Rejection):
            return self._reject(record, result)
        source = headers.get(SOURCE)
        if source is None and FORWARDED not in headers:
            # Written straight into this topic by a producer: checked as the input topic's are.
            rejection = check_arrival(result, record.timestamp_ms, self.max_skew_ms)
            if rejection is not None:
                return self._reject(record, rejection)
        engine = self.engine_for(record.partition)
        if source is not None and PROGRESS in headers:  # written by an earlier motwatch
            engine.clock.source_progress(source, int(headers[PROGRESS]))
        key = record.key.decode() if record.key else result.journey_key
        outcome = Outcome(event=result)
        self._follow(engine.process(result, key=key), record.value, outcome)
        return outcome

    def advance(self, partition: int, watermark_ms: int) -> Outcome:
        """Move a journey partition's watermark on (the end of a file) and fire what is due."""
        outcome = Outcome()
        self._follow(self.engine_for(partition).advance(watermark_ms), b"", outcome)
        return outcome

    def loop_back(self, outcome: Outcome, partition: int = 0) -> Iterator[Outcome]:
        """The outcome, then the outcomes of the records it sends, read back by this same
        dispatch on one journey partition: the re-keyed topic of an offline run (``detect``)."""
        queue = deque([outcome])
        while queue:
            current = queue.popleft()
            yield current
            for send in current.sends:
                looped = Inbound(
                    send.value,
                    partition,
                    key=send.key,
                    headers=header_map(send.headers),
                    timestamp_ms=send.timestamp_ms,
                    topic="(re-keyed)",
                )
                queue.append(self.journey_record(looped))

    # -- what a step sends on --------------------------------------------------------
    @staticmethod
    def _follow(step: Step, raw: bytes, outcome: Outcome) -> None:
        outcome.steps.append(step)
        for fwd in step.forwards:
            if fwd.kind == "event":
                # Only the touchpoint being applied is ever forwarded: its bytes go on untouched.
                at = fwd.event.occurred_ms if fwd.event is not None else None
                outcome.sends.append(Outbound(fwd.key.encode(), raw, forwarded_headers(), at))
            else:
                body = encode_body(fwd.payload or {})
                outcome.sends.append(Outbound(fwd.key.encode(), body, control_headers(fwd.kind)))

    def _reject(self, record: Inbound, rejection: Rejection) -> Outcome:
        raw = record.value
        if rejection.reason == "too_large":
            # Whole, it might be too large to write to the dead-letter topic, and stop the worker there.
            raw = raw[: self.limits.max_message_bytes]
        letter = dead_letter_record(raw, rejection, record.origin())
        return Outcome(rejection=rejection, dead_letter=letter)
