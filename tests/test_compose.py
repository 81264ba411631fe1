"""The docker-compose stack, checked without Docker.

Nothing here starts a container: the tests read ``docker-compose.yml``, the
``Dockerfile``, ``.dockerignore``, ``config/prometheus.yml`` and Grafana's
provisioning files and check that they fit together and fit the repository
(paths that exist, ports that agree with the settings, names that resolve).

Each check is a function that returns a list of problems, so the tests at the
bottom can also feed it a broken copy and see it complain: a check that cannot
fail checks nothing.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from motwatch.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
PROMETHEUS_FILE = REPO / "config" / "prometheus.yml"
PROVISIONING_DIR = REPO / "grafana" / "provisioning"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"

PROMETHEUS_PORT = 9090
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"


# ---------------------------------------------------------------- reading


_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?[-?]([^}]*))?\}")


def interpolate(node: Any) -> Any:
    """Compose's ``${NAME:-default}``, evaluated as if no variable were set."""
    if isinstance(node, str):
        return _VARIABLE.sub(lambda m: "$" if m.group(0) == "$$" else (m.group(2) or ""), node)
    if isinstance(node, dict):
        return {key: interpolate(value) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value) for value in node]
    return node


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    return interpolate(load_yaml(path))


def services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return doc.get("services") or {}


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (mapping or ``KEY=VALUE`` list) as strings."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    out = {}
    for key, value in raw.items():
        if value is None:  # passed through from the host's environment
            continue
        out[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind" or "volume"
    source: str | None  # host path or volume name; None for an anonymous volume
    target: str


def mounts_of(service: dict[str, Any]) -> list[Mount]:
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            out.append(Mount(entry.get("type", "volume"), entry.get("source"), entry["target"]))
            continue
        parts = str(entry).split(":")
        if len(parts) == 1:
            out.append(Mount("volume", None, parts[0]))
            continue
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        out.append(Mount(kind, source, target))
    return out


def host_path(source: str, root: Path) -> Path:
    return (root / Path(source).expanduser()).resolve()


def inside(path: Path, root: Path) -> bool:
    return path == root.resolve() or root.resolve() in path.parents


def resolve_in_container(service: dict[str, Any], container_path: str, root: Path) -> Path | None:
    """The repository path a container path shows, through the service's bind mounts."""
    wanted = PurePosixPath(container_path)
    best: tuple[int, Path] | None = None
    for mount in mounts_of(service):
        if mount.kind != "bind" or mount.source is None:
            continue
        target = PurePosixPath(mount.target)
        if wanted == target or target in wanted.parents:
            depth = len(target.parts)
            if best is None or depth > best[0]:
                best = (depth, host_path(mount.source, root) / wanted.relative_to(target))
    return None if best is None else best[1]


@dataclass(frozen=True)
class Port:
    host_ip: str
    published: int | None
    target: int
    protocol: str


def _port_number(text: Any) -> int:
    text = str(text)
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def parse_port(entry: Any) -> Port:
    """One ``ports`` entry, short (``[IP:]HOST:CONTAINER[/PROTO]``) or long syntax."""
    if isinstance(entry, dict):
        published = entry.get("published")
        return Port(
            str(entry.get("host_ip", "")),
            None if published in (None, "") else _port_number(published),
            _port_number(entry["target"]),
            str(entry.get("protocol", "tcp")),
        )
    text = str(entry)
    spec, _, protocol = text.partition("/")
    protocol = protocol or "tcp"
    if protocol not in ("tcp", "udp", "sctp"):
        raise ValueError(f"{text!r}: unknown protocol {protocol!r}")
    parts = spec.split(":")
    if len(parts) == 1:
        return Port("", None, _port_number(parts[0]), protocol)
    if len(parts) == 2:
        return Port("", _port_number(parts[0]), _port_number(parts[1]), protocol)
    if len(parts) == 3 and re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", parts[0]):
        return Port(parts[0], _port_number(parts[1]), _port_number(parts[2]), protocol)
    raise ValueError(f"{text!r} is not [IP:]HOST_PORT:CONTAINER_PORT[/PROTOCOL]")


def ports_of(service: dict[str, Any]) -> list[Port]:
    return [parse_port(entry) for entry in service.get("ports") or []]


def depends_of(service: dict[str, Any]) -> dict[str, str]:
    """``depends_on`` (list or mapping) as {service: condition}."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def build_of(service: dict[str, Any], root: Path) -> tuple[Path, Path] | None:
    """(context, Dockerfile) of a service that is built, else None."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = host_path(build.get("context", "."), root)
    return context, context / build.get("dockerfile", "Dockerfile")


# ---------------------------------------------------------------- Dockerfile


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        name, _, args = full.partition(" ")
        out.append((name.upper(), args.strip()))
    return out


def copy_sources(dockerfile: Path) -> list[str]:
    """The build-context paths the Dockerfile's COPY/ADD instructions read."""
    sources = []
    for name, args in instructions(dockerfile):
        if name not in ("COPY", "ADD"):
            continue
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        sources.extend(words[:-1])
    return sources


def image_env(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, args in instructions(dockerfile):
        if name != "ENV":
            continue
        words = shlex.split(args)
        if words and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def exposed_ports(dockerfile: Path) -> set[int]:
    return {
        int(word.split("/")[0])
        for name, args in instructions(dockerfile)
        if name == "EXPOSE"
        for word in args.split()
    }


def image_cmd(dockerfile: Path) -> list[str] | None:
    cmds = [args for name, args in instructions(dockerfile) if name == "CMD"]
    if not cmds:
        return None
    text = cmds[-1]
    return json.loads(text) if text.startswith("[") else shlex.split(text)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A ``.dockerignore`` pattern (Go ``filepath.Match`` plus ``**``) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body.startswith(("!", "^")) else body
            out, i = out + "[" + body.replace("\\", "\\\\") + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether ``.dockerignore`` keeps ``path`` (or a folder above it) out of the context."""
    parts = PurePosixPath(path.strip("/")).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        regex = _pattern_regex(str(PurePosixPath(pattern.lstrip("!").strip("/"))))
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def read_dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


# ---------------------------------------------------------------- checks


def check_services(doc: dict[str, Any], root: Path) -> list[str]:
    problems = []
    if "version" in doc:
        problems.append("the Compose spec has no top-level 'version' key")
    if not services(doc):
        problems.append("no services")
    for name, svc in services(doc).items():
        build = build_of(svc, root)
        if build is None:
            if not svc.get("image"):
                problems.append(f"{name}: neither image nor build")
            continue
        context, dockerfile = build
        if not context.is_dir() or not inside(context, root):
            problems.append(f"{name}: build context {context} is not a folder of the repository")
        elif not dockerfile.is_file():
            problems.append(f"{name}: no Dockerfile at {dockerfile}")
    return problems


def check_mounts(doc: dict[str, Any], root: Path) -> list[str]:
    problems = []
    declared = set(doc.get("volumes") or {})
    used = set()
    for name, svc in services(doc).items():
        for mount in mounts_of(svc):
            if mount.kind == "bind":
                path = host_path(mount.source or "", root)
                if not inside(path, root):
                    problems.append(f"{name}: bind mount {mount.source} is outside the repository")
                elif not path.exists():
                    problems.append(f"{name}: bind mount {mount.source} does not exist")
            elif mount.kind == "volume" and mount.source is not None:
                used.add(mount.source)
                if mount.source not in declared:
                    problems.append(f"{name}: volume {mount.source!r} is not declared under 'volumes:'")
            if not mount.target.startswith("/"):
                problems.append(f"{name}: mount target {mount.target!r} is not an absolute path")
    problems += [f"volume {v!r} is declared but no service uses it" for v in sorted(declared - used)]
    return problems


def check_ports(doc: dict[str, Any]) -> list[str]:
    problems = []
    seen: dict[tuple[int, str], str] = {}
    for name, svc in services(doc).items():
        for entry in svc.get("ports") or []:
            try:
                port = parse_port(entry)
            except (ValueError, KeyError) as exc:
                problems.append(f"{name}: bad port {entry!r}: {exc}")
                continue
            if port.published is None:
                continue
            key = (port.published, port.protocol)
            if key in seen:
                problems.append(
                    f"{name}: host port {port.published}/{port.protocol} is also published by {seen[key]}"
                )
            seen[key] = name
    return problems


def check_depends_on(doc: dict[str, Any]) -> list[str]:
    problems = []
    known = services(doc)
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in known.items():
        for other, condition in depends_of(svc).items():
            if other not in known:
                problems.append(f"{name}: depends on undefined service {other!r}")
            elif other == name:
                problems.append(f"{name}: depends on itself")
            elif condition not in conditions:
                problems.append(f"{name}: unknown condition {condition!r} on {other}")
            elif condition == "service_healthy" and not (known[other].get("healthcheck") or {}).get("test"):
                problems.append(f"{name}: waits for {other} to be healthy, but {other} has no healthcheck")
    return problems


def check_dockerfile(dockerfile: Path, context: Path, pyproject: dict[str, Any]) -> list[str]:
    problems = []
    ignore = read_dockerignore(context)
    sources = copy_sources(dockerfile)
    for source in sources:
        if not (context / source).exists():
            problems.append(f"Dockerfile copies {source}, which is not in the build context")
        elif dockerignore_excludes(ignore, source):
            problems.append(f"Dockerfile copies {source}, but .dockerignore leaves it out")
    copied = {PurePosixPath(s.rstrip("/")) for s in sources}
    package_dirs = set(pyproject["tool"]["setuptools"].get("package-dir", {}).values())
    needed = {"pyproject.toml", pyproject["project"].get("readme", "README.md"), "config", *package_dirs}
    for path in sorted(needed):
        if PurePosixPath(path) not in copied:
            problems.append(f"Dockerfile does not copy {path}")
    # Everything an installed package is built from must reach the context.
    for directory in sorted(package_dirs):
        for file in sorted((context / directory).rglob("*")):
            rel = file.relative_to(context).as_posix()
            wanted = file.suffix in (".py", ".json", ".toml", ".xml", ".properties")
            if wanted and file.is_file() and dockerignore_excludes(ignore, rel):
                problems.append(f".dockerignore leaves out {rel}, which the package needs")
    return problems


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` as {NAME: (host, port)}."""
    out = {}
    for item in filter(None, (s.strip() for s in value.split(","))):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def check_kafka(env: dict[str, str], service_name: str) -> list[str]:
    """A one-node KRaft broker+controller whose listeners agree with each other."""
    problems = []
    required = [
        "KAFKA_NODE_ID",
        "KAFKA_PROCESS_ROLES",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_INTER_BROKER_LISTENER_NAME",
        "CLUSTER_ID",
    ]
    missing = [key for key in required if key not in env]
    if missing:
        return [f"kafka: missing {', '.join(missing)}"]
    if set(env["KAFKA_PROCESS_ROLES"].split(",")) != {"broker", "controller"}:
        problems.append("kafka: KAFKA_PROCESS_ROLES must be broker,controller for one node")
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    inter_broker = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    for listener in listeners:
        if listener not in protocols:
            problems.append(f"kafka: listener {listener} has no security protocol")
    for listener, (_, port) in advertised.items():
        if listener not in listeners:
            problems.append(f"kafka: advertised listener {listener} is not a listener")
        elif listeners[listener][1] != port:
            problems.append(f"kafka: {listener} listens on {listeners[listener][1]} but advertises {port}")
    if controller not in listeners:
        problems.append(f"kafka: controller listener {controller} is not a listener")
    if controller in advertised:
        problems.append(f"kafka: controller listener {controller} must not be advertised")
    if inter_broker not in advertised:
        problems.append(f"kafka: inter-broker listener {inter_broker} is not advertised")
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    node_id = env["KAFKA_NODE_ID"]
    expected_voter = [
        f"{node_id}@{host}:{listeners.get(controller, ('', 0))[1]}" for host in (service_name, "localhost")
    ]
    if len(voters) != 1 or voters[0] not in expected_voter:
        problems.append(f"kafka: quorum voters {voters} should be {expected_voter[0]}")
    for key, value in env.items():
        if key.endswith(("_REPLICATION_FACTOR", "_MIN_ISR", "MIN_INSYNC_REPLICAS")) and value != "1":
            problems.append(f"kafka: {key}={value}, but one broker can hold only one replica")
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
    ):
        if key not in env:
            problems.append(f"kafka: {key} must be set to 1 (its default, 3, needs three brokers)")
    return problems


def check_prometheus(prom: dict[str, Any], doc: dict[str, Any], root: Path, web_port: int) -> list[str]:
    problems = []
    svc = services(doc).get("prometheus")
    if svc is None:
        return ["no prometheus service"]
    # The config the container reads must be this file.
    config_path = PROMETHEUS_CONFIG
    for word in svc.get("command") or []:
        if str(word).startswith("--config.file="):
            config_path = str(word).split("=", 1)[1]
    shown = resolve_in_container(svc, config_path, root)
    if shown is None or shown != (root / "config" / "prometheus.yml").resolve():
        problems.append(f"prometheus: {config_path} is not mounted from config/prometheus.yml")
    jobs = {job.get("job_name"): job for job in prom.get("scrape_configs") or []}
    if len(jobs) != len(prom.get("scrape_configs") or []):
        problems.append("prometheus: job names are not unique")
    job = jobs.get("motwatch")
    if job is None:
        problems.append("prometheus: no 'motwatch' scrape job")
    else:
        interval = job.get("scrape_interval", (prom.get("global") or {}).get("scrape_interval", "1m"))
        if interval != "15s":
            problems.append(f"prometheus: motwatch is scraped every {interval}, not 15s")
        if job.get("metrics_path", "/metrics") != "/metrics":
            problems.append(f"prometheus: motwatch metrics_path is {job['metrics_path']}")
        targets = [t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
        if not targets:
            problems.append("prometheus: the motwatch job has no targets")
        for target in targets:
            host, _, port = str(target).rpartition(":")
            if host not in services(doc) or build_of(services(doc)[host], root) is None:
                problems.append(f"prometheus: target {target}: {host!r} is not the worker service")
            if port != str(web_port):
                problems.append(f"prometheus: target {target} is not on the worker's web port {web_port}")
    if "prometheus" not in jobs:
        problems.append("prometheus: does not scrape itself")
    for pattern in prom.get("rule_files") or []:
        resolved = resolve_in_container(svc, str(PurePosixPath("/etc/prometheus") / pattern), root)
        if resolved is None or not resolved.parent.is_dir():
            problems.append(f"prometheus: rule files {pattern} are not mounted from the repository")
    return problems


def provisioning_files(root: Path, kind: str) -> list[Path]:
    folder = root / "grafana" / "provisioning" / kind
    return sorted(p for p in folder.glob("*") if p.suffix in (".yml", ".yaml"))


def check_grafana(doc: dict[str, Any], root: Path) -> list[str]:
    problems = []
    svc = services(doc).get("grafana")
    if svc is None:
        return ["no grafana service"]
    provisioning = env_of(svc).get("GF_PATHS_PROVISIONING", GRAFANA_PROVISIONING)
    if resolve_in_container(svc, provisioning, root) != (root / "grafana" / "provisioning").resolve():
        problems.append(f"grafana: {provisioning} is not mounted from grafana/provisioning")
    prometheus = services(doc).get("prometheus")
    uids = set()
    datasources = provisioning_files(root, "datasources")
    if not datasources:
        problems.append("grafana: no datasource is provisioned")
    for path in datasources:
        content = load_yaml(path) or {}
        if content.get("apiVersion") != 1:
            problems.append(f"grafana: {path.name}: apiVersion is not 1")
        for source in content.get("datasources") or []:
            uids.add(source.get("uid"))
            if source.get("type") != "prometheus":
                continue
            url = re.fullmatch(r"https?://([^:/]+):(\d+)/?", str(source.get("url")))
            if url is None or prometheus is None:
                problems.append(f"grafana: datasource url {source.get('url')!r} is not http://HOST:PORT")
                continue
            if url.group(1) != "prometheus" or int(url.group(2)) != PROMETHEUS_PORT:
                problems.append(f"grafana: datasource url {source['url']} is not the prometheus service")
    providers = provisioning_files(root, "dashboards")
    if not providers:
        problems.append("grafana: no dashboard provider is provisioned")
    for path in providers:
        content = load_yaml(path) or {}
        if content.get("apiVersion") != 1:
            problems.append(f"grafana: {path.name}: apiVersion is not 1")
        for provider in content.get("providers") or []:
            folder = (provider.get("options") or {}).get("path")
            if provider.get("type", "file") != "file" or not folder:
                problems.append(
                    f"grafana: provider {provider.get('name')} is not a file provider with a path"
                )
                continue
            shown = resolve_in_container(svc, folder, root)
            if shown is None:
                problems.append(f"grafana: provider path {folder} is not mounted from the repository")
            elif not shown.is_dir():
                problems.append(f"grafana: provider path {folder} shows {shown}, which is not a folder")
    for board in sorted((root / "grafana" / "dashboards").rglob("*.json")):
        try:
            data = json.loads(board.read_text(encoding="utf-8"))
        except ValueError as exc:
            problems.append(f"grafana: {board.name} is not JSON: {exc}")
            continue
        for uid in _datasource_uids(data):
            if uid not in uids and not uid.startswith(("$", "-- ")) and uid != "grafana":
                problems.append(f"grafana: {board.name} uses datasource {uid!r}, which is not provisioned")
    return problems


def _datasource_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and isinstance(source.get("uid"), str):
            yield source["uid"]
        for value in node.values():
            yield from _datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from _datasource_uids(value)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def worker_name(compose: dict[str, Any]) -> str:
    built = [name for name, svc in services(compose).items() if svc.get("build") is not None]
    assert built == ["worker"], f"exactly one service, 'worker', is built from this repository: {built}"
    return "worker"


@pytest.fixture(scope="module")
def dockerfile(compose: dict[str, Any], worker_name: str) -> Path:
    build = build_of(services(compose)[worker_name], REPO)
    assert build is not None
    return build[1]


@pytest.fixture
def worker_settings(
    compose: dict[str, Any], worker_name: str, dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings the worker container runs with: image env, then compose env, ./config in cwd."""
    environ = {**image_env(dockerfile), **env_of(services(compose)[worker_name])}
    monkeypatch.delenv("MOTWATCH_CONFIG", raising=False)
    monkeypatch.chdir(REPO)  # the image copies config/ into its working directory
    return load_settings(None, environ=environ)


# ---------------------------------------------------------------- the real files


def test_compose_parses_to_the_four_services(compose: dict[str, Any]) -> None:
    assert {"kafka", "worker", "prometheus", "grafana"} <= set(services(compose))


def test_every_service_has_an_image_or_a_build_context(compose: dict[str, Any]) -> None:
    assert check_services(compose, REPO) == []


def test_bind_mounts_exist_and_volumes_are_declared(compose: dict[str, Any]) -> None:
    assert check_mounts(compose, REPO) == []


def test_published_ports_are_well_formed_and_unique(compose: dict[str, Any]) -> None:
    assert check_ports(compose) == []


def test_depends_on_names_defined_services(compose: dict[str, Any]) -> None:
    assert check_depends_on(compose) == []


def test_dockerfile_builds_the_package(dockerfile: Path, pyproject: dict[str, Any]) -> None:
    assert check_dockerfile(dockerfile, dockerfile.parent, pyproject) == []
    steps = instructions(dockerfile)
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert any(name == "RUN" and re.search(r"\bpip install \.(\s|$)", args) for name, args in steps)
    assert "motwatch" in pyproject["project"]["scripts"]


def test_worker_runs_the_worker_command(compose: dict[str, Any], worker_name: str, dockerfile: Path) -> None:
    command = services(compose)[worker_name].get("command") or image_cmd(dockerfile)
    if isinstance(command, str):
        command = shlex.split(command)
    assert command == ["motwatch", "worker"]


def test_worker_serves_metrics_on_the_default_web_port(
    compose: dict[str, Any], worker_name: str, dockerfile: Path, worker_settings: Settings
) -> None:
    default = Settings().web_port
    assert worker_settings.web_port == default, "the stack moves the worker off the default web_port"
    assert default in exposed_ports(dockerfile)
    assert default in {p.target for p in ports_of(services(compose)[worker_name])}
    # Bound to loopback, the port would be unreachable from Prometheus and the host.
    assert worker_settings.web_bind in ("0.0.0.0", "::"), worker_settings.web_bind


def test_worker_reaches_kafka_on_its_internal_listener(
    compose: dict[str, Any], worker_name: str, worker_settings: Settings
) -> None:
    host, _, port = worker_settings.broker.rpartition(":")
    assert host in services(compose), f"broker {worker_settings.broker}: {host!r} is not a service"
    advertised = _listeners(env_of(services(compose)[host])["KAFKA_ADVERTISED_LISTENERS"]).values()
    assert (host, int(port)) in advertised
    assert depends_of(services(compose)[worker_name]).get(host) == "service_healthy"
    assert worker_settings.replication_factor == 1


def test_kafka_is_one_kraft_node(compose: dict[str, Any]) -> None:
    svc = services(compose)["kafka"]
    match = re.fullmatch(r"apache/kafka:4\.(\d+)\.\d+", svc["image"])
    assert match and int(match.group(1)) >= 1, svc["image"]
    env = env_of(svc)
    assert check_kafka(env, "kafka") == []
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    assert ("kafka", 9092) in advertised.values()
    assert ("localhost", 9094) in advertised.values()
    assert any(p.published == 9094 and p.target == 9094 for p in ports_of(svc))
    assert any(m.kind == "volume" and m.target == env["KAFKA_LOG_DIRS"] for m in mounts_of(svc))
    test = " ".join(svc["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in test
    bootstrap = re.search(r"--bootstrap-server\s+(\S+):(\d+)", test)
    assert bootstrap and (bootstrap.group(1), int(bootstrap.group(2))) in [
        *advertised.values(),
        *(("localhost", port) for _, port in advertised.values()),
    ]


def test_prometheus_scrapes_the_worker(compose: dict[str, Any]) -> None:
    assert check_prometheus(load_yaml(PROMETHEUS_FILE), compose, REPO, Settings().web_port) == []
    assert any(p.target == PROMETHEUS_PORT for p in ports_of(services(compose)["prometheus"]))


def test_grafana_provisioning_points_at_mounted_paths(compose: dict[str, Any]) -> None:
    for path in PROVISIONING_DIR.rglob("*"):
        if path.suffix in (".yml", ".yaml"):
            assert isinstance(load_yaml(path), dict), path
    assert check_grafana(compose, REPO) == []
    assert any(p.target == 3000 for p in ports_of(services(compose)["grafana"]))


# ---------------------------------------------------------------- the checks can fail


def _broken(compose: dict[str, Any], change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(compose)
    change(doc)
    return doc


def _set_volume(service: str, index: int, value: str) -> Any:
    return lambda doc: doc["services"][service]["volumes"].__setitem__(index, value)


@pytest.mark.parametrize(
    ("check", "change", "expected"),
    [
        (
            "mounts",
            _set_volume("prometheus", 0, "./config/prometheus.yaml:/etc/prometheus/prometheus.yml:ro"),
            "./config/prometheus.yaml does not exist",
        ),
        (
            "mounts",
            _set_volume("grafana", 0, "./grafana/provisoning:/etc/grafana/provisioning:ro"),
            "./grafana/provisoning does not exist",
        ),
        (
            "mounts",
            _set_volume("grafana", 2, "grafana-date:/var/lib/grafana"),
            "'grafana-date' is not declared",
        ),
        ("mounts", _set_volume("grafana", 0, "/etc:/etc/grafana/provisioning"), "outside the repository"),
        ("ports", lambda d: d["services"]["grafana"].__setitem__("ports", ["9090:3000"]), "also published"),
        ("ports", lambda d: d["services"]["grafana"].__setitem__("ports", ["3000:70000"]), "bad port"),
        (
            "ports",
            lambda d: d["services"]["grafana"].__setitem__("ports", ["localhost:3000:3000"]),
            "bad port",
        ),
        (
            "depends_on",
            lambda d: d["services"]["grafana"].__setitem__("depends_on", ["promethus"]),
            "undefined service 'promethus'",
        ),
        (
            "depends_on",
            lambda d: d["services"]["grafana"].__setitem__(
                "depends_on", {"prometheus": {"condition": "service_healthy"}}
            ),
            "has no healthcheck",
        ),
        ("services", lambda d: d["services"]["worker"].__setitem__("build", "./nowhere"), "build context"),
        ("services", lambda d: d["services"]["grafana"].pop("image"), "neither image nor build"),
        ("services", lambda d: d.__setitem__("version", "3.8"), "'version'"),
        (
            "grafana",
            _set_volume("grafana", 1, "./grafana/dashboards:/var/lib/grafana/dashboards:ro"),
            "is not mounted from the repository",
        ),
        (
            "grafana",
            _set_volume("grafana", 0, "./grafana:/etc/grafana/provisioning:ro"),
            "is not mounted from grafana/provisioning",
        ),
        (
            "prometheus",
            _set_volume("prometheus", 0, "./config/prometheus.yml:/etc/prometheus/prom.yml:ro"),
            "is not mounted from config/prometheus.yml",
        ),
    ],
)
def test_checks_catch_a_broken_compose_file(
    compose: dict[str, Any], check: str, change: Any, expected: str
) -> None:
    doc = _broken(compose, change)
    problems = {
        "mounts": lambda: check_mounts(doc, REPO),
        "ports": lambda: check_ports(doc),
        "depends_on": lambda: check_depends_on(doc),
        "services": lambda: check_services(doc, REPO),
        "grafana": lambda: check_grafana(doc, REPO),
        "prometheus": lambda: check_prometheus(load_yaml(PROMETHEUS_FILE), doc, REPO, Settings().web_port),
    }[check]()
    assert any(expected in problem for problem in problems), problems


def test_prometheus_check_catches_a_wrong_target(compose: dict[str, Any]) -> None:
    prom = load_yaml(PROMETHEUS_FILE)
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "motwatch")
    job["static_configs"] = [{"targets": ["worker:6067"]}]
    problems = check_prometheus(prom, compose, REPO, 6066)
    assert any("not on the worker's web port" in p for p in problems), problems
    job["static_configs"] = [{"targets": ["wroker:6066"]}]
    problems = check_prometheus(prom, compose, REPO, 6066)
    assert any("is not the worker service" in p for p in problems), problems


def test_kafka_check_catches_inconsistent_listeners(compose: dict[str, Any]) -> None:
    env = env_of(services(compose)["kafka"])
    assert any(
        "advertises" in p
        for p in check_kafka(
            {**env, "KAFKA_LISTENERS": env["KAFKA_LISTENERS"].replace(":9092", ":9095")}, "kafka"
        )
    )
    assert any(
        "quorum voters" in p
        for p in check_kafka({**env, "KAFKA_CONTROLLER_QUORUM_VOTERS": "2@kafka:9093"}, "kafka")
    )
    assert any(
        "one replica" in p
        for p in check_kafka({**env, "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3"}, "kafka")
    )


def test_dockerfile_check_catches_a_missing_copy(tmp_path: Path, pyproject: dict[str, Any]) -> None:
    for name in ("pyproject.toml", "README.md", "Dockerfile"):
        (tmp_path / name).write_text((REPO / name).read_text(encoding="utf-8"), encoding="utf-8")
    for name in ("motwatch", "streams", "agents", "config"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.py").write_text("", encoding="utf-8")
    assert check_dockerfile(tmp_path / "Dockerfile", tmp_path, pyproject) == []
    (tmp_path / ".dockerignore").write_text("streams\n", encoding="utf-8")
    assert any(
        ".dockerignore leaves it out" in p
        for p in check_dockerfile(tmp_path / "Dockerfile", tmp_path, pyproject)
    )
    (tmp_path / ".dockerignore").write_text("**/*.py\n!motwatch/**\n", encoding="utf-8")
    problems = check_dockerfile(tmp_path / "Dockerfile", tmp_path, pyproject)
    assert any("leaves out agents/x.py" in p for p in problems), problems
    assert not any("motwatch/x.py" in p for p in problems), problems
    (tmp_path / ".dockerignore").unlink()
    text = (tmp_path / "Dockerfile").read_text(encoding="utf-8").replace("COPY agents/ agents/\n", "")
    (tmp_path / "Dockerfile").write_text(text, encoding="utf-8")
    assert "Dockerfile does not copy agents" in check_dockerfile(tmp_path / "Dockerfile", tmp_path, pyproject)


def test_grafana_check_catches_an_unknown_dashboard_datasource(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path
    for sub in ("grafana/provisioning/datasources", "grafana/provisioning/dashboards", "grafana/dashboards"):
        (root / sub).mkdir(parents=True)
        for file in (REPO / sub).glob("*.yml"):
            (root / sub / file.name).write_text(file.read_text(encoding="utf-8"), encoding="utf-8")
    assert check_grafana(compose, root) == []
    board = {"panels": [{"datasource": {"type": "prometheus", "uid": "promethues"}}]}
    (root / "grafana/dashboards/board.json").write_text(json.dumps(board), encoding="utf-8")
    assert any("'promethues'" in p for p in check_grafana(compose, root))
