"""Hostile message values for the ingest path, and an oracle of the limits that shares no code with it.

``FAMILIES`` draws message values (bytes) of one of these kinds, most of
them made from a valid event of the contract (``tests/data/examples.jsonl``,
one of every type): random bytes; nesting deep and very deep; messages and
strings at, just over and far over the limits; numbers JSON cannot carry or
Python makes big (``1e400``, ``-0``, ``2**70``, 5,000 digits), ``NaN`` and
``Infinity``; duplicate member names; lone surrogates, escaped and as raw
bytes, other invalid UTF-8, NUL bytes; timestamps at the ends of the
calendar (year 1, 9999-12-31T23:59:59.999999Z, year 10000, epoch numbers);
and every field of a valid event, top level or property, given a value of
another type (or left out).

``within_limits`` says whether a message keeps the limits by the standard
library's JSON parser and a walk of its own, not by ``motwatch.core.validation``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st

from motwatch.settings import Limits

EXAMPLES = Path(__file__).resolve().parent / "data" / "examples.jsonl"
TEMPLATES: list[dict[str, Any]] = [
    orjson.loads(line) for line in EXAMPLES.read_bytes().splitlines() if line.strip()
]
LIMITS = Limits()

# A value a message is built around, replaced by raw bytes once serialised.
_HOLE = "@@hole@@"
_HOLE_BYTES = orjson.dumps(_HOLE)


def _with_hole(body: dict[str, Any], token: bytes) -> bytes:
    raw = orjson.dumps(body)
    assert raw.count(_HOLE_BYTES) == 1
    return raw.replace(_HOLE_BYTES, token)


def _nest(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def _string(length: int, char: bytes = b"x") -> bytes:
    return b'"' + char * length + b'"'


def _sized(template: dict[str, Any], size: int, fill: bytes = b"x") -> bytes:
    """The template with an unknown property padded so that the message is ``size`` bytes (or just over)."""
    base = _with_hole({**template, "properties": {**template.get("properties", {}), "pad": _HOLE}}, b'""')
    pad = max(0, (size - len(base)) // len(fill))
    return base.replace(b'"pad":""', b'"pad":"' + fill * pad + b'"')


NUMBERS: list[bytes] = [
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"-0",
    b"-0.0",
    b"0",
    b"0.0",
    str(2**70).encode(),
    str(-(2**70)).encode(),
    str(2**64).encode(),
    str(-(2**63) - 1).encode(),
    b"9" * 4300,
    b"9" * 5000,
    b"0." + b"0" * 3000 + b"1",
    b"1E+2",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"nan",
    b"inf",
    b"01",
    b"+1",
    b".5",
    b"1.",
    b"0x10",
    b"1" * 20,
]
STRINGS: list[bytes] = [
    b'"\\ud800"',
    b'"\\udc00"',
    b'"\\udc00\\ud800"',
    b'"\\ud800\\u0041"',
    b'"\\ud83d\\ude00"',
    b'"\xed\xa0\x80"',  # a surrogate encoded as UTF-8: not UTF-8
    b'"\xf0\x9f\x98"',  # cut short
    b'"\xc0\xaf"',  # overlong
    b'"\xff\xfe"',
    b'"a\x00b"',  # a raw NUL: a control character
    b'"a\\u0000b"',
    b'"\\u0000"',
    b'"\x1f"',
    b'"\\uffff"',
    b'"\\\\"',
    '"😀 stolní lampa Đèn دو"'.encode(),
    b'"\\x41"',
    b'"\\u12"',
    b'"',
    b"'single'",
    b'""',
]
OTHERS: list[bytes] = [b"true", b"false", b"null", b"[]", b"{}", b"[1]", b'{"a":1}', b"", b"[", b"}"]
SCALAR_TOKENS = NUMBERS + STRINGS + OTHERS

# Values of every JSON type, for a field of another one.
WRONG_VALUES: list[Any] = [None, True, False, 0, -1, 1.5, 2**70, "", "x", "0", [], [1], {}, {"a": 1}]

TIMESTAMPS: list[Any] = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00.000Z",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:59:59+01:00",
    "0001-01-01T00:00:00-23:59",
    "0000-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999Z",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.9999999999Z",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59+23:59",
    "10000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-03-02T24:00:00Z",
    "2026-03-02T23:59:60Z",
    "2026-03-02T14:00:00+24:00",
    "2026-03-02T14:00:00",
    "2026-03-02",
    "2026-03-02t14:00:00z",
    "2026-03-02 14:00:00+01:00",
    "2026-03-02T14:00:00.5+00:00",
    "2026-03-02T14:00:00Z\n",
    "",
    -1,
    0,
    -62135596800000,
    1772460000000,
    253402300800000,
    2**63,
    10**20,
    1.5e18,
    "-1",
    "1772460000",
]

TOP_FIELDS = ["event_id", "occurred_at", "customer_id", "anonymous_id", "session_id", "channel", "type"]


def _fields(template: dict[str, Any]) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = [(name,) for name in TOP_FIELDS]
    paths += [("properties",), ("schema_version",)]
    paths += [("properties", name) for name in template.get("properties", {})]
    return paths


def _replaced(template: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body = {**template, "properties": dict(template.get("properties", {}))}
    if len(path) == 1:
        body[path[0]] = value
    else:
        body["properties"][path[1]] = value
    return body


def _dropped(template: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    body = {**template, "properties": dict(template.get("properties", {}))}
    (body if len(path) == 1 else body["properties"]).pop(path[-1], None)
    return body


templates = st.sampled_from(TEMPLATES)


@st.composite
def wrong_types(draw: st.DrawFn) -> list[bytes]:
    """A valid event with one field (top level or property) given a value of each other type, or left out."""
    template = draw(templates)
    path = draw(st.sampled_from(_fields(template)))
    # json, not orjson: orjson refuses 2**70.
    out = [json.dumps(_replaced(template, path, value)).encode() for value in WRONG_VALUES]
    return [*out, orjson.dumps(_dropped(template, path))]


@st.composite
def odd_tokens(draw: st.DrawFn) -> list[bytes]:
    """A valid event with one field, or a new member, given each number, string or literal that
    JSON cannot carry or Python makes odd."""
    template = draw(templates)
    path = draw(st.sampled_from([*_fields(template), ("properties", "extra"), ("extra",)]))
    body = _replaced(template, path, _HOLE)
    return [_with_hole(body, token) for token in SCALAR_TOKENS]


@st.composite
def timestamps(draw: st.DrawFn) -> list[bytes]:
    """A valid event at each time at the ends of the calendar, or in a form that is no time."""
    template = draw(templates)
    return [json.dumps({**template, "occurred_at": at}, ensure_ascii=False).encode() for at in TIMESTAMPS]


@st.composite
def duplicate_keys(draw: st.DrawFn) -> list[bytes]:
    """A valid event with one member given twice, the other value first and last."""
    template = draw(templates)
    name = draw(st.sampled_from([*TOP_FIELDS, "properties"])).encode()
    raw = orjson.dumps(template)
    out = []
    for other in [*SCALAR_TOKENS[:8], b'"web"', b'"teleport"', b'{"url":"u"}', b"{}"]:
        member = b'"' + name + b'":' + other
        out += [b"{" + member + b"," + raw[1:], raw[:-1] + b"," + member + b"}"]
    return out


@st.composite
def deep(draw: st.DrawFn) -> list[bytes]:
    """Nesting at the limit, over it, far over it and deeper than any parser goes; or never closed."""
    kind = draw(st.sampled_from(["array", "object"]))
    where = draw(st.sampled_from(["whole", "property", "top", "unbalanced"]))
    template = draw(templates)
    out = []
    for depth in (LIMITS.max_depth - 2, LIMITS.max_depth - 1, LIMITS.max_depth, 100, 199, 200, 1000, 30000):
        nested = _nest(depth, kind)
        if where == "whole":
            out.append(nested)
        elif where == "unbalanced":
            out.append(b"[" * depth)
        else:
            path = ("properties", "nested") if where == "property" else ("nested",)
            out.append(_with_hole(_replaced(template, path, _HOLE), nested))
    return out


@st.composite
def huge(draw: st.DrawFn) -> list[bytes]:
    """Messages at the size limit, a byte over and far over; strings, member names and properties
    at their limits, one over and far over; many members elsewhere, long arrays."""
    template = draw(templates)
    kind = draw(st.sampled_from(["bytes", "string", "name", "properties", "members"]))
    if kind == "bytes":
        fill = draw(st.sampled_from([b"x", b"\\u0000", b"\\\\", "é".encode()]))
        sizes = (LIMITS.max_message_bytes, LIMITS.max_message_bytes + 1, 300_000)
        return [_sized(template, size, fill) for size in sizes]
    if kind == "string":
        path = draw(st.sampled_from([*_fields(template)[:7], ("properties", "extra"), ("properties", "url")]))
        char = draw(st.sampled_from([b"x", "ř".encode(), b"\\u0041"]))
        body = _replaced(template, path, _HOLE)
        lengths = (LIMITS.max_string_length, LIMITS.max_string_length + 1, 2 * LIMITS.max_string_length)
        return [_with_hole(body, _string(length, char)) for length in lengths]
    if kind == "name":
        props = template.get("properties", {})
        lengths = (LIMITS.max_string_length, LIMITS.max_string_length + 1)
        return [orjson.dumps({**template, "properties": {**props, "k" * length: 1}}) for length in lengths]
    if kind == "properties":
        out = []
        for count in (LIMITS.max_properties, LIMITS.max_properties + 1, 5000):
            props = {f"p{i}": i for i in range(count)} | template.get("properties", {})
            out.append(orjson.dumps({**template, "properties": dict(list(props.items())[-count:])}))
        return out
    body = _replaced(template, ("properties", "list"), _HOLE)
    return [
        orjson.dumps({**template, **{f"top{i}": i for i in range(500)}}),
        _with_hole(body, b"[" + b"0," * 3000 + b"0]"),
    ]


@st.composite
def noise(draw: st.DrawFn) -> list[bytes]:
    """A valid event with bytes flipped, cut or inserted."""
    raw = bytearray(orjson.dumps(draw(templates)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            raw[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del raw[at:]
            if not raw:
                break
        else:
            raw[at:at] = draw(st.binary(min_size=1, max_size=4))
    return [bytes(raw)]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def random_json(draw: st.DrawFn) -> list[bytes]:
    """Any JSON, lone surrogates escaped in its strings; and a valid event's properties made of it."""
    value = draw(json_values)
    template = draw(templates)
    props = value if isinstance(value, dict) else {"x": value}
    return [json.dumps(value).encode(), json.dumps({**template, "properties": props}).encode()]


