"""Touchpoint events: the input contract (EVENTS.md §1) as pydantic models.

One model per event type, chosen by the ``type`` field, so a wrong property is
named precisely and the JSON Schema of the contract is generated, not written.
Validation is strict: a string where a number belongs is a bad property, not
something to guess at.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, Union

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

Channel = Literal[
    "ads",
    "email",
    "social",
    "search",
    "web",
    "chat",
    "checkout",
    "support",
    "phone",
    "store",
    "review",
    "survey",
]
CHANNELS: tuple[str, ...] = Channel.__args__  # type: ignore[attr-defined]

PageCategory = Literal["home", "content", "reviews", "product", "cart", "checkout", "account", "other"]

# RFC 3339 date-time: the offset is required; "t"/"z" and a space for "T" are allowed (§5.6).
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII)

# Event times in ms since the epoch that UTC can write: 0001-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z.
FIRST_MS = -62_135_596_800_000
LAST_MS = 253_402_300_799_999

T = TypeVar("T")


class cached_property(Generic[T]):
    """``functools.cached_property`` without the lock Python 3.11 takes on every first access.

    Read once or twice per event on the hot path; the value lands in the
    instance's ``__dict__``, so later reads do not come here at all.
    """

    def __init__(self, func: Any) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value

    def prime(self, instance: Any, value: T) -> None:
        """Set the value already known, so the first read does not compute it."""
        instance.__dict__[self.name] = value


Id = Annotated[str, Field(min_length=1, max_length=512)]
HttpStatus = Annotated[int, Field(ge=100, le=599)]
NonNegative = Annotated[float, Field(ge=0)]


class Properties(BaseModel):
    """Type-specific fields; unknown ones are kept in the raw event and ignored here.

    Numbers are finite: JSON has no infinity, and one (``1e400``) would be
    written back into journey state as null.
    """

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)


class CampaignProperties(Properties):
    campaign: str | None = None
    url: str | None = None


class SocialProperties(Properties):
    platform: str | None = None
    action: str | None = None


class SearchProperties(Properties):
    query: str | None = None
    url: str | None = None


class PageViewProperties(Properties):
    url: str
    http_status: HttpStatus = 200
    page_category: PageCategory | None = None
    product_id: Id | None = None
    referrer: str | None = None
    load_ms: NonNegative | None = None


class LinkClickProperties(Properties):
    url: str
    target_url: str
    http_status: HttpStatus | None = None


class PageExitProperties(Properties):
    url: str
    dwell_ms: NonNegative
    page_category: PageCategory | None = None
    product_id: Id | None = None


class CartAddProperties(Properties):
    product_id: Id | None = None
    value: NonNegative | None = None
    currency: str | None = None


class CheckoutStartedProperties(Properties):
    cart_id: Id
    value: NonNegative | None = None
    currency: str | None = None


class CheckoutStepProperties(Properties):
    cart_id: Id
    step: str
    http_status: HttpStatus | None = None


class PaymentFailedProperties(Properties):
    cart_id: Id
    reason: str | None = None


class OrderCompletedProperties(Properties):
    order_id: Id
    cart_id: Id | None = None
    value: NonNegative | None = None
    currency: str | None = None


class ChatStartedProperties(Properties):
    chat_id: Id
    topic: str | None = None


class ChatMessageProperties(Properties):
    chat_id: Id
    sender: Literal["customer", "agent", "bot"]
    text: str | None = None


class ChatEndedProperties(Properties):
    chat_id: Id
    ended_by: Literal["customer", "agent", "timeout"] | None = None


class CallProperties(Properties):
    call_id: Id
    answered: bool | None = None
    wait_s: NonNegative | None = None


class TicketProperties(Properties):
    ticket_id: Id


class DeliveryProperties(Properties):
    order_id: Id | None = None


class OnboardingProperties(Properties):
    plan: str | None = None


class ReviewProperties(Properties):
    rating: Annotated[float, Field(ge=1, le=5)]
    text: str | None = None
    platform: str | None = None
    url: str | None = None


SURVEY_SCALES: dict[str, tuple[float, float]] = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}


class SurveyProperties(Properties):
    metric: Literal["csat", "nps", "ces"]
    score: float
    text: str | None = None

    @model_validator(mode="after")
    def _score_on_its_scale(self) -> SurveyProperties:
        low, high = SURVEY_SCALES[self.metric]
        if not low <= self.score <= high:
            raise PydanticCustomError(
                "score_out_of_scale",
                "score {score} is outside the {metric} scale {low}–{high}",
                {"score": self.score, "metric": self.metric, "low": low, "high": high},
            )
        return self


class IdentifyProperties(Properties):
    pass


PROPERTIES_OF_TYPE: dict[str, type[Properties]] = {
    "ad_impression": CampaignProperties,
    "ad_click": CampaignProperties,
    "email_open": CampaignProperties,
    "email_click": CampaignProperties,
    "social_engagement": SocialProperties,
    "search": SearchProperties,
    "page_view": PageViewProperties,
    "link_click": LinkClickProperties,
    "page_exit": PageExitProperties,
    "cart_add": CartAddProperties,
    "checkout_started": CheckoutStartedProperties,
    "checkout_step": CheckoutStepProperties,
    "payment_failed": PaymentFailedProperties,
    "order_completed": OrderCompletedProperties,
    "chat_started": ChatStartedProperties,
    "chat_message": ChatMessageProperties,
    "chat_ended": ChatEndedProperties,
    "call_started": CallProperties,
    "call_ended": CallProperties,
    "ticket_opened": TicketProperties,
    "ticket_resolved": TicketProperties,
    "delivery_received": DeliveryProperties,
    "onboarding_started": OnboardingProperties,
    "onboarding_completed": OnboardingProperties,
    "review_posted": ReviewProperties,
    "survey_response": SurveyProperties,
    "identify": IdentifyProperties,
}
EVENT_TYPES: tuple[str, ...] = tuple(PROPERTIES_OF_TYPE)


class Touchpoint(BaseModel):
    """Fields every touchpoint has; the subclass per type adds ``type`` and ``properties``."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, ignored_types=(cached_property,))

    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    # Not strict: the validator below lets only RFC 3339 strings through to be parsed.
    occurred_at: Annotated[AwareDatetime, Field(strict=False)]
    customer_id: Id | None = None
    anonymous_id: Id | None = None
    session_id: str | None = None
    channel: Channel
    type: str
    properties: Properties
    schema_version: Literal[1] = 1

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        # pydantic alone also takes Unix times (1700000000, "1700000000") and bare dates.
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str):
            raise PydanticCustomError("rfc3339", "expected an RFC 3339 date-time string")
        if not RFC3339.match(value):
            shown = repr(value if len(value) <= 40 else value[:40] + "…")
            raise PydanticCustomError("rfc3339", "{value} is not an RFC 3339 date-time", {"value": shown})
        return value

    @field_validator("occurred_at", mode="after")
    @classmethod
    def _in_the_calendar(cls, value: datetime) -> datetime:
        # An offset can move a date out of years 1–9999, where no time can be written back.
        ms = round(value.timestamp() * 1000)
        if not FIRST_MS <= ms <= LAST_MS:
            raise PydanticCustomError("rfc3339", "the time in UTC lies outside the years 0001–9999")
        return value

    @model_validator(mode="after")
    def _has_a_journey(self) -> Touchpoint:
        if self.customer_id is None and self.anonymous_id is None:
            raise PydanticCustomError("missing_journey", "one of customer_id or anonymous_id is required")
        if self.type == "identify" and (self.customer_id is None or self.anonymous_id is None):
            raise PydanticCustomError("missing_journey", "identify needs both customer_id and anonymous_id")
        return self

    @cached_property
    def occurred_ms(self) -> int:
        """Event time in milliseconds since the epoch: the clock every timeout runs on."""
        return round(self.occurred_at.timestamp() * 1000)

    @cached_property
    def stored(self) -> dict[str, Any]:
        """The event as journey state stores it (JSON types, no nulls).

        Made once: a held event is written with its journey's state on every
        change of it (the table's changelog). Read only; never change it.
        """
        return self.model_dump(mode="json", exclude_none=True)

    @cached_property
    def journey_key(self) -> str:
        """The customer when known, else the anonymous visitor."""
        return self.customer_id if self.customer_id is not None else self.anonymous_id  # type: ignore[return-value]


