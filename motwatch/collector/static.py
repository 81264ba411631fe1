"""The browser tracker (``GET /motwatch.js``) and, with ``--shop``, the demo shop under ``/shop/``.

Both come from the repository's ``tracker/`` folder, which installs as
package data inside this package (``motwatch/collector/tracker``,
pyproject's ``package-dir``); in a checkout they are read where they are.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

_HERE = Path(__file__).resolve().parent
# Installed: package data beside this module; in a checkout: the repository's tracker/.
PLACES = (_HERE / "tracker", _HERE.parents[1] / "tracker")
TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


def tracker_dir() -> Path | None:
    """The folder holding motwatch.js (and shop/), installed or in a checkout; None if neither has it."""
    for place in PLACES:
        if (place / "motwatch.js").is_file():
            return place
    return None


class Static:
    """The tracker's bytes, and the shop's files by name (read once, at start)."""

    def __init__(self, folder: Path | None, *, shop: bool) -> None:
        self.script = (folder / "motwatch.js").read_bytes() if folder is not None else None
        self.pages: dict[str, tuple[bytes, str]] = {}
        if shop and folder is not None and (folder / "shop").is_dir():
            for path in sorted((folder / "shop").iterdir()):
                if path.is_file() and path.suffix in TYPES:
                    self.pages[path.name] = (path.read_bytes(), TYPES[path.suffix])
        self.shop = shop

    async def serve_script(self, request: web.Request) -> web.StreamResponse:
        if self.script is None:
            return web.Response(status=404, text="motwatch.js is not installed")
        return web.Response(
            body=self.script,
            content_type="text/javascript",
            charset="utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    def not_found(self) -> web.Response:
        """The shop's own 404 page, status 404 (plain text without the shop)."""
        page = self.pages.get("404.html")
        if page is None:
            return web.Response(status=404, text="not found")
        return _page(page, status=404)

    async def serve_page(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name") or "index.html"
        page = self.pages.get(name)
        if page is None:
            return self.not_found()
        return _page(page)

    async def to_shop(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "/shop/"})


def _page(page: tuple[bytes, str], status: int = 200) -> web.Response:
    body, media = page
    charset = "utf-8" if media.startswith("text/") else None
    return web.Response(status=status, body=body, content_type=media, charset=charset)
