"""The tracker and the demo shop install with the package, where the collector looks for them."""

from __future__ import annotations

import tomllib
from pathlib import Path

from motwatch.collector import static

REPO = Path(__file__).resolve().parents[2]
TRACKER = "motwatch.collector.tracker"


def test_the_tracker_and_the_shop_are_package_data_of_the_package_the_collector_reads():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folder = REPO / setuptools["package-dir"][TRACKER]
    assert {TRACKER, f"{TRACKER}.shop"} <= set(setuptools["packages"])
    data = setuptools["package-data"]
    installed = {p for pattern in data[TRACKER] for p in folder.glob(pattern)}
    installed |= {p for pattern in data[f"{TRACKER}.shop"] for p in (folder / "shop").glob(pattern)}
    shop = {p for p in (folder / "shop").iterdir() if p.suffix in (".html", ".css")}
    assert folder / "motwatch.js" in installed
    assert shop and shop <= installed
    # Installed, the package's folder is beside the collector's modules: the first place looked in.
    assert static.PLACES[0] == Path(static.__file__).resolve().parent / TRACKER.rsplit(".", 1)[1]


def test_in_a_checkout_the_tracker_is_found_in_the_repository():
    assert static.tracker_dir() in static.PLACES
    assert (static.tracker_dir() / "motwatch.js").read_bytes() == (
        REPO / "tracker" / "motwatch.js"
    ).read_bytes()
