"""Settings: one TOML file, overridable by ``MOTWATCH_*`` environment variables.

Defaults live in the models below and ``config/motwatch.toml`` spells them out
for people to edit; a test keeps the two equal. A bad value is rejected at
start-up with the field named, in one line.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

Severity = Literal["critical", "high", "medium", "low"]


class MomentOfTruth(StrEnum):
    """The five moments of truth, in journey order."""

    LZMOT = "<ZMOT"
    ZMOT = "ZMOT"
    FMOT = "FMOT"
    SMOT = "SMOT"
    UMOT = "UMOT"


class Phase(StrEnum):
    """The customer's journey phase, in journey order."""

    AWARENESS = "awareness"
    ENGAGEMENT = "engagement"
    EVALUATION = "evaluation"
    PURCHASE = "purchase"
    POST_PURCHASE = "post_purchase"
    LOYALTY = "loyalty"


Milestone = Literal["first_product_view", "first_order"]


class ConfigError(Exception):
    """A configuration that cannot run; the message names the field."""


class _Strict(BaseModel):
    # validate_default: a default of 60 is the float 60.0, as the same value read from a file is.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class KindSettings(_Strict):
    """How one failure kind is reported."""

    severity: Severity
    moment: MomentOfTruth
    # Moment once a milestone was reached before the failing touchpoint; the
    # latest milestone reached wins (e.g. a broken link after the first order is SMOT).
    moment_after: dict[Milestone, MomentOfTruth] = Field(default_factory=dict)
    enabled: bool = True


class AbandonedCheckoutSettings(KindSettings):
    severity: Severity = "high"
    moment: MomentOfTruth = MomentOfTruth.FMOT
    window_s: float = Field(default=1800, gt=0)


class CheckoutErrorSettings(KindSettings):
    severity: Severity = "critical"
    moment: MomentOfTruth = MomentOfTruth.FMOT
    min_http_status: int = Field(default=500, ge=100, le=599)


class BrokenLinkSettings(KindSettings):
    severity: Severity = "high"
    moment: MomentOfTruth = MomentOfTruth.ZMOT
    moment_after: dict[Milestone, MomentOfTruth] = Field(
        default_factory=lambda: {
            "first_product_view": MomentOfTruth.FMOT,
            "first_order": MomentOfTruth.SMOT,
        }
    )
    min_http_status: int = Field(default=400, ge=100, le=599)


class FirstImpressionBounceSettings(KindSettings):
    severity: Severity = "medium"
    moment: MomentOfTruth = MomentOfTruth.FMOT
    min_dwell_s: float = Field(default=7, gt=0)


class ChatUnansweredSettings(KindSettings):
    severity: Severity = "high"
    moment: MomentOfTruth = MomentOfTruth.FMOT
    moment_after: dict[Milestone, MomentOfTruth] = Field(
        default_factory=lambda: {"first_order": MomentOfTruth.SMOT}
    )
    sla_s: float = Field(default=60, gt=0)


class CallUnansweredSettings(KindSettings):
    severity: Severity = "high"
    moment: MomentOfTruth = MomentOfTruth.FMOT
    moment_after: dict[Milestone, MomentOfTruth] = Field(
        default_factory=lambda: {"first_order": MomentOfTruth.SMOT}
    )
    sla_s: float = Field(default=120, gt=0)


class OnboardingStalledSettings(KindSettings):
    severity: Severity = "medium"
    moment: MomentOfTruth = MomentOfTruth.SMOT
    window_s: float = Field(default=7 * 86400, gt=0)
    # Also start the onboarding clock at the journey's first order.
    start_on_first_order: bool = False


class LowSatisfactionSettings(KindSettings):
    severity: Severity = "medium"
    moment: MomentOfTruth = MomentOfTruth.SMOT
    max_csat: float = 2
    max_nps: float = 6
    min_ces: float = 5


class NegativeReviewSettings(KindSettings):
    severity: Severity = "high"
    moment: MomentOfTruth = MomentOfTruth.UMOT
    max_rating: float = 2


class Kinds(_Strict):
    """Thresholds, severity and moment of every failure kind."""

    abandoned_checkout: AbandonedCheckoutSettings = AbandonedCheckoutSettings()
    checkout_error: CheckoutErrorSettings = CheckoutErrorSettings()
    broken_link: BrokenLinkSettings = BrokenLinkSettings()
    first_impression_bounce: FirstImpressionBounceSettings = FirstImpressionBounceSettings()
    chat_unanswered: ChatUnansweredSettings = ChatUnansweredSettings()
    call_unanswered: CallUnansweredSettings = CallUnansweredSettings()
    onboarding_stalled: OnboardingStalledSettings = OnboardingStalledSettings()
    low_satisfaction: LowSatisfactionSettings = LowSatisfactionSettings()
    negative_review: NegativeReviewSettings = NegativeReviewSettings()


