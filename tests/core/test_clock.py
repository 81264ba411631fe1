"""Event time of a partition: ticks, idle advance and the pace its input sources set."""

from __future__ import annotations

from motwatch.core.clock import NEVER, PartitionClock
from motwatch.core.engine import JourneyEngine
from motwatch.core.records import Progress
from tests.journeys import ms, settings, touch

# -- ticks and source progress -------------------------------------------------------------------


def test_an_idle_partition_follows_the_wall_clock_after_the_idle_period():
    clock = PartitionClock(lateness_ms=0, self_timed=False, idle_advance_ms=30_000)
    engine = JourneyEngine(settings(allowed_lateness_s=0), clock=clock)
    engine.progress(Progress({"p0": ms(0)}))
    engine.process(touch("chat_started", 0, chat_id="c"))
    engine.tick(1_000_000)
    engine.progress(Progress({"p0": ms(0)}))  # its reader restates it: read, nothing new
    engine.tick(1_001_000)  # no activity since the last tick: idle from 1_000_000
    wall = 1_001_000
    while clock.watermark_ms <= ms(60):
        assert wall < 1_200_000, "the watermark never moved"
        wall += 1000
        engine.progress(Progress({"p0": ms(0)}))
        step = engine.tick(wall)
        if clock.watermark_ms <= ms(60):
            assert step.moments == []
    # 30 s of idleness, then a second of event time per second of wall time.
    assert wall == 1_000_000 + 30_000 + 61_000
    assert [m.kind for m in step.moments] == ["chat_unanswered"]


def test_activity_resets_the_idle_period():
    clock = PartitionClock(lateness_ms=0, self_timed=False, idle_advance_ms=5_000)
    clock.source_progress("p0", 10_000)
    for wall in range(0, 20_000, 1000):
        clock.on_tick(wall)
        clock.source_progress("p0", 10_000)  # restated: read, nothing newer
        clock.observe(5_000)  # but a record arrived (an older event)
    assert clock.watermark_ms == 10_000


def test_a_quiet_source_with_a_backlog_keeps_holding_the_pace():
    """A source reported behind (records waiting to be read) is slow, not idle: a worker catching
    up reads its partitions unevenly, and dropping it would make its events late."""
    clock = PartitionClock(lateness_ms=0, self_timed=False, idle_advance_ms=10**9)
    clock.source_progress("p0", 100_000, behind=True)
    clock.source_progress("p1", 100_000, behind=False)
    for wall in range(0, 5000, 1000):
        clock.on_tick(wall)
        clock.source_progress("p1", 200_000 + wall)  # p1 moves on; p0 makes no progress
        clock.source_progress("p0", 100_000, behind=True)  # restated by its reader
    assert clock.watermark_ms == 100_000, "a source with a backlog must hold the watermark"
    clock.source_progress("p0", 100_000, behind=False)  # caught up, and quiet from now on
    clock.on_tick(5000)
    clock.source_progress("p0", 100_000, behind=False)
    clock.on_tick(6000)
    assert clock.watermark_ms == 204_000, "a caught-up quiet source no longer holds the pace"


def test_no_idle_advance_while_a_source_has_a_backlog():
    clock = PartitionClock(lateness_ms=0, self_timed=False, idle_advance_ms=1000)
    for wall in range(0, 20_000, 1000):
        clock.source_progress("p0", 10_000, behind=True)
        clock.on_tick(wall)
    assert clock.watermark_ms == 10_000
    for wall in range(20_000, 30_000, 1000):
        clock.source_progress("p0", 10_000, behind=False)
        clock.on_tick(wall)
    assert clock.watermark_ms > 10_000


def test_a_clock_saved_before_backlogs_or_reports_were_kept_still_loads():
    saved = PartitionClock(lateness_ms=0, self_timed=False).to_dict()
    del saved["behind"], saved["reported"]
    loaded = PartitionClock.from_dict(saved)
    assert loaded.behind == [] and loaded.reported == []


