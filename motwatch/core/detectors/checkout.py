"""The purchase itself (FMOT): abandoned checkouts and checkout errors."""

from __future__ import annotations

from typing import Any

from motwatch.core.detectors.base import Detector, Origin, earliest_open_deadline, keep
from motwatch.core.events import Touchpoint
from motwatch.core.journey import JourneyState, trim_items
from motwatch.core.moments import Moment


class AbandonedCheckout(Detector):
    """A checkout with no order of the journey within the window.

    An order clears every open checkout of the journey it falls within the
    window of, and any checkout of its own cart; an order after the deadline
    turns a reported abandonment into a recovery.
    """

    kind = "abandoned_checkout"
    types = frozenset({"checkout_started", "order_completed"})

    def _window_ms(self) -> int:
        return round(self.settings.window_s * 1000)

    @staticmethod
    def _order_matches(checkout: dict[str, Any], order: list[Any]) -> bool:
        at, cart_id, _ = order
        return cart_id == checkout["cart_id"] or at >= checkout["started_ms"]

    def on_event(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        if event.type == "checkout_started":
            return self._started(state, event)
        if event.type == "order_completed":
            return self._ordered(state, event)
        return []

    def _started(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        cart_id = event.properties.cart_id  # type: ignore[attr-defined]
        if cart_id in state.checkouts:
            return []
        checkout: dict[str, Any] = {
            "cart_id": cart_id,
            "state": "open",
            "started_ms": event.occurred_ms,
            "deadline_ms": event.occurred_ms + self._window_ms(),
            "event_id": event.event_id,
            "value": getattr(event.properties, "value", None),
            "currency": getattr(event.properties, "currency", None),
            "origin": self.reporter.origin(self.kind, state, event).to_dict(),
        }
        state.checkouts[cart_id] = checkout
        # An order already seen (it arrived first) may settle it at once.
        self._settle(checkout, state.orders)
        trim_items(state.checkouts)
        return []

    def _settle(self, checkout: dict[str, Any], orders: list[list[Any]]) -> None:
        for order in orders:
            if self._order_matches(checkout, order) and order[0] <= checkout["deadline_ms"]:
                self._complete(checkout, order[0])
                return

    def _complete(self, checkout: dict[str, Any], at_ms: int) -> None:
        checkout["state"] = "completed"
        checkout["completed_ms"] = at_ms
        self.reporter.measure("checkout_duration", (at_ms - checkout["started_ms"]) / 1000)

    def on_merge(self, state: JourneyState) -> None:
        for checkout in state.checkouts.values():
            if checkout["state"] == "open":
                self._settle(checkout, state.orders)

    def _ordered(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        order = [event.occurred_ms, getattr(event.properties, "cart_id", None), event.event_id]
        out: list[Moment] = []
        for checkout in state.checkouts.values():
            if not self._order_matches(checkout, order):
                continue
            if checkout["state"] == "open" and order[0] <= checkout["deadline_ms"]:
                self._complete(checkout, order[0])
            elif checkout["state"] == "failed":
                keep(self._recover(state, checkout, order), out)
        return out

    def _recover(self, state: JourneyState, checkout: dict[str, Any], order: list[Any]) -> Moment | None:
        checkout["state"] = "recovered"
        return self.reporter.report(
            state,
            self.kind,
            checkout["cart_id"],
            Origin.from_dict(checkout["origin"]),
            status="recovered",
            at_ms=order[0],
            evidence=(checkout["event_id"], order[2]),
            details=self._details(checkout)
            | {"recovered_after_s": (order[0] - checkout["started_ms"]) / 1000},
        )

    def _details(self, checkout: dict[str, Any]) -> dict[str, Any]:
        details = {"cart_id": checkout["cart_id"], "window_s": self.settings.window_s}
        if checkout["value"] is not None:
            details["value"] = checkout["value"]
        if checkout["currency"] is not None:
            details["currency"] = checkout["currency"]
        return details

    def next_deadline(self, state: JourneyState) -> int | None:
        return earliest_open_deadline(state.checkouts)

    def on_deadline(self, state: JourneyState, deadline: int) -> list[Moment]:
        out: list[Moment] = []
        for checkout in list(state.checkouts.values()):
            if checkout["state"] != "open" or checkout["deadline_ms"] != deadline:
                continue
            checkout["state"] = "failed"
            keep(
                self.reporter.report(
                    state,
                    self.kind,
                    checkout["cart_id"],
                    Origin.from_dict(checkout["origin"]),
                    at_ms=deadline,
                    evidence=(checkout["event_id"],),
                    details=self._details(checkout),
                ),
                out,
            )
            # A late order, applied before its checkout started, recovers it at once.
            for order in state.orders:
                if self._order_matches(checkout, order) and order[0] > deadline:
                    keep(self._recover(state, checkout, order), out)
                    break
        return out


class CheckoutError(Detector):
    """A payment that failed, or a checkout step answered with a server error."""

    kind = "checkout_error"
    types = frozenset({"payment_failed", "checkout_step"})

    def on_event(self, state: JourneyState, event: Touchpoint) -> list[Moment]:
        props: Any = event.properties
        if event.type == "payment_failed":
            details = {"cart_id": props.cart_id, "step": "payment"}
            if props.reason is not None:
                details["reason"] = props.reason
            return self.fail_now(state, event, f"{props.cart_id}|payment", details)
        if event.type == "checkout_step":
            status = props.http_status
            if status is None or status < self.settings.min_http_status:
                return []
            details = {"cart_id": props.cart_id, "step": props.step, "http_status": status}
            return self.fail_now(state, event, f"{props.cart_id}|{props.step}", details)
        return []
