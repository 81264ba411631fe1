"""A real Alertmanager and the webhook receivers of owner teams, for tests.

``AlertmanagerProcess`` runs Debian's ``prometheus-alertmanager`` on a free
port of 127.0.0.1 (no cluster gossip), stopped by its PID. ``Receivers``
stands in for the teams' own webhook endpoints: one HTTP server whose path
names the team (``/checkout``), keeping every notification Alertmanager
posts, in order.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.workers import ServiceProcess, free_port


def answers(url: str) -> bool:
    """``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class AlertmanagerProcess(ServiceProcess):
    """Debian's prometheus-alertmanager with ``config``, on 127.0.0.1:<free port>."""

    name = "alertmanager"

    def __init__(self, workdir: Path, config: Path) -> None:
        super().__init__(workdir)
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> AlertmanagerProcess:
        self.spawn_installed(
            "prometheus-alertmanager",
            "alertmanager",
            [
                f"--config.file={self.config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.path={self.workdir / 'data'}",
                "--cluster.listen-address=",
            ],
        )
        self.wait_ready(lambda: answers(f"{self.url}/-/ready"), timeout, interval=0.2)
        return self

    def api(self, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/api/v2{path}", data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read()
        return json.loads(text) if text else None


class Receivers:
    """Webhook endpoints on one port: ``url(team)`` to configure, ``got(team)`` to read back."""

    def __init__(self) -> None:
        received: list[tuple[str, dict[str, Any]]] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    received.append((self.path.strip("/"), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._received = received
        self._lock = lock
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, team: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{team}"

    def got(self, team: str | None = None) -> list[dict[str, Any]]:
        """Notifications posted so far (to ``team``'s path, or to any with ``team=None``)."""
        with self._lock:
            return [body for path, body in self._received if team is None or path == team]

    def teams(self) -> set[str]:
        with self._lock:
            return {path for path, _ in self._received}

    def __enter__(self) -> Receivers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