def _model_for(type_name: str, props: type[Properties]) -> type[Touchpoint]:
    name = "".join(part.title() for part in type_name.split("_")) + "Event"
    model: type[Touchpoint] = create_model(  # type: ignore[call-overload]
        name,
        __base__=Touchpoint,
        __module__=__name__,
        type=(Literal[type_name], ...),
        properties=(props, Field(default_factory=dict, validate_default=True)),
    )
    return model


EVENT_MODELS: dict[str, type[Touchpoint]] = {
    t: _model_for(t, props) for t, props in PROPERTIES_OF_TYPE.items()
}

AnyTouchpoint = Annotated[
    Union[tuple(EVENT_MODELS.values())],  # type: ignore[valid-type]  # noqa: UP007
    Field(discriminator="type"),
]
TOUCHPOINT_ADAPTER: TypeAdapter[Touchpoint] = TypeAdapter(AnyTouchpoint)


def touchpoint_from_stored(stored: dict[str, Any]) -> Touchpoint:
    """A held event read back from journey state (its ``stored`` form).

    The form it came from is kept as its ``stored``: a held event is written
    again with its journey on every change, and dumping it anew would cost
    more than reading it did.
    """
    event = TOUCHPOINT_ADAPTER.validate_json(orjson.dumps(stored))
    Touchpoint.stored.prime(event, stored)
    return event