class Limits(_Strict):
    """What one message and one journey's state may hold: a message over a limit is
    dead-lettered with that limit's reason code; a journey keeps its newest items within one."""

    # Bytes of a message value, checked before it is parsed (too_large).
    max_message_bytes: int = Field(default=65536, gt=0)
    # Members of an event's ``properties`` object (too_many_properties).
    max_properties: int = Field(default=64, gt=0)
    # Nesting of objects and arrays, the message's own object being depth 1 (too_deep).
    max_depth: int = Field(default=16, gt=0)
    # Characters of any string in a message, member names included (string_too_long).
    max_string_length: int = Field(default=16384, gt=0)
    # Entries a journey keeps in each of its checkouts, chats, onboardings and reported
    # moments: beyond it the oldest settled ones go first, then the oldest open ones.
    max_state_items: int = Field(default=256, gt=0)


class ClassificationRule(_Strict):
    """Maps a touchpoint, in the context of its journey, to a moment and a phase.

    Every condition given must hold; the first rule that matches wins.
    """

    types: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    page_categories: list[str] = Field(default_factory=list)
    after: Milestone | None = None
    before: Milestone | None = None
    moment: MomentOfTruth
    phase: Phase


def _rule(moment: str, phase: str, **when: Any) -> ClassificationRule:
    return ClassificationRule(moment=MomentOfTruth(moment), phase=Phase(phase), **when)


DEFAULT_RULES: tuple[ClassificationRule, ...] = (
    _rule("UMOT", "loyalty", types=["review_posted"]),
    _rule(
        "<ZMOT",
        "awareness",
        types=["ad_impression", "ad_click", "email_open", "email_click", "social_engagement"],
    ),
    _rule(
        "FMOT",
        "purchase",
        types=["cart_add", "checkout_started", "checkout_step", "payment_failed", "order_completed"],
    ),
    _rule(
        "SMOT",
        "post_purchase",
        types=["delivery_received", "onboarding_started", "onboarding_completed"],
    ),
    _rule("FMOT", "evaluation", types=["page_view", "page_exit"], page_categories=["product"]),
    _rule("SMOT", "post_purchase", after="first_order"),
    _rule(
        "FMOT",
        "evaluation",
        types=[
            "chat_started",
            "chat_message",
            "chat_ended",
            "call_started",
            "call_ended",
            "ticket_opened",
            "ticket_resolved",
        ],
    ),
    _rule("ZMOT", "evaluation", page_categories=["reviews"]),
    _rule("ZMOT", "engagement"),
)

DEFAULT_OWNERS: dict[str, str] = {
    "ads": "marketing",
    "email": "marketing",
    "social": "marketing",
    "search": "marketing",
    "web": "web",
    "chat": "support",
    "checkout": "ecommerce",
    "support": "support",
    "phone": "support",
    "store": "ecommerce",
    "review": "customer_success",
    "survey": "customer_success",
}


class MappingRule(_Strict):
    """A shop's own vendor event name as a touchpoint: its type, channel and where its properties come from.

    Checked against the event types and channels where the adapters read it
    (``motwatch/adapters/mapping.py``); ``channel`` empty: the type's usual channel.
    """

    type: str = Field(min_length=1)
    channel: str = ""
    # Touchpoint property <- the vendor's property (a dotted path), or a list of them: the first present.
    properties: dict[str, str | list[str]] = Field(default_factory=dict)
    # Touchpoint property = this value, whatever the vendor sent.
    fixed: dict[str, str | int | float | bool] = Field(default_factory=dict)


class VendorMappings(_Strict):
    """Per vendor, event names beyond the adapters' built-in table; an entry here wins over a built-in one."""

    segment: dict[str, MappingRule] = Field(default_factory=dict)
    snowplow: dict[str, MappingRule] = Field(default_factory=dict)
    ga4: dict[str, MappingRule] = Field(default_factory=dict)
    cloudevents: dict[str, MappingRule] = Field(default_factory=dict)


class TeamSettings(_Strict):
    """Where one owner team's alerts go (``[teams.<name>]``); every receiver is optional.

    Secrets are never written into generated files: Slack's webhook URL and
    PagerDuty's routing key are read by Alertmanager from the files named here.
    A team with nothing configured gets a receiver without integrations, whose
    alerts are dropped (python -m motwatch.monitoring writes grafana/alertmanager/).
    """

    webhook_url: str = ""
    email: str = ""
    # The mail relay and sender, needed when ``email`` is set.
    email_smarthost: str = ""
    email_from: str = ""
    slack_channel: str = ""
    slack_api_url_file: str = ""
    pagerduty_routing_key_file: str = ""

    @model_validator(mode="after")
    def _receivers_are_complete(self) -> TeamSettings:
        if self.email and not (self.email_smarthost and self.email_from):
            raise ValueError("email needs email_smarthost and email_from")
        if self.slack_channel and not self.slack_api_url_file:
            raise ValueError("slack_channel needs slack_api_url_file")
        return self


