"""Which vendor event becomes which touchpoint: the built-in tables, a shop's additions, and their Markdown.

Each vendor has a table of its documented event names: the touchpoint type,
the channel, and where each touchpoint property is read from (a dotted path
into the vendor event's properties; several: the first present) or the fixed
value it takes. A touchpoint property a rule does not name is read from the
vendor property of the same name, so motwatch's own type names work as
event names with their own properties (a Segment track ``page_exit`` with
``url`` and ``dwell_ms``). A shop adds names (or overrides built-in ones)
in ``[mapping.<vendor>]`` of ``config/motwatch.toml``. The conversions that
do not go by name (a Segment page, a Snowplow page view) are described in
``FIXED`` and done by the adapters themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from motwatch.core.events import CHANNELS, EVENT_TYPES, PROPERTIES_OF_TYPE
from motwatch.settings import ConfigError, MappingRule, Settings, VendorMappings

VENDORS: tuple[str, ...] = ("segment", "snowplow", "ga4", "cloudevents")
TITLES: dict[str, str] = {
    "segment": "Segment / RudderStack",
    "snowplow": "Snowplow",
    "ga4": "Google Analytics 4 Measurement Protocol",
    "cloudevents": "CloudEvents 1.0",
}

# The channel a touchpoint type gets when its rule names none: its typical channel (EVENTS.md §1); a
# search is the web's, as the trackers these adapters take are on the shop's own site.
DEFAULT_CHANNEL: dict[str, str] = {
    "ad_impression": "ads",
    "ad_click": "ads",
    "email_open": "email",
    "email_click": "email",
    "social_engagement": "social",
    "search": "web",
    "page_view": "web",
    "link_click": "web",
    "page_exit": "web",
    "cart_add": "web",
    "checkout_started": "checkout",
    "checkout_step": "checkout",
    "payment_failed": "checkout",
    "order_completed": "checkout",
    "chat_started": "chat",
    "chat_message": "chat",
    "chat_ended": "chat",
    "call_started": "phone",
    "call_ended": "phone",
    "ticket_opened": "support",
    "ticket_resolved": "support",
    "delivery_received": "store",
    "onboarding_started": "web",
    "onboarding_completed": "web",
    "review_posted": "review",
    "survey_response": "survey",
    "identify": "web",
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One vendor event name as a touchpoint: its type, its channel, and where its properties come from.

    ``properties``: touchpoint property -> vendor paths, the first present
    wins; ``fixed``: touchpoint property -> the value it always takes.
    """

    type: str
    channel: str
    properties: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    fixed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def rule(type_: str, channel: str | None = None, fixed: dict[str, Any] | None = None, **sources: Any) -> Rule:
    """A rule written compactly: ``rule("cart_add", value=("value", "price"))``."""
    paths = {name: (src,) if isinstance(src, str) else tuple(src) for name, src in sources.items()}
    return Rule(
        type_, channel or DEFAULT_CHANNEL[type_], MappingProxyType(paths), MappingProxyType(fixed or {})
    )


def own_rule(name: str) -> Rule | None:
    """The rule of one of motwatch's own type names (its usual channel, properties by name), else None."""
    return rule(name) if name in PROPERTIES_OF_TYPE else None


_CART = ("cart_id", "checkout_id", "order_id")
_GA4_CART = ("cart_id", "transaction_id", "session_id")

