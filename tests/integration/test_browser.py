"""The browser tracker in real headless Chromium, through the collector and the worker, to moments.

The session's broker, ``motwatch collect --shop`` and ``motwatch worker`` run
as processes; Chromium (tests/browser.py, over the DevTools protocol) plays
four visitors on the demo shop, each in a browser context of its own, so
each is a journey of its own, keyed by the anonymous id its tracker stored:

* one leaves the product page at once: a ``first_impression_bounce``;
* one clicks the sale page's broken link and lands on the 404 page, which
  reports itself: a ``broken_link`` for the missing page;
* one starts a checkout and leaves it: an ``abandoned_checkout`` once event
  time passes the window;
* one places an order: no moment at all.

The worker's clock is event time and the tracker's events carry the
browser's time, so once every visitor's events are on the touchpoints topic
one touchpoint of another journey, later than every checkout's deadline,
moves event time past the window.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from motwatch.core.validation import validate_touchpoint
from tests.browser import CHROMIUM, Chromium, Page
from tests.integration.test_collector import CollectorProcess
from tests.workers import (
    WorkerProcess,
    committed_to_the_end,
    motwatch_env,
    read_topic,
    read_until_quiet,
    run_cli,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.external,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]

WINDOW_S = 30
MIN_DWELL_S = 5
SETTINGS = {
    # One partition and no lateness: every touchpoint is applied as it arrives, in arrival order.
    "partitions": 1,
    "allowed_lateness_s": 0,
    # Only the stream moves event time, never the wall clock.
    "idle_advance_s": 36000,
    "kinds__abandoned_checkout__window_s": WINDOW_S,
    "kinds__first_impression_bounce__min_dwell_s": MIN_DWELL_S,
    "write_keys": "demo-shop",  # the shop's script tags carry this key
}
AID = "localStorage.getItem('mw_aid')"


async def _visitor(browser: Chromium, url: str) -> tuple[Page, str]:
    """A new visitor on ``url``: its tab, and the anonymous id its tracker stored."""
    page = await browser.new_page()
    await page.goto(url)
    return page, await page.wait_for(AID)


def _journeys(records: list[Any]) -> dict[str, set[str]]:
    """Touchpoint types by journey key."""
    seen: dict[str, set[str]] = {}
    for record in records:
        event = validate_touchpoint(record.value)
        seen.setdefault(event.journey_key, set()).add(event.type)
    return seen


async def test_shoppers_in_chromium_raise_the_moments_their_journeys_earn(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = motwatch_env(kafka_bootstrap, topic_prefix, **SETTINGS)
    touchpoints = f"{topic_prefix}touchpoints"
    worker = WorkerProcess(env, tmp_path / "worker").start()
    collector = CollectorProcess(env, tmp_path / "collector", "--shop").start()
    shop = f"{collector.url}/shop"
    try:
        async with Chromium(tmp_path / "browser") as browser:
            # Leaves the product page as soon as the tracker has run.
            bouncer, bounced = await _visitor(browser, f"{shop}/product.html")
            left_at = time.monotonic()
            await bouncer.goto(f"{shop}/index.html")
            assert time.monotonic() - left_at < MIN_DWELL_S

            # Follows the sale page's link to a page that is not there.
            clicker, clicked = await _visitor(browser, f"{shop}/broken.html")
            async with clicker.navigation():
                await clicker.click("#broken-link")
            assert await clicker.evaluate("document.title") == "Page not found - Kitchen Corner"

            # Starts a checkout, goes on to payment, and leaves for the shop.
            leaver, left = await _visitor(browser, f"{shop}/checkout.html")
            cart = await leaver.wait_for("JSON.parse(sessionStorage.getItem('shop:cart')).cart_id")
            await leaver.click("#to-payment")
            await leaver.wait_for("!document.getElementById('payment').hidden")
            async with leaver.navigation():
                await leaver.click("#leave")

            # Goes through every step and places the order.
            buyer, bought = await _visitor(browser, f"{shop}/checkout.html")
            png = await buyer.screenshot(tmp_path / "checkout.png")
            assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
            await buyer.click("#to-payment")
            await buyer.wait_for("!document.getElementById('payment').hidden")
            await buyer.click("#to-review")
            await buyer.wait_for("!document.getElementById('review').hidden")
            async with buyer.navigation():
                await buyer.click("#place-order")
            assert await buyer.evaluate("location.pathname") == "/shop/thanks.html"

            expected = {
                bounced: {"page_view", "page_exit"},
                clicked: {"page_view", "link_click"},
                left: {"checkout_started", "checkout_step"},
                bought: {"checkout_started", "checkout_step", "order_completed"},
            }
            assert len(expected) == 4, "every visitor should have an anonymous id of its own"

            def arrived(records: list[Any]) -> bool:
                seen = _journeys(records)
                return all(types <= seen.get(key, set()) for key, types in expected.items())

            records = await read_topic(kafka_bootstrap, touchpoints, arrived, timeout=30)
            assert arrived(records), f"the tracker's events did not all arrive: {_journeys(records)}"

        # Every browser event is in: a later touchpoint moves event time past every checkout's window.
        clock = datetime.now(UTC) + timedelta(seconds=2 * WINDOW_S)
        tick = {
            "event_id": f"clock-{topic_prefix}",
            "occurred_at": clock.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "anonymous_id": "clock",
            "channel": "web",
            "type": "page_view",
            "properties": {"url": f"{shop}/index.html"},
        }
        path = tmp_path / "clock.jsonl"
        path.write_bytes(orjson.dumps(tick) + b"\n")
        produced = run_cli("produce", str(path), env=env)
        assert produced.returncode == 0, produced.stderr.decode()

        moments_topic = f"{topic_prefix}moments"
        await read_topic(kafka_bootstrap, moments_topic, lambda r: len(r) >= 3, timeout=60)
        async with committed_to_the_end(kafka_bootstrap, f"{topic_prefix}motwatch", touchpoints) as done:
            records = await read_until_quiet(kafka_bootstrap, moments_topic, quiet_s=3.0, ready=done)
        assert worker.alive() and collector.alive()
    finally:
        collector.stop()
        worker.stop()

    moments = [orjson.loads(r.value) for r in records]
    for record, moment in zip(records, moments, strict=True):
        assert record.key.decode() == moment["journey_key"]
    by_journey: dict[str, list[dict[str, Any]]] = {}
    for moment in moments:
        by_journey.setdefault(moment["journey_key"], []).append(moment)
    assert set(by_journey) == {bounced, clicked, left}, moments

    [bounce] = by_journey[bounced]
    assert (bounce["kind"], bounce["status"]) == ("first_impression_bounce", "failed")
    assert bounce["details"]["product_id"] == "blender-300"
    assert bounce["details"]["dwell_ms"] < MIN_DWELL_S * 1000

    [broken] = by_journey[clicked]
    assert (broken["kind"], broken["status"]) == ("broken_link", "failed")
    assert broken["details"]["url"] == f"{shop}/kettle-spring-offer.html"
    assert broken["details"]["http_status"] == 404

    [abandoned] = by_journey[left]
    assert (abandoned["kind"], abandoned["status"]) == ("abandoned_checkout", "failed")
    assert abandoned["details"]["cart_id"] == cart
    assert bought not in by_journey, "a completed order is no abandoned checkout"
