"""What a reader of the input topic has read from each source partition, and what it has yet to announce.

The journey partitions' event time follows the source partitions' progress
(``motwatch/clock.py``). The reader keeps, per source partition: the latest
event time read (none yet for a partition it has read nothing valid from),
the next offset to read, and whether records were waiting to be read when it
last looked (a backlog). What changed since the last announcement is news.
"""

from __future__ import annotations

from collections.abc import Mapping

from motwatch.core.records import progress_body


class SourceReads:
    """Per source partition: the latest event time read (None: none yet), and whether it is behind."""

    def __init__(self) -> None:
        self.read: dict[str, int | None] = {}
        self.behind: dict[str, bool] = {}
        # The offset after the last record read, for partitions something was read from.
        self.next_offset: dict[str, int] = {}
        self.announced: dict[str, tuple[int | None, bool]] = {}
        self.inputs: dict[str, int] = {}
        self.inputs_announced: dict[str, int] = {}

    def observe(self, source: str, occurred_ms: int, behind: bool, offset: int | None = None) -> int:
        """A touchpoint of ``source`` was read; returns the latest event time read from it."""
        read = self.read.get(source)
        if read is None or occurred_ms > read:
            read = self.read[source] = occurred_ms
        self._at(source, behind, offset)
        return read

    def passed(self, source: str, behind: bool, offset: int | None = None) -> None:
        """A record of ``source`` was read that carries no event time (it was rejected)."""
        self.read.setdefault(source, None)
        self._at(source, behind, offset)

    def _at(self, source: str, behind: bool, offset: int | None) -> None:
        self.behind[source] = behind
        if offset is not None:
            self.next_offset[source] = offset + 1

    def waiting(self, source: str, behind: bool) -> None:
        """The reader looked at ``source``: whether records wait there now, past what it read."""
        self.read.setdefault(source, None)
        self.behind[source] = behind

    def has_read(self, source: str) -> bool:
        return self.read.get(source) is not None

    def set_inputs(self, inputs: Mapping[str, int]) -> None:
        """Partitions per input topic, as this reader's metadata has them (news when they grow)."""
        for topic, count in inputs.items():
            self.inputs[topic] = max(count, self.inputs.get(topic, 0))

    def forget_reads(self) -> None:
        """The reader gave its partitions up: what it read of them is read again, from their
        committed offsets, by whoever takes them (this reader too)."""
        self.read.clear()
        self.behind.clear()
        self.next_offset.clear()
        self.announced.clear()

    def news(self, restate: bool = False) -> bytes | None:
        """The body of a progress record with everything new since the last call; None: no news.

        Partitions nothing was read from yet are told with every news: the journey partitions
        wait for them until told, after their traffic began, that they have nothing to read.
        ``restate``: every partition read here, new or not: a tick finds a partition idle only
        if its reader said so since the tick before (``motwatch/core/clock.py``).
        """
        announced, behind = self.announced, self.behind
        news = {s: t for s, t in self.read.items() if restate or announced.get(s) != (t, behind[s])}
        inputs = {t: n for t, n in self.inputs.items() if self.inputs_announced.get(t) != n}
        if not news and not inputs:
            return None
        news.update((s, None) for s, t in self.read.items() if t is None)
        for source, at in news.items():
            announced[source] = (at, behind[source])
        self.inputs_announced.update(inputs)
        return progress_body(news, (s for s in news if behind[s]), inputs)
