"""Screenshot of the demo shop's checkout page, for the README (docs/shop-checkout.png).

Serves ``tracker/`` as the collector serves it with ``--shop`` (the tracker
at /motwatch.js, the shop under /shop/), with no broker behind it: the
tracker's batches are answered 404 and dropped, which a screenshot does not
show. Headless Chromium (tests/browser.py) loads checkout.html and captures
the viewport. Usage:

    .venv/bin/python scripts/shop_screenshot.py [docs/shop-checkout.png]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from motwatch.collector.static import Static, tracker_dir  # noqa: E402
from tests.browser import Chromium  # noqa: E402


async def capture(out: Path) -> int:
    """Writes the PNG to ``out``; returns its size in bytes."""
    static = Static(tracker_dir(), shop=True)
    app = web.Application()
    app.router.add_get("/motwatch.js", static.serve_script)
    app.router.add_get("/shop/{name}", static.serve_page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with tempfile.TemporaryDirectory() as work:
            async with Chromium(Path(work), width=900, height=640) as browser:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{port}/shop/checkout.html")
                await page.wait_for("document.querySelector('.steps li.current') !== null")
                png = await page.screenshot(out)
    finally:
        await runner.cleanup()
    return len(png)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(ROOT / "docs" / "shop-checkout.png"))
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    size = asyncio.run(capture(out))
    print(f"{out}: {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