@st.composite
def random_bytes(draw: st.DrawFn) -> list[bytes]:
    return [draw(st.binary(max_size=200))]


@st.composite
def valid(draw: st.DrawFn) -> list[bytes]:
    return [orjson.dumps(draw(templates))]


# Each draw is a family of messages: one recipe (a template, a field, a kind) with every value
# of its kind, so that ten thousand messages take a few hundred draws.
FAMILIES: st.SearchStrategy[list[bytes]] = st.one_of(
    random_bytes(),
    valid(),
    wrong_types(),
    odd_tokens(),
    timestamps(),
    duplicate_keys(),
    deep(),
    huge(),
    noise(),
    random_json(),
)


def within_limits(raw: bytes, limits: Limits) -> bool:
    """Whether a message keeps every limit, judged by the standard library's parser."""
    if len(raw) > limits.max_message_bytes:
        return False

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    value = json.loads(raw.decode("utf-8"), parse_constant=no_constant)
    props = value.get("properties") if isinstance(value, dict) else None
    if isinstance(props, dict) and len(props) > limits.max_properties:
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if len(node) > limits.max_string_length:
                return False
        elif isinstance(node, dict | list):
            if depth > limits.max_depth:
                return False
            if isinstance(node, dict):
                if any(len(name) > limits.max_string_length for name in node):
                    return False
                stack.extend((v, depth + 1) for v in node.values())
            else:
                stack.extend((v, depth + 1) for v in node)
    return True
