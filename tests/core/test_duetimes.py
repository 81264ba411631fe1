"""Due times: handed out exactly as a plain sorted reference would, heap and wheel alike."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from motwatch.core.duetimes import BUCKET_MS, DueTimes

HOUR = BUCKET_MS
KEYS = st.sampled_from([f"k{i}" for i in range(12)])
# Due times from now to beyond a month (expiry), and watermarks that move on by minutes to weeks.
DUE = st.integers(min_value=0, max_value=40 * 24 * HOUR)
STEP = st.one_of(st.integers(0, HOUR // 2), st.integers(0, 3 * HOUR), st.integers(0, 20 * 24 * HOUR))
OPS = st.lists(st.one_of(st.tuples(st.just("schedule"), KEYS, DUE), st.tuples(st.just("advance"), STEP)))


class Reference:
    """The same contract, as plainly as it can be written."""

    def __init__(self) -> None:
        self.due: dict[str, int] = {}

    def schedule(self, key: str, due: int) -> None:
        if key not in self.due or due < self.due[key]:
            self.due[key] = due

    def pop_due(self, watermark: int) -> list[str]:
        ready = sorted((due, key) for key, due in self.due.items() if due <= watermark)
        for _, key in ready:
            del self.due[key]
        return [key for _, key in ready]


@settings(max_examples=300, deadline=None)
@given(OPS, st.integers(min_value=0, max_value=5 * HOUR))
def test_due_times_come_out_as_a_sorted_reference_gives_them(ops, start) -> None:
    index, reference = DueTimes(start), Reference()
    watermark = start
    for op in ops:
        if op[0] == "schedule":
            _, key, due = op
            due += start
            index.schedule(key, due)
            reference.schedule(key, due)
        else:
            watermark += op[1]
            assert list(index.pop_due(watermark)) == reference.pop_due(watermark)
        assert len(index) == len(reference.due)
        assert all(index.get(k) == d for k, d in reference.due.items())


def test_keys_scheduled_while_handing_out_are_handed_out_when_due() -> None:
    index = DueTimes(0)
    index.schedule("a", 10)
    index.schedule("later", 5 * HOUR)
    out = []
    for key in index.pop_due(100):
        out.append(key)
        if key == "a":
            index.schedule("b", 50)  # due within this watermark: handed out in this same pass
            index.schedule("c", 200)  # not yet
    assert out == ["a", "b"]
    assert list(index.pop_due(6 * HOUR)) == ["c", "later"]


def test_far_due_times_wait_in_the_wheel_not_the_heap() -> None:
    index = DueTimes(0)
    for i in range(100):
        index.schedule(f"j{i}", 30 * 24 * HOUR + i)  # expiry, a month out
    index.schedule("soon", HOUR // 2)
    assert [key for _, key in index._heap] == ["soon"]
    assert sum(len(keys) for keys in index._wheel.values()) == 100
    assert list(index.pop_due(HOUR)) == ["soon"]
    assert list(index.pop_due(31 * 24 * HOUR)) == [f"j{i}" for i in range(100)]
    assert not index._wheel and not index._heap and len(index) == 0