_KEY_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-")


class Settings(_Strict):
    """Everything a worker, a replay or an offline run is configured by."""

    broker: str = "127.0.0.1:9092"
    # How every client (the worker, every command) connects to Kafka. Empty means unset.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    # A file holding the password (as container secrets are mounted); read when a client connects.
    sasl_password_file: str = ""
    # The CA that signed the brokers' certificates (empty: the system's trusted CAs).
    ssl_cafile: str = ""
    # A client certificate and its key, for brokers that authenticate clients by TLS (mutual TLS).
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_check_hostname: bool = True
    topic_prefix: str = "motwatch."
    partitions: int = Field(default=4, ge=1, le=1024)
    # Replicas of each topic motwatch creates; 0: the cluster's own default.replication.factor.
    replication_factor: int = Field(default=0, ge=0)
    app_id: str = Field(default="motwatch", min_length=1)
    web_port: int = Field(default=6066, ge=0, le=65535)
    web_bind: str = "127.0.0.1"
    # Whether the worker's /journeys/{key} (one journey's live state, for motwatch explain) answers
    # requests from other machines; false: from a loopback address only.
    explain_from_network: bool = False
    # The HTTP collector (motwatch collect): where it listens, the write keys a sender must give
    # (MOTWATCH_WRITE_KEYS=k1,k2), and the web origins whose pages may read its answers ("*": any).
    collector_port: int = Field(default=8088, ge=0, le=65535)
    collector_bind: str = "127.0.0.1"
    write_keys: list[SecretStr] = Field(default_factory=list)
    cors_origins: list[str] = Field(default_factory=list)
    store: str = "memory://"
    # What the input topic (touchpoints) carries: motwatch's own touchpoint JSON, or a vendor's
    # messages as its pipeline writes them to Kafka, read through the collector's adapters
    # (motwatch/adapters: the same conversion, [mapping.<vendor>] included; CloudEvents in
    # structured, batch or binary mode, ce_ headers).
    input_format: Literal["motwatch", "segment", "snowplow", "ga4", "cloudevents"] = "motwatch"
    # Where the worker keeps local files (table stores): one folder per app id inside.
    data_dir: str = ".motwatch-data"
    # How long the dead-letter topic keeps a rejected message (its raw payload may hold personal
    # data): its retention.ms when motwatch creates it; a topic that exists is left as it is.
    deadletter_retention_days: float = Field(default=7, gt=0)
    # False: an operator creates the topics; the worker checks they are there, with the
    # partition counts it needs, and stops with the list of what is missing.
    auto_create_topics: bool = True
    allowed_lateness_s: float = Field(default=120, ge=0)
    # A touchpoint that happened further ahead of its arrival (the Kafka record's time) is
    # rejected (future_timestamp): one wrong clock must not move event time for everyone.
    max_future_skew_s: float = Field(default=300, ge=0)
    idle_advance_s: float = Field(default=30, ge=0)
    # How often the leader ticks every partition, and sources report their progress.
    tick_interval_s: float = Field(default=1.0, gt=0)
    progress_interval_s: float = Field(default=0.02, gt=0)
    # How often the worker's consumer refreshes its metadata, which finds partitions added
    # to the input topic.
    metadata_refresh_s: float = Field(default=30, gt=0)
    shutdown_grace_s: float = Field(default=20, gt=0)
    # How often the worker commits its input offsets: every commit_interval_s, and once
    # commit_every_events records were applied since the last. The journeys changed in between
    # are written once each, right before the commit; a worker that dies unannounced reads
    # again what it applied since its last commit. (Kafka Streams commits every 30 s.)
    commit_interval_s: float = Field(default=30, gt=0)
    commit_every_events: int = Field(default=200_000, ge=1)
    # Journeys changed since the last commit wait for it as objects up to state_cache_journeys;
    # past that, the batch packs them into their changelog bytes, kept unsent up to
    # state_cache_mib; past that, the batch writes them all at once (0 and 0: every batch writes).
    state_cache_journeys: int = Field(default=5000, ge=0)
    state_cache_mib: float = Field(default=64, ge=0)
    # This worker's stable name in its consumer group (static membership): restarted under
    # the same name, it takes its partitions back at once instead of after session_timeout_s.
    # Empty: a name made once and kept in the data dir (<data_dir>/<app>/instance-id).
    instance_id: str = ""
    # How long a worker that stopped answering (killed, frozen) keeps its partitions before
    # the others take them over (the consumer group's session timeout).
    session_timeout_s: float = Field(default=60, ge=6)
    journey_expiry_days: float = Field(default=30, gt=0)
    dedupe_max_ids: int = Field(default=512, ge=1)
    dedupe_window_s: float = Field(default=86400, gt=0)
    kinds: Kinds = Kinds()
    limits: Limits = Limits()
    owners: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_OWNERS))
    default_owner: str = "customer_experience"
    # Receivers of each owner team's alerts; teams not named here get none (see TeamSettings).
    teams: dict[str, TeamSettings] = Field(default_factory=dict)
    classification: list[ClassificationRule] = Field(default_factory=lambda: list(DEFAULT_RULES))
    mapping: VendorMappings = VendorMappings()

    @field_validator("write_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """A list, or one string of comma-separated items (as ``MOTWATCH_WRITE_KEYS=k1,k2`` gives)."""
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return [item.strip() for item in str(value).split(",") if item.strip()]
        return value

    @field_validator("write_keys")
    @classmethod
    def _keys_are_tokens(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            text = key.get_secret_value()
            if len(text) < 8 or not set(text) <= _KEY_CHARACTERS:
                raise ValueError("each write key needs 8 or more letters, digits, '.', '_', '~' or '-'")
        return keys

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_a_topic_name(cls, prefix: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(prefix) <= allowed:
            raise ValueError("topic_prefix may use only letters, digits, '.', '_' and '-'")
        return prefix

    @model_validator(mode="after")
    def _security_is_complete(self) -> Settings:
        if self.security_protocol.startswith("SASL_"):
            if not self.sasl_username:
                raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username")
            if not self.sasl_password.get_secret_value() and not self.sasl_password_file:
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs sasl_password or sasl_password_file"
                )
            if self.sasl_password_file:
                self.password()  # readable now, not at the first connection
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mutual TLS needs both)")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self

    def password(self) -> str:
        """The SASL password: ``sasl_password_file``'s (read each time) when set, else ``sasl_password``."""
        if not self.sasl_password_file:
            return self.sasl_password.get_secret_value()
        try:
            return Path(self.sasl_password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"sasl_password_file: cannot read {self.sasl_password_file}: {exc.strerror}"
            ) from None

    def topic(self, name: str) -> str:
        """A topic's full name under the configured prefix."""
        return f"{self.topic_prefix}{name}"

    @property
    def touchpoints_topic(self) -> str:
        return self.topic("touchpoints")

    @property
    def by_journey_topic(self) -> str:
        return self.topic("touchpoints-by-journey")

    @property
    def moments_topic(self) -> str:
        return self.topic("moments")

    @property
    def deadletter_topic(self) -> str:
        return self.topic("deadletter")

    @property
    def quarantine_topic(self) -> str:
        """Where stored state that cannot be read goes (its journey starts afresh)."""
        return self.topic("quarantine")

    @property
    def worker_app_id(self) -> str:
        """The Faust app id (and consumer group); internal topics are named after it."""
        return f"{self.topic_prefix}{self.app_id}"

    def changelog_topic(self, table: str) -> str:
        """The changelog topic of the worker's table ``table``, as Faust names it."""
        return f"{self.worker_app_id}-{table}-changelog"

    def owner_of(self, channel: str) -> str:
        return self.owners.get(channel, self.default_owner)


ENV_PREFIX = "MOTWATCH_"
_NOT_SETTINGS = {"MOTWATCH_CONFIG", "MOTWATCH_CACHE_DIR"}


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``MOTWATCH_TOPIC_PREFIX=x`` sets ``topic_prefix``; ``__`` descends into a table.

    ``MOTWATCH_KINDS__ABANDONED_CHECKOUT__WINDOW_S=600`` sets
    ``kinds.abandoned_checkout.window_s``. Values are parsed as TOML values when
    they parse (numbers, booleans) and kept as strings otherwise.
    """
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def default_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$MOTWATCH_CONFIG``, else ``config/motwatch.toml`` in the working directory."""
    env = (os.environ if environ is None else environ).get("MOTWATCH_CONFIG")
    if env:
        return Path(env)
    local = Path("config/motwatch.toml")
    return local if local.is_file() else None


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    extra = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{field}: {first['msg']}{extra}"


def load_settings(
    path: str | Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read the TOML file (if any), apply environment and explicit overrides, validate."""
    environ = dict(os.environ) if environ is None else environ
    data: dict[str, Any] = {}
    source = "defaults"
    file = Path(path) if path is not None else default_config_path(environ)
    if file is not None:
        source = str(file)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {file}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    data = _merge(data, _env_overrides(environ))
    data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"bad config ({source}): {_describe(exc)}") from None
