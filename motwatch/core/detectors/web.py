"""The web shop: broken links and first impressions that bounce."""

from __future__ import annotations

from typing import Any

from motwatch.core.detectors.base import Detector
from motwatch.core.events import Touchpoint
from motwatch.core.journey import MAX_ITEMS, JourneyState
from motwatch.core.moments import Moment


class BrokenLink(Detector):
    """A page or a link target answered 4xx/5xx: once per URL per session."""

    kind = "broken_link"
    types = frozenset({"page_view", "link_click"})

    def on_event(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        props: Any = event.properties
        if event.type == "page_view":
            status, url = props.http_status, props.url
            details = {"url": url, "http_status": status}
        elif event.type == "link_click":
            status, url = props.http_status, props.target_url
            details = {"url": props.url, "target_url": url, "http_status": status}
        else:
            return []
        if status is None or status < self.settings.min_http_status:
            return []
        if event.session_id is not None:
            details["session_id"] = event.session_id
        return self.fail_now(state, event, f"{event.session_id or ''}|{url}", details)


class FirstImpressionBounce(Detector):
    """Leaving a product page, on the first visit of that product, before the threshold."""

    kind = "first_impression_bounce"
    types = frozenset({"page_exit"})

    def on_event(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        if event.type != "page_exit":
            return []
        props: Any = event.properties
        if props.page_category != "product":
            return []
        product = props.product_id or props.url
        if product in state.exited_products:
            return []
        state.exited_products.append(product)
        del state.exited_products[:-MAX_ITEMS]
        threshold_ms = self.settings.min_dwell_s * 1000
        if props.dwell_ms >= threshold_ms:
            return []
        details = {"url": props.url, "dwell_ms": props.dwell_ms, "threshold_ms": threshold_ms}
        if props.product_id is not None:
            details["product_id"] = props.product_id
        return self.fail_now(state, event, product, details)
