"""Settings: the TOML file, the environment over it, and one-line errors for bad values."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from motwatch.settings import ConfigError, KindSettings, MomentOfTruth, Settings, load_settings

CONFIG = Path(__file__).resolve().parents[1] / "config" / "motwatch.toml"


def test_the_config_file_is_the_defaults():
    assert load_settings(CONFIG, environ={}) == Settings()


def test_file_and_defaults_serialise_alike():
    # 1800 in the file and 1800 in the code must both be 1800.0: moment details carry them.
    assert load_settings(CONFIG, environ={}).model_dump_json() == Settings().model_dump_json()


def _missing_keys(model: BaseModel, table: dict[str, Any], prefix: str = "") -> list[str]:
    missing = []
    for name in type(model).model_fields:
        if name not in table:
            missing.append(prefix + name)
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            missing += _missing_keys(value, table[name], f"{prefix}{name}.")
    return missing


def test_the_config_file_spells_out_every_setting():
    # Equality alone would pass with keys left out (the defaults fill them in).
    table = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    assert _missing_keys(Settings(), table) == []
    assert set(table["owners"]) == set(Settings().owners)
    assert len(table["classification"]) == len(Settings().classification)


def test_without_a_file_the_defaults_apply(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config/motwatch.toml here
    assert load_settings(environ={}) == Settings()


def test_motwatch_config_in_the_given_environment_names_the_file(tmp_path):
    path = tmp_path / "other.toml"
    path.write_text('topic_prefix = "other."\n', encoding="utf-8")
    assert load_settings(environ={"MOTWATCH_CONFIG": str(path)}).topic_prefix == "other."


def test_environment_overrides_the_file(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('topic_prefix = "file."\npartitions = 8\n', encoding="utf-8")
    settings = load_settings(path, environ={"MOTWATCH_TOPIC_PREFIX": "staging."})
    assert settings.topic_prefix == "staging."
    assert settings.partitions == 8
    assert settings.moments_topic == "staging.moments"
    assert settings.deadletter_topic == "staging.deadletter"


def test_environment_reaches_into_nested_tables():
    settings = load_settings(
        CONFIG,
        environ={"MOTWATCH_KINDS__ABANDONED_CHECKOUT__WINDOW_S": "600", "MOTWATCH_OWNERS__WEB": "webshop"},
    )
    assert settings.kinds.abandoned_checkout.window_s == 600
    # The rest of the table keeps its values.
    assert settings.kinds.abandoned_checkout.severity == "high"
    assert settings.kinds.checkout_error.min_http_status == 500
    assert settings.owner_of("web") == "webshop"
    assert settings.owner_of("chat") == "support"


def test_environment_values_are_typed():
    settings = load_settings(
        CONFIG,
        environ={
            "MOTWATCH_PARTITIONS": "12",
            "MOTWATCH_KINDS__BROKEN_LINK__ENABLED": "false",
            "MOTWATCH_BROKER": "kafka-1:9092,kafka-2:9092",
            "MOTWATCH_CONFIG": "/nonexistent/ignored-when-a-path-is-given.toml",
            "OTHER_VARIABLE": "ignored",
        },
    )
    assert settings.partitions == 12
    assert settings.kinds.broken_link.enabled is False
    assert settings.broker == "kafka-1:9092,kafka-2:9092"


def test_explicit_overrides_win_over_environment():
    settings = load_settings(CONFIG, environ={"MOTWATCH_ALLOWED_LATENESS_S": "5"}, allowed_lateness_s=0)
    assert settings.allowed_lateness_s == 0


def test_moment_after_is_read_from_the_file():
    broken = load_settings(CONFIG, environ={}).kinds.broken_link
    assert broken.moment is MomentOfTruth.ZMOT
    assert broken.moment_after == {"first_product_view": "FMOT", "first_order": "SMOT"}


def test_classification_rules_keep_their_order():
    rules = load_settings(CONFIG, environ={}).classification
    assert rules[0].types == ["review_posted"]
    assert rules[-1].types == [] and rules[-1].moment is MomentOfTruth.ZMOT


@pytest.mark.parametrize(
    ("toml", "environ", "field"),
    [
        ("[kinds.abandoned_checkout]\nwindow_s = -5\n", {}, "kinds.abandoned_checkout.window_s"),
        ("[kinds.abandoned_checkout]\nwindow_s = 0\n", {}, "kinds.abandoned_checkout.window_s"),
        ("", {"MOTWATCH_KINDS__CHAT_UNANSWERED__SLA_S": "-1"}, "kinds.chat_unanswered.sla_s"),
        ('[kinds.broken_link]\nseverity = "urgent"\n', {}, "kinds.broken_link.severity"),
        ('[kinds.negative_review]\nmoment = "TMOT"\n', {}, "kinds.negative_review.moment"),
        ('[kinds.broken_link]\nmoment_after = { first_visit = "FMOT" }\n', {}, "moment_after"),
        ("[kinds.no_such_kind]\nenabled = true\n", {}, "kinds.no_such_kind"),
        ("windoe_s = 3\n", {}, "windoe_s"),
        ("", {"MOTWATCH_KINDS__ABANDONED_CHECKOUT__WINDOWS": "600"}, "kinds.abandoned_checkout.windows"),
        ("partitions = 0\n", {}, "partitions"),
        ('partitions = "four"\n', {}, "partitions"),
        ("allowed_lateness_s = -1\n", {}, "allowed_lateness_s"),
        ('topic_prefix = "my topics"\n', {}, "topic_prefix"),
        ('[[classification]]\nmoment = "FMOT"\nphase = "shopping"\n', {}, "classification.0.phase"),
        ('[[classification]]\nmoment = "FMOT"\n', {}, "classification.0.phase"),
        ("[owners]\nweb = 7\n", {}, "owners.web"),
    ],
)
def test_a_bad_value_is_rejected_with_the_field_named_in_one_line(tmp_path, toml, environ, field):
    path = tmp_path / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ)
    message = str(caught.value)
    assert field in message
    assert "\n" not in message
    assert str(path) in message


def test_bad_toml_is_rejected_in_one_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("broker = \n[kinds\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_settings(path, environ={})
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_every_kind_has_settings_with_severity_and_moment():
    kinds = Settings().kinds
    for name in type(kinds).model_fields:
        kind = getattr(kinds, name)
        assert isinstance(kind, KindSettings)
        assert kind.enabled


def test_settings_are_frozen():
    with pytest.raises(ValueError, match="frozen"):
        Settings().partitions = 3  # type: ignore[misc]


def test_topic_names_share_the_prefix():
    settings = Settings(topic_prefix="replay-7.")
    names = [
        settings.touchpoints_topic,
        settings.by_journey_topic,
        settings.moments_topic,
        settings.deadletter_topic,
        settings.worker_app_id,
    ]
    assert all(name.startswith("replay-7.") for name in names)
    assert len(set(names)) == len(names)


def test_unknown_channel_falls_back_to_the_default_owner():
    settings = Settings(owners={"web": "web"}, default_owner="cx")
    assert settings.owner_of("web") == "web"
    assert settings.owner_of("phone") == "cx"