def test_a_source_nobody_reported_over_a_tick_interval_holds_the_pace_at_its_last_time():
    """Its reader stopped, and whoever takes its partition over has said nothing yet: records may
    wait in it, older than the others' latest. It is unread, not idle."""
    clock = PartitionClock(lateness_ms=0, self_timed=False, idle_advance_ms=1000)
    clock.source_progress("p0", 100_000)
    clock.source_progress("p1", 300_000)
    for wall in range(0, 10_000, 1000):
        clock.source_progress("p1", 300_000)  # p1's reader restates it; p0's says nothing
        clock.on_tick(wall)
    assert clock.watermark_ms == 100_000, "an unreported source was dropped, or idle advance began"
    clock.source_unread("p0", behind=False)  # a new reader: nothing read there yet, nothing waiting
    clock.source_progress("p1", 300_000)
    clock.on_tick(10_000)
    assert clock.watermark_ms == 300_000, "reported, and made no progress: idle"


def test_ticks_out_of_order_are_ignored():
    clock = PartitionClock(lateness_ms=0, self_timed=False, idle_advance_ms=0)
    clock.source_progress("p0", 10_000)
    clock.on_tick(5000)
    clock.on_tick(6000)
    mark = clock.watermark_ms
    clock.on_tick(5500)
    assert clock.watermark_ms == mark


def test_a_self_timed_clock_ignores_nothing_and_a_shell_clock_waits_for_sources():
    own = PartitionClock(lateness_ms=1000)
    own.observe(50_000)
    assert own.watermark_ms == 49_000
    shell = PartitionClock(lateness_ms=1000, self_timed=False)
    shell.observe(50_000)
    assert shell.watermark_ms == NEVER


def test_the_slowest_active_source_sets_the_pace():
    clock = PartitionClock(lateness_ms=1000, self_timed=False, idle_advance_ms=10**9)
    clock.source_progress("p0", 100_000)
    clock.source_progress("p1", 100_000)
    clock.on_tick(0)
    clock.source_progress("p0", 300_000)
    assert clock.watermark_ms == 99_000  # p1 holds it back
    clock.source_progress("p1", 150_000)
    assert clock.watermark_ms == 149_000
    clock.source_progress("p2", 120_000)  # a new source: the watermark never goes back
    assert clock.watermark_ms == 149_000
    clock.source_progress("p1", 400_000)
    clock.source_progress("p2", 200_000)
    assert clock.watermark_ms == 199_000


def test_a_source_without_progress_over_a_tick_interval_stops_holding_back():
    clock = PartitionClock(lateness_ms=1000, self_timed=False, idle_advance_ms=10**9)
    clock.source_progress("p0", 100_000)
    clock.source_progress("p1", 100_000)
    clock.on_tick(0)
    clock.source_progress("p0", 300_000)
    clock.source_progress("p1", 100_000)  # its reader restates it: nothing new
    clock.on_tick(1000)  # p1 made progress since the last tick? no: it no longer holds the pace
    assert clock.watermark_ms == 299_000
    # Once it moves again, it is active again (but the watermark never goes back).
    clock.source_progress("p1", 200_000)
    clock.source_progress("p0", 500_000)
    assert clock.watermark_ms == 299_000
    clock.on_tick(2000)  # both active: the slower one sets the pace
    assert clock.watermark_ms == 299_000
    clock.source_progress("p1", 600_000)
    assert clock.watermark_ms == 499_000


def test_source_progress_fires_timeouts_through_the_engine():
    clock = PartitionClock(lateness_ms=0, self_timed=False)
    engine = JourneyEngine(settings(allowed_lateness_s=0), clock=clock)
    engine.progress(Progress({"p0": ms(0)}))
    engine.process(touch("checkout_started", 0, cart_id="c"))
    engine.progress(Progress({"p1": ms(1801)}))
    assert engine.progress(Progress({"p0": ms(1800)})).moments == []
    assert [m.kind for m in engine.progress(Progress({"p0": ms(1801)})).moments] == ["abandoned_checkout"]


def test_the_clock_survives_serialisation():
    clock = PartitionClock(lateness_ms=1000, self_timed=False)
    clock.source_progress("p0", 5000)
    clock.on_tick(10)
    assert PartitionClock.from_dict(clock.to_dict()) == clock