BUILT_IN: dict[str, dict[str, Rule]] = {
    # Segment's e-commerce v2, Live Chat and Email specs (track event names).
    "segment": {
        "Product Viewed": rule("page_view", fixed={"page_category": "product"}),
        "Products Searched": rule("search", "web"),
        "Product Added": rule("cart_add", value=("value", "price")),
        "Checkout Started": rule("checkout_started", cart_id=_CART, value=("value", "revenue", "total")),
        "Checkout Step Viewed": rule("checkout_step", cart_id=_CART),
        "Checkout Step Completed": rule("checkout_step", cart_id=_CART),
        "Payment Info Entered": rule("checkout_step", fixed={"step": "payment"}, cart_id=_CART),
        "Order Completed": rule(
            "order_completed", cart_id=("cart_id", "checkout_id"), value=("value", "total", "revenue")
        ),
        "Product Reviewed": rule("review_posted", text="review_body"),
        "Live Chat Conversation Started": rule("chat_started", chat_id="conversation_id"),
        "Live Chat Message Sent": rule(
            "chat_message", fixed={"sender": "customer"}, chat_id="conversation_id", text="message_body"
        ),
        "Live Chat Message Received": rule(
            "chat_message", fixed={"sender": "agent"}, chat_id="conversation_id", text="message_body"
        ),
        "Live Chat Conversation Ended": rule("chat_ended", chat_id="conversation_id"),
        "Email Opened": rule("email_open", campaign="campaign_name"),
        "Email Link Clicked": rule("email_click", campaign="campaign_name", url="link_url"),
    },
    # Snowplow self-describing events by "<schema vendor>/<schema name>" (any version).
    "snowplow": {
        "com.snowplowanalytics.snowplow/link_click": rule("link_click", target_url="targetUrl"),
        "com.snowplowanalytics.snowplow/site_search": rule("search", query="terms.0"),
    },
    # GA4's recommended events (event name; properties from params).
    "ga4": {
        "page_view": rule("page_view", url="page_location", referrer="page_referrer"),
        "view_item": rule(
            "page_view",
            fixed={"page_category": "product"},
            url="page_location",
            referrer="page_referrer",
            product_id="items.0.item_id",
        ),
        "add_to_cart": rule("cart_add", product_id="items.0.item_id"),
        "begin_checkout": rule("checkout_started", cart_id=_GA4_CART),
        "add_shipping_info": rule("checkout_step", fixed={"step": "shipping"}, cart_id=_GA4_CART),
        "add_payment_info": rule("checkout_step", fixed={"step": "payment"}, cart_id=_GA4_CART),
        "purchase": rule("order_completed", order_id="transaction_id"),
        "search": rule("search", query="search_term", url="page_location"),
        "view_search_results": rule("search", query="search_term", url="page_location"),
        "login": rule("identify"),
    },
    # CloudEvents types are a producer's own: none built in (motwatch's own type names are accepted).
    "cloudevents": {},
}

# What each adapter converts without the table, for the Markdown and the README.
FIXED: dict[str, tuple[str, ...]] = {
    "segment": (
        "`page` → `page_view` (`url`, `referrer` from `properties`, else `context.page`; `http_status` when "
        "given); `screen` is not mapped",
        "`identify` with `userId` and `anonymousId` → `identify`; with one of them: no touchpoint",
        "`alias` → `identify` (`previousId` as the anonymous id, `userId` as the customer id)",
        "`track` → by event name, below; `group`: no touchpoint",
        "ids: `messageId` → `event_id` (absent: derived from the message), `userId` → `customer_id`, "
        "`anonymousId` → `anonymous_id`, `context.sessionId` → `session_id`",
        "time: `receivedAt - (sentAt - originalTimestamp)` when `sentAt` is given (`timestamp` when there "
        "is no `originalTimestamp`; `receivedAt`: the arrival unless the message has one), else "
        "`timestamp` (or `originalTimestamp`), else the arrival",
        "batch: each message on its own, the batch's `sentAt` and `context` applying to each (the "
        "message's own win)",
    ),
    "snowplow": (
        "`e=pv` → `page_view` (`url`, `refr` → `referrer`); `e=tr` → `order_completed` (`tr_id`, `tr_tt`, "
        "`tr_cu`)",
        "`e=pp` (page ping) and `e=ti` (transaction item): no touchpoint; a ping only says the page is "
        "still open, and one ping alone cannot tell a dwell time",
        "`e=ue` → by `<vendor>/<name>` of the event's schema, below; `e=se` → by `<se_ca>/<se_ac>`, "
        "else by `se_ac` when it is one of motwatch's type names (properties from `label`, `property`, "
        "`value`)",
        "ids: `eid` → `event_id`, `uid` → `customer_id`, `duid` (else the client_session context's "
        "`userId`) → `anonymous_id`, `sid` (else its `sessionId`) → `session_id`",
        "time: `ttm` when given, else `collector - (stm - dtm)` (Snowplow's derived timestamp), else the "
        "arrival",
    ),
    "ga4": (
        "ids: `user_id` → `customer_id`, `client_id` (or `app_instance_id`) → `anonymous_id`, "
        "`params.session_id` → `session_id`; `event_id` derived from the ids, the event's index, name, "
        "params and time (a resend of a request with `timestamp_micros` repeats it)",
        "time: the event's `timestamp_micros` (or its `params.timestamp_micros`), else the request's, "
        "else the arrival",
    ),
    "cloudevents": (
        "`type` → by the table, else motwatch's own type name: the whole type or its last dot-separated "
        "part (`com.example.touchpoint.page_view`)",
        "`data` carries the touchpoint's fields: `customer_id`, `anonymous_id`, `session_id`, `channel`, "
        "`properties`",
        "`event_id`: `<source>|<id>` (a digest of it when longer than 128 characters); time: `time`, else "
        "`data.occurred_at`, else the arrival",
    ),
}


