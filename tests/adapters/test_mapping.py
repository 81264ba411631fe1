"""The mapping tables: built-in rules hold to the contract, a shop's [mapping.<vendor>] extends them, the
Markdown lists them, and vendor values are brought to the contract's types."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from motwatch.adapters import segment
from motwatch.adapters.mapping import (
    BUILT_IN,
    DEFAULT_CHANNEL,
    DEFAULT_MAPPINGS,
    FIXED,
    VENDORS,
    Mappings,
    mapping_markdown,
    rule,
)
from motwatch.adapters.touchpoint import PROPERTY_KINDS, coerced
from motwatch.core.events import CHANNELS, EVENT_TYPES, PROPERTIES_OF_TYPE
from motwatch.settings import ConfigError, load_settings
from tests.adapters.examples import at, reasons, valid

NOW = at("2026-11-22T10:00:00Z")
CONFIG = Path(__file__).resolve().parents[2] / "config" / "motwatch.toml"


def test_every_type_has_a_usual_channel():
    assert set(DEFAULT_CHANNEL) == set(EVENT_TYPES)
    assert set(DEFAULT_CHANNEL.values()) <= set(CHANNELS)


@pytest.mark.parametrize("vendor", VENDORS)
def test_built_in_rules_name_only_what_the_contract_has(vendor):
    for name, r in BUILT_IN[vendor].items():
        fields = PROPERTIES_OF_TYPE[r.type].model_fields
        assert r.channel in CHANNELS, name
        assert set(r.properties) | set(r.fixed) <= set(fields), name
        assert all(paths for paths in r.properties.values()), name


def test_the_property_kinds_follow_the_event_models():
    assert set(PROPERTY_KINDS) == set(EVENT_TYPES)
    assert PROPERTY_KINDS["page_view"]["http_status"] == "integer"
    assert PROPERTY_KINDS["cart_add"]["value"] == "number"
    assert PROPERTY_KINDS["call_ended"]["answered"] == "boolean"
    assert PROPERTY_KINDS["chat_message"]["sender"] == "string"
    assert PROPERTY_KINDS["identify"] == {}


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("404", "integer", 404),
        ("404.0", "integer", 404),
        (404.0, "integer", 404),
        ("12.5", "number", 12.5),
        ("1e3", "number", 1000.0),
        (3, "string", "3"),
        (2.0, "string", "2"),
        (2.5, "string", "2.5"),
        ("TRUE", "boolean", True),
        ("false", "boolean", False),
        # Left for the validator to refuse, naming the property:
        ("12.5", "integer", 12.5),
        ("twelve", "number", "twelve"),
        ("1e999", "number", "1e999"),
        (True, "string", True),
        (True, "number", True),
        ("yes", "boolean", "yes"),
    ],
)
def test_vendor_values_are_brought_to_the_contract_type_when_nothing_is_lost(value, kind, expected):
    result = coerced(value, kind)
    assert result == expected and type(result) is type(expected)


def write_config(tmp_path, text):
    path = tmp_path / "motwatch.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, environ={})


def test_a_shop_adds_its_own_names_and_overrides_built_in_ones(tmp_path):
    settings = write_config(
        tmp_path,
        """
[mapping.segment."Subscription Started"]
type = "onboarding_started"
properties = { plan = ["plan_name", "plan.name"] }

[mapping.segment."Product Added"]
type = "cart_add"
channel = "checkout"
properties = { value = "total_price" }

[mapping.ga4.generate_lead]
type = "ticket_opened"
channel = "support"
properties = { ticket_id = "lead_id" }
fixed = {}
""",
    )
    mappings = Mappings.from_settings(settings)
    messages = [
        {"type": "track", "event": "Subscription Started", "messageId": "1", "userId": "u"},
        {"type": "track", "event": "Subscription Started", "messageId": "2", "userId": "u"},
        {"type": "track", "event": "Product Added", "messageId": "3", "userId": "u"},
        {"type": "track", "event": "Order Completed", "messageId": "4", "userId": "u"},
    ]
    messages[0]["properties"] = {"plan_name": "pro"}
    messages[1]["properties"] = {"plan": {"name": "basic"}}
    messages[2]["properties"] = {"total_price": 9, "price": 3}
    messages[3]["properties"] = {"order_id": "o"}
    made = valid(segment.convert(messages, NOW, mappings))
    assert [(e["type"], e["channel"], e["properties"]) for e in made] == [
        ("onboarding_started", "web", {"plan": "pro"}),
        ("onboarding_started", "web", {"plan": "basic"}),
        ("cart_add", "checkout", {"value": 9}),
        ("order_completed", "checkout", {"order_id": "o"}),  # built-in names still there
    ]
    # The defaults are untouched by a shop's table.
    assert DEFAULT_MAPPINGS.find("segment", "Subscription Started") is None
    assert reasons(segment.convert(messages[0], NOW)) == [("", "unmapped_event")]
    assert mappings.find("ga4", "generate_lead") == rule("ticket_opened", "support", ticket_id="lead_id")


def test_the_shipped_config_maps_nothing_beyond_the_built_in_tables():
    mappings = Mappings.from_settings(load_settings(CONFIG, environ={}))
    for vendor in VENDORS:
        assert mappings.table(vendor) == BUILT_IN[vendor]


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ('type = "purchase"', "mapping.segment.'X'.type"),
        ('type = "cart_add"\nchannel = "fax"', "mapping.segment.'X'.channel"),
        ('type = "cart_add"\nproperties = { cart = "c" }', "'cart'"),
        ('type = "checkout_step"\nfixed = { stage = "x" }', "'stage'"),
    ],
)
def test_a_bad_entry_stops_the_start_with_the_entry_named(tmp_path, entry, named):
    settings = write_config(tmp_path, f'[mapping.segment."X"]\n{entry}\n')
    with pytest.raises(ConfigError, match=re.escape("mapping.segment.'X'")) as raised:
        Mappings.from_settings(settings)
    assert named in str(raised.value)


def test_an_entry_of_the_wrong_shape_is_refused_by_the_settings(tmp_path):
    with pytest.raises(ConfigError, match=r"mapping\.segment"):
        write_config(tmp_path, '[mapping.segment."X"]\ntype = "cart_add"\nrename = {}\n')
    with pytest.raises(ConfigError, match="mapping"):
        write_config(tmp_path, '[mapping.mixpanel."X"]\ntype = "cart_add"\n')


def test_the_markdown_lists_every_name_of_every_table():
    text = mapping_markdown()
    for vendor in VENDORS:
        for note in FIXED[vendor]:
            assert note in text
        for name, r in BUILT_IN[vendor].items():
            assert f"| `{name}` | `{r.type}` | {r.channel} |" in text
    assert (
        "| `Payment Info Entered` | `checkout_step` | checkout | `cart_id` ← `cart_id`, `checkout_id`" in text
    )
    assert "`step` = `payment`" in text


def test_the_markdown_shows_a_shops_names_and_escapes_pipes():
    mappings = Mappings({"cloudevents": {"a|b": rule("order_completed", order_id="order.id")}})
    text = mapping_markdown(mappings)
    assert "| `a\\|b` | `order_completed` | checkout | `order_id` ← `order.id` |" in text
    assert "No event names built in." not in text
    assert "No event names built in." in mapping_markdown()
