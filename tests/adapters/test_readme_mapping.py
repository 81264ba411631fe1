"""The README's vendor mapping tables are ``mapping_markdown()``'s, and its ``[mapping.*]`` example loads.

When a built-in rule changes, regenerate the README's block between the
``<!-- mapping:begin -->`` and ``<!-- mapping:end -->`` markers with
``python -c "from motwatch.adapters import mapping_markdown; print(mapping_markdown(), end='')"``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from motwatch.adapters import VENDORS, Mappings, mapping_markdown
from motwatch.adapters.mapping import BUILT_IN
from motwatch.settings import VendorMappings

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- mapping:begin -->\n", "<!-- mapping:end -->"


def between(text: str, begin: str, end: str) -> str:
    """The text between the only ``begin`` marker and the ``end`` marker after it."""
    assert text.count(begin) == 1, f"README needs exactly one {begin.strip()!r}"
    after = text.split(begin, 1)[1]
    assert end in after, f"README has no {end!r} after {begin.strip()!r}"
    return after.split(end, 1)[0]


def test_the_readme_holds_the_generated_mapping_tables() -> None:
    block = between(README.read_text(encoding="utf-8"), BEGIN, END)
    assert block == mapping_markdown(), (
        "README's mapping tables differ from mapping_markdown(): regenerate the block (see this module's doc)"
    )


def test_every_built_in_event_name_is_in_the_readme() -> None:
    block = between(README.read_text(encoding="utf-8"), BEGIN, END)
    for vendor in VENDORS:
        for name, rule in BUILT_IN[vendor].items():
            assert f"| `{name}` | `{rule.type}` |" in block, (vendor, name)


def test_the_readme_example_of_a_shops_own_names_is_valid_configuration() -> None:
    section = README.read_text(encoding="utf-8").split("## Vendor events as touchpoints", 1)[1]
    [example] = re.findall(r"```toml\n(.*?)```", section.split(BEGIN, 1)[0], re.S)
    config = tomllib.loads(example)
    mappings = Mappings.from_settings(VendorMappings(**config["mapping"]))
    for vendor, entries in config["mapping"].items():
        for name, entry in entries.items():
            rule = mappings.find(vendor, name)
            assert rule is not None and rule.type == entry["type"], (vendor, name)
            assert (vendor, name) not in {(v, n) for v in VENDORS for n in BUILT_IN[v]}
