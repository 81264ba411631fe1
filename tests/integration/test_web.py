"""The worker's web server: /metrics and /health on 127.0.0.1, nothing of Faust's own pages.

A real worker runs against the session's broker. Faust's web server would
serve its tables' contents (journeys: customer state), the cluster's routing,
statistics and the service graph; every path of its blueprints, read from
Faust's own code (``faust/web/base.py`` lists them), must answer 404, and the
worker must listen on one socket only, on the loopback. ``web_port = 0`` picks a
free port, which the worker logs and writes where ``motwatch status`` finds it.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from faust.web import base as faust_web
from mode.utils.imports import symbol_by_name

from motwatch.listening import listen_socket
from motwatch.settings import ConfigError, Settings
from motwatch.streams.app import TABLES
from motwatch.streams.metrics import Metrics
from motwatch.streams.web import WebServer, url_file
from tests.workers import WorkerProcess, motwatch_env, run_cli

pytestmark = pytest.mark.integration

SERVING = re.compile(r"serving (http://\S+/metrics)")


def get(url: str) -> tuple[int, bytes]:
    """The status and body of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def faust_routes() -> list[str]:
    """Every path Faust's web server can serve, from its blueprints as ``faust/web/base.py`` lists
    them: those on by default, the production index, the debug pages and the optional ones."""
    listed = (
        *faust_web.DEFAULT_BLUEPRINTS,
        *faust_web.PRODUCTION_BLUEPRINTS,
        *faust_web.DEBUG_BLUEPRINTS,
        *faust_web.OPTIONAL_BLUEPRINTS,
    )
    paths = []
    for prefix, name in listed:
        blueprint = symbol_by_name(name)
        # As Blueprint._url_with_prefix joins them.
        paths.extend(prefix.rstrip("/") + "/" + route.uri.lstrip("/") for route in blueprint.routes)
    return paths


def concrete(paths: list[str]) -> list[str]:
    """Each route with its parameters filled in: every table of the app, a journey key, a partition."""
    out = set()
    for path in paths:
        for table in TABLES:
            for key in ("cust-42", "0"):
                out.add(path.format(name=table, key=key))
    return sorted(out)


def listening(pid: int) -> set[tuple[str, int]]:
    """The addresses a process listens on (TCP, IPv4 and IPv6), from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", str(target))
        if match:
            inodes.add(match.group(1))
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for row in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_address, hex_port = local.split(":")
            raw = bytes.fromhex(hex_address)
            # /proc writes each 32-bit word of the address in the host's (little-endian) order.
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, packed), int(hex_port, 16)))
    return found


def test_faust_routes_are_read_from_faust() -> None:
    """The paths checked below are Faust's, not a guess: its table, router, statistics, graph,
    performance and index pages are among them."""
    routes = set(faust_routes())
    assert {
        "/",
        "/router/",
        "/router/{name}/",
        "/router/{name}/{key}/",
        "/table/",
        "/table/{name}/",
        "/table/{name}/{key}/",
        "/graph/",
        "/assignment/",
        "/performance/",
    } <= routes, routes
    assert "/table/journeys/cust-42/" in concrete(sorted(routes))


async def test_the_worker_serves_metrics_and_health_only_on_the_loopback(
    kafka_bootstrap, topic_prefix, tmp_path
):
    env = motwatch_env(kafka_bootstrap, topic_prefix)  # no MOTWATCH_WEB_BIND: the default
    assert "MOTWATCH_WEB_BIND" not in env and Settings().web_bind == "127.0.0.1"
    port = int(env["MOTWATCH_WEB_PORT"])
    base = f"http://127.0.0.1:{port}"
    with WorkerProcess(env, tmp_path / "w") as worker:
        status, body = await asyncio.to_thread(get, f"{base}/metrics")
        assert status == 200 and b"motwatch_events_received_total" in body
        status, body = await asyncio.to_thread(get, f"{base}/health")
        assert status == 200 and json.loads(body) == {"status": "ok"}

        # Faust's pages, and the statistics page under the name older Faust versions gave it.
        refused = {}
        for path in [*concrete(faust_routes()), "/stats/", "/router/topics/", "/metrics/extra"]:
            status, _ = await asyncio.to_thread(get, f"{base}{path}")
            refused[path] = status
        assert refused and all(status == 404 for status in refused.values()), refused

        # One socket, on the loopback: no other server (Faust's own) and no other interface.
        assert listening(worker.proc.pid) == {("127.0.0.1", port)}
        assert SERVING.findall(worker.log()) == [f"{base}/metrics"]
        assert worker.alive(), worker.log()[-2000:]


async def test_web_port_0_picks_a_free_port_that_status_finds(kafka_bootstrap, topic_prefix, tmp_path):
    env = motwatch_env(kafka_bootstrap, topic_prefix, web_port=0)
    workdir = tmp_path / "w"  # the worker's and status's directory: data_dir is relative to it
    settings = Settings(topic_prefix=topic_prefix, web_port=0)
    written = workdir / url_file(settings)
    with WorkerProcess(env, workdir) as worker:
        served = SERVING.findall(worker.log())
        assert len(served) == 1, worker.log()[-3000:]
        url = served[0]
        port = int(re.fullmatch(r"http://127\.0\.0\.1:(\d+)/metrics", url).group(1))
        assert port != 0 and listening(worker.proc.pid) == {("127.0.0.1", port)}
        assert written.read_text(encoding="utf-8").strip() == url

        done = await asyncio.to_thread(run_cli, "status", "--window", "0.2", env=env, cwd=workdir, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().startswith(f"motwatch worker at {url}   (rates over ")
        assert "Since start   in 0" in done.stdout.decode()
    assert worker.proc.returncode == 0, worker.log()[-2000:]
    # Stopped, the worker takes its URL back: status says where it looked, in one line.
    assert not written.exists()
    done = await asyncio.to_thread(run_cli, "status", "--window", "0", env=env, cwd=workdir, timeout=60)
    assert done.returncode == 1
    err = done.stderr.decode()
    assert err.count("\n") == 1 and "web.url" in err and "Traceback" not in err, err


async def test_health_answers_200_only_while_the_worker_runs(tmp_path) -> None:
    """The server alone, in this process: /health follows the worker's state; the URL file lives
    as long as the server."""
    state = {"now": "starting"}
    metrics = Metrics()
    metrics.received.inc(3)
    path = tmp_path / "data" / "app" / "web.url"
    server = WebServer(listen_socket("127.0.0.1", 0), metrics.registry, lambda: state["now"], path)
    await server.start()
    try:
        url = path.read_text(encoding="utf-8").strip()
        assert url == server.metrics_url and re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url)
        base = url.removesuffix("/metrics")
        for now, expected in (("starting", 503), ("ok", 200), ("stopping", 503)):
            state["now"] = now
            status, body = await asyncio.to_thread(get, f"{base}/health")
            assert (status, json.loads(body)) == (expected, {"status": now})
        status, body = await asyncio.to_thread(get, url)
        assert status == 200 and b"motwatch_events_received_total 3.0" in body
    finally:
        await server.stop()
    assert not path.exists()


def test_a_port_in_use_stops_the_start_in_one_line() -> None:
    taken = listen_socket("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            listen_socket("127.0.0.1", port)
        assert str(caught.value).startswith(f"web_bind/web_port: cannot listen on 127.0.0.1:{port}: ")
        assert "\n" not in str(caught.value)
    finally:
        taken.close()