def _from_setting(vendor: str, name: str, entry: MappingRule) -> Rule:
    where = f"mapping.{vendor}.{name!r}"
    if entry.type not in PROPERTIES_OF_TYPE:
        raise ConfigError(f"{where}.type: {entry.type!r} is not one of the {len(EVENT_TYPES)} event types")
    if entry.channel and entry.channel not in CHANNELS:
        raise ConfigError(f"{where}.channel: {entry.channel!r} is not one of {', '.join(CHANNELS)}")
    fields = PROPERTIES_OF_TYPE[entry.type].model_fields
    for prop in [*entry.properties, *entry.fixed]:
        if prop not in fields:
            known = ", ".join(fields) or "none"
            raise ConfigError(f"{where}: {entry.type} has no property {prop!r} (it has: {known})")
    return rule(entry.type, entry.channel or None, dict(entry.fixed), **entry.properties)


class Mappings:
    """The tables the adapters convert by: the built-in ones with a shop's entries over them."""

    def __init__(self, shop: Mapping[str, Mapping[str, Rule]] | None = None) -> None:
        self._tables: dict[str, dict[str, Rule]] = {
            vendor: {**BUILT_IN[vendor], **dict((shop or {}).get(vendor, {}))} for vendor in VENDORS
        }

    @classmethod
    def from_settings(cls, settings: Settings | VendorMappings) -> Mappings:
        """The tables with ``[mapping.<vendor>]`` over the built-in ones; a bad entry is a ConfigError."""
        config = settings.mapping if isinstance(settings, Settings) else settings
        shop: dict[str, dict[str, Rule]] = {}
        for vendor in VENDORS:
            entries: dict[str, MappingRule] = getattr(config, vendor)
            shop[vendor] = {name: _from_setting(vendor, name, entry) for name, entry in entries.items()}
        return cls(shop)

    def table(self, vendor: str) -> dict[str, Rule]:
        """The vendor's table, name -> rule (a copy)."""
        return dict(self._tables[vendor])

    def find(self, vendor: str, *names: str | None) -> Rule | None:
        """The rule of the first of ``names`` found in the vendor's table, None when none is there."""
        table = self._tables[vendor]
        for name in names:
            if name is not None and name in table:
                return table[name]
        return None


DEFAULT_MAPPINGS = Mappings()


def _sources(r: Rule) -> str:
    parts = [f"`{prop}` ← " + ", ".join(f"`{p}`" for p in paths) for prop, paths in r.properties.items()]
    parts += [f"`{prop}` = `{value}`" for prop, value in r.fixed.items()]
    return "; ".join(parts) or "by name"


def mapping_markdown(mappings: Mappings = DEFAULT_MAPPINGS) -> str:
    """The mapping as Markdown: per vendor, what is converted without the table, then the table itself."""
    lines = [
        "Any other touchpoint property is read from the vendor property of the same name; motwatch's "
        "own type names are accepted as event names. Add or override names in `[mapping.<vendor>]`.",
    ]
    for vendor in VENDORS:
        lines += ["", f"### {TITLES[vendor]}", ""]
        lines += [f"* {note}" for note in FIXED[vendor]]
        table = mappings.table(vendor)
        if not table:
            lines += ["", "No event names built in."]
            continue
        lines += ["", "| event | type | channel | properties |", "|---|---|---|---|"]
        for name, r in table.items():
            cells = [f"`{name}`", f"`{r.type}`", r.channel, _sources(r)]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
