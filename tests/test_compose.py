"""The docker-compose stack, checked without Docker.

Nothing here starts a container: the tests read ``docker-compose.yml``, the
``Dockerfile``, ``.dockerignore``, ``config/prometheus.yml`` and Grafana's
provisioning files and check that they fit together and fit the repository
(paths that exist, ports that agree with the settings, names that resolve).
The secured variant, ``docker-compose.yml`` overridden by
``docker-compose.secure.yml``, is merged as Compose merges it and checked the
same way, and more: its ``certs`` service's command is run here to make the
certificates, and the worker's settings, the broker's keystore and the SCRAM
user's setup are checked against what it wrote.

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
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from motwatch.kafka.broker import tls
from motwatch.settings import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
SECURE_FILE = REPO / "docker-compose.secure.yml"
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
    read_only: bool = False


def mounts_of(service: dict[str, Any]) -> list[Mount]:
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            kind, read_only = entry.get("type", "volume"), bool(entry.get("read_only"))
            out.append(Mount(kind, entry.get("source"), entry["target"], read_only))
            continue
        parts = str(entry).split(":")
        if len(parts) == 1:
            out.append(Mount("volume", None, parts[0]))
            continue
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        out.append(Mount(kind, source, target, read_only))
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


# Compose replaces these when an override sets them; other sequences it extends.
_REPLACED = {"command", "entrypoint"}


def _as_mapping(key: str, value: Any) -> Any:
    """``environment`` and ``depends_on`` in their mapping form, the form Compose merges them in."""
    if key == "environment" and isinstance(value, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in map(str, value))
    if key == "depends_on" and isinstance(value, list):
        return {name: {"condition": "service_started"} for name in value}
    return value


def _merge_mapping(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        both = isinstance(old, dict) and isinstance(value, dict)
        out[key] = _merge_mapping(old, value) if both else copy.deepcopy(value)
    return out


def _merge_service(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, raw in over.items():
        value, old = _as_mapping(key, raw), _as_mapping(key, out.get(key))
        if key == "volumes" and isinstance(old, list) and isinstance(value, list):
            # By the path in the container: the override's mount replaces the one there.
            by_target = {
                mount.target: entry for entry, mount in zip(old, mounts_of({"volumes": old}), strict=True)
            }
            by_target.update(
                {m.target: entry for entry, m in zip(value, mounts_of({"volumes": value}), strict=True)}
            )
            out[key] = list(by_target.values())
        elif key in _REPLACED or old is None:
            out[key] = copy.deepcopy(value)
        elif isinstance(old, dict) and isinstance(value, dict):
            out[key] = _merge_mapping(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            out[key] = old + [entry for entry in value if entry not in old]
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_compose(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``docker compose -f base -f over``'s model, by Compose's merge rules for the keys used here.

    Services merge by name; in a service, ``environment`` and ``depends_on`` merge by key (a list
    form is made a mapping first), other mappings merge by key, ``volumes`` by container path,
    ``command`` and ``entrypoint`` are replaced, other sequences (``ports``) extended, scalars
    replaced. Top-level mappings (``volumes``) merge by name.
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key == "services":
            merged = dict(out.get("services") or {})
            for name, svc in (value or {}).items():
                merged[name] = (
                    _merge_service(merged[name], svc or {}) if name in merged else copy.deepcopy(svc)
                )
            out["services"] = merged
        elif isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = _merge_mapping(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_secure_compose(override: dict[str, Any] | None = None) -> dict[str, Any]:
    """``docker-compose.yml`` overridden by ``docker-compose.secure.yml`` (or the ``override`` given)."""
    return interpolate(merge_compose(load_yaml(COMPOSE_FILE), override or load_yaml(SECURE_FILE)))


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


def image_uid(dockerfile: Path, user: Any = None) -> int | None:
    """The uid a container runs as: compose's ``user``, else the Dockerfile's last USER (via its useradd)."""
    users = [args for name, args in instructions(dockerfile) if name == "USER"]
    wanted = str(user if user is not None else (users[-1] if users else "root")).split(":")[0]
    if wanted.isdigit():
        return int(wanted)
    if wanted == "root":
        return 0
    for name, args in instructions(dockerfile):
        for found in re.finditer(r"\buseradd\s+([^&;|]+)", args) if name == "RUN" else ():
            words = shlex.split(found.group(1))
            if words[-1] == wanted and "--uid" in words[:-1]:
                return int(words[words.index("--uid") + 1])
    return None


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
            wanted = wanted and "node_modules" not in file.parts  # npm's dev tools (tracker/): not packaged
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


# What the apache/kafka image's start script (docker/resources/common-scripts/configure and its
# "utility render-properties") does with the environment: KAFKA_* variables but these become
# server.properties keys, and a variable whose value holds "=" is left out.
KAFKA_IMAGE_EXCLUDES = {
    "KAFKA_VERSION",
    "KAFKA_HEAP_OPT",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
}
# Demanded by that script when an advertised listener's *name* ends in SSL (it then also sets
# ssl.keystore.password and ssl.key.password, which a PEM keystore must not have).
KAFKA_IMAGE_SSL_DEMANDS = (
    "KAFKA_SSL_KEYSTORE_FILENAME",
    "KAFKA_SSL_KEY_CREDENTIALS",
    "KAFKA_SSL_KEYSTORE_CREDENTIALS",
)


def kafka_property(name: str) -> str | None:
    """The image's property for variable ``name``: ``_`` is ``.``, ``__`` is ``_``, ``___`` is ``-``."""
    if not name.startswith("KAFKA_") or name in KAFKA_IMAGE_EXCLUDES:
        return None
    # Go's ReplaceAllStringFunc, as re.sub, replaces non-overlapping matches from the left.
    dotted = re.sub(r"[^_]_[^_]", lambda m: m.group(0).replace("_", "."), name[len("KAFKA_") :])
    return dotted.replace("___", "-").replace("__", "_").lower()


def kafka_properties(env: dict[str, str]) -> dict[str, str]:
    """The server.properties the image writes from ``env``."""
    return {key: value for name, value in env.items() if (key := kafka_property(name)) and "=" not in value}


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
    if "SSL://" in env["KAFKA_ADVERTISED_LISTENERS"]:
        demanded = [key for key in KAFKA_IMAGE_SSL_DEMANDS if key not in env]
        if demanded:
            problems.append(
                f"kafka: a listener named *SSL makes the image's start script demand {', '.join(demanded)}"
                " and set keystore passwords: give the listener another name"
            )
    if re.search(r"SASL_\w*://", env["KAFKA_ADVERTISED_LISTENERS"]) and "KAFKA_OPTS" not in env:
        problems.append("kafka: a listener named SASL_* makes the image's start script demand KAFKA_OPTS")
    for key, value in env.items():
        if kafka_property(key) and "=" in value:
            problems.append(f"kafka: {key} holds '=', and the image leaves it out of server.properties")
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


ALERTMANAGER_PORT = 9093
ALERTMANAGER_CONFIG = "/etc/alertmanager/alertmanager.yml"
ALERTMANAGER_FILE = "grafana/alertmanager/alertmanager.yml"


def check_alertmanager(prom: dict[str, Any], doc: dict[str, Any], root: Path) -> list[str]:
    """Prometheus sends its alerts to the alertmanager service, which reads the generated routes."""
    svc = services(doc).get("alertmanager")
    if svc is None:
        return ["no alertmanager service"]
    problems = []
    config_path = ALERTMANAGER_CONFIG
    for word in svc.get("command") or []:
        if str(word).startswith("--config.file="):
            config_path = str(word).split("=", 1)[1]
    shown = resolve_in_container(svc, config_path, root)
    if shown != (root / ALERTMANAGER_FILE).resolve():
        problems.append(f"alertmanager: {config_path} is not mounted from {ALERTMANAGER_FILE}")
    targets = [
        str(target)
        for manager in (prom.get("alerting") or {}).get("alertmanagers") or []
        for config in manager.get("static_configs") or []
        for target in config.get("targets") or []
    ]
    if targets != [f"alertmanager:{ALERTMANAGER_PORT}"]:
        problems.append(f"prometheus: alerts go to {targets}, not alertmanager:{ALERTMANAGER_PORT}")
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


# ---------------------------------------------------------------- the secured variant


TLS_MODULE = "motwatch.kafka.broker.tls"
# The apache/kafka image runs Kafka as "appuser", the first user its alpine base's adduser makes.
KAFKA_UID = 1000
# The worker's settings that name files: in the secured stack, files on the certs volume.
FILE_SETTINGS = (
    "MOTWATCH_SASL_PASSWORD_FILE",
    "MOTWATCH_SSL_CAFILE",
    "MOTWATCH_SSL_CERTFILE",
    "MOTWATCH_SSL_KEYFILE",
)
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ROOT_USERS = ("0", "0:0", "root", "root:root")


def script_of(service: dict[str, Any]) -> str:
    """The shell script of a ``sh -c SCRIPT`` (or ``bash -ec``) command; any other command as one line."""
    command = service.get("command") or []
    if isinstance(command, str):
        return command
    words = [str(word) for word in command]
    if len(words) == 3 and words[0] in ("sh", "bash") and re.fullmatch(r"-[a-z]*c", words[1]):
        return words[2]
    return shlex.join(words)


def script_commands(script: str) -> list[list[str]]:
    """A script's commands as words, one a line (``\\``-continued lines joined, comments left out)."""
    lines = script.replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def options(words: list[str]) -> dict[str, list[str]]:
    """``--name value`` (or ``--name=value``) pairs, a name's values gathered; a bare flag maps to []."""
    out: dict[str, list[str]] = {}
    i = 0
    while i < len(words):
        name, equals, value = words[i].partition("=")
        if name.startswith("--"):
            values = out.setdefault(name, [])
            if equals:
                values.append(value)
            elif i + 1 < len(words) and not words[i + 1].startswith("--"):
                values.append(words[i + 1])
                i += 1
        i += 1
    return out


@dataclass(frozen=True)
class CertsRun:
    """What the ``certs`` service wrote, made here by running its command."""

    volume: str  # the named volume it writes
    target: str  # where that volume is in its container
    directory: Path  # the files, here
    owners: dict[str, str]  # its chowns: path in its container -> owner


def run_certs(doc: dict[str, Any], workdir: Path) -> CertsRun | str:
    """Run the ``certs`` service's ``python -m motwatch.kafka.broker.tls`` here; or what is wrong."""
    certs = services(doc).get("certs")
    if certs is None:
        return "no certs service"
    commands = script_commands(script_of(certs))
    run = next((words for words in commands if TLS_MODULE in words), None)
    if run is None:
        return f"certs: does not run python -m {TLS_MODULE}"
    args = options(run[run.index(TLS_MODULE) + 1 :])
    target, hosts = (args.get("--out") or [""])[-1], args.get("--host") or []
    volume = next((m.source for m in mounts_of(certs) if m.kind == "volume" and m.target == target), None)
    if volume is None or not hosts:
        return f"certs: does not write certificates for --host names into a named volume ({target!r})"
    directory = workdir / volume
    tls.main(["--out", str(directory), *(word for host in hosts for word in ("--host", host))])
    owners = {words[2]: words[1] for words in commands if len(words) == 3 and words[0] == "chown"}
    return CertsRun(volume, target, directory, owners)


def on_volume(service: dict[str, Any], path: str, run: CertsRun) -> Path | None:
    """The file here that ``path`` in ``service``'s container is, when it is on the certs volume."""
    wanted = PurePosixPath(path)
    for mount in mounts_of(service):
        target = PurePosixPath(mount.target)
        if mount.source == run.volume and (wanted == target or target in wanted.parents):
            return run.directory / wanted.relative_to(target)
    return None


def owner_of(run: CertsRun, file: Path) -> int | None:
    """The uid the certs service gives ``file`` (one of its files), if it chowns it."""
    owner = run.owners.get(str(PurePosixPath(run.target) / file.relative_to(run.directory).as_posix()), "")
    owner = owner.split(":")[0]
    return int(owner) if owner.isdigit() else None


def secure_worker_settings(
    doc: dict[str, Any], root: Path, run: CertsRun
) -> tuple[Settings | None, list[str]]:
    """The worker's settings as its container sees them: image env, compose env, certs-volume files here."""
    worker = services(doc)["worker"]
    build = build_of(worker, root)
    environ = {**(image_env(build[1]) if build and build[1].is_file() else {}), **env_of(worker)}
    problems = []
    for key in FILE_SETTINGS:
        if environ.get(key):
            shown = on_volume(worker, environ[key], run)
            if shown is None:
                problems.append(f"worker: {key}={environ[key]} is not on the {run.volume} volume")
            else:
                environ[key] = str(shown)
    config = root / "config" / "motwatch.toml"  # the image copies config/ into its working directory
    try:
        return load_settings(config if config.is_file() else None, environ=environ), problems
    except ConfigError as exc:
        return None, [*problems, f"worker: {exc}"]


def _certificate_problems(settings: Settings, keystore: Path | None, host: str) -> list[str]:
    """Whether the worker trusts the broker's keystore and finds ``host`` in it."""
    if keystore is None or not keystore.is_file():
        return ["kafka: its keystore is not a file the certs service writes"]
    cert = x509.load_pem_x509_certificates(keystore.read_bytes())[0]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns_names = names.get_values_for_type(x509.DNSName)
    problems = [] if host in dns_names else [f"kafka: its certificate covers {dns_names}, not {host!r}"]
    try:
        (ca,) = x509.load_pem_x509_certificates(Path(settings.ssl_cafile).read_bytes())
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, InvalidSignature):
        problems.append(f"worker: ssl_cafile {settings.ssl_cafile} did not sign the broker's certificate")
    if not settings.ssl_check_hostname:
        problems.append("worker: ssl_check_hostname is off")
    return problems


def check_secure(doc: dict[str, Any], root: Path, workdir: Path) -> list[str]:
    """The secured stack: the certificates, Kafka's SASL_SSL listener, the SCRAM user, the worker."""
    svcs = services(doc)
    missing = [name for name in ("certs", "kafka", "kafka-users", "worker") if name not in svcs]
    if missing:
        return [f"no {', '.join(missing)} service"]
    certs, kafka, users, worker = svcs["certs"], svcs["kafka"], svcs["kafka-users"], svcs["worker"]
    problems = []
    build = build_of(worker, root)
    if build is None or certs.get("image") != worker.get("image"):
        problems.append(f"certs: image {certs.get('image')!r} is not the one the worker builds")
    if users.get("image") != kafka.get("image"):
        problems.append(f"kafka-users: image {users.get('image')!r} is not Kafka's {kafka.get('image')!r}")
    for name in ("certs", "kafka-users"):
        if svcs[name].get("restart") not in (None, "no"):
            problems.append(
                f"{name}: restart {svcs[name]['restart']!r} runs a one-shot service again and again"
            )
        if str(svcs[name].get("user")) not in ROOT_USERS:
            problems.append(f"{name}: runs as {svcs[name].get('user')!r}, not root")
    waits = {
        "kafka": {"certs": "service_completed_successfully"},
        "kafka-users": {"kafka": "service_healthy", "certs": "service_completed_successfully"},
        "worker": {
            "kafka": "service_healthy",
            "certs": "service_completed_successfully",
            "kafka-users": "service_completed_successfully",
        },
    }
    for name, wanted in waits.items():
        for other, condition in wanted.items():
            if depends_of(svcs[name]).get(other) != condition:
                problems.append(f"{name}: does not wait for {other} ({condition})")
    run = run_certs(doc, workdir)
    if isinstance(run, str):
        return [*problems, run]
    if not any(m.source == run.volume and m.read_only for m in mounts_of(kafka)):
        problems.append(f"kafka: does not mount the {run.volume} volume read-only")

    # The worker: SASL_SSL with SCRAM, its password and CA from the certs volume.
    settings, found = secure_worker_settings(doc, root, run)
    problems += found
    if settings is None:
        return problems
    if (settings.security_protocol, settings.sasl_mechanism) != ("SASL_SSL", "SCRAM-SHA-512"):
        problems.append(
            f"worker: {settings.security_protocol} {settings.sasl_mechanism}, not SASL_SSL SCRAM-SHA-512"
        )
    if not settings.sasl_password_file or settings.sasl_password.get_secret_value():
        problems.append("worker: the password is not read from sasl_password_file")
    elif owner_of(run, Path(settings.sasl_password_file)) != (
        image_uid(build[1], worker.get("user")) if build else None
    ):
        problems.append("worker: the certs service does not give the password file to the worker's user")
    if not settings.ssl_cafile:
        problems.append("worker: no ssl_cafile, so it trusts only public CAs")

    # Kafka: the worker's address is a SASL_SSL listener with the keystore, SCRAM and the authorizer.
    env = env_of(kafka)
    props = kafka_properties(env)
    protocol_map = env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "")
    protocols = dict(item.split(":", 1) for item in protocol_map.split(",") if ":" in item)
    host, _, port = settings.broker.rpartition(":")
    advertised = _listeners(env.get("KAFKA_ADVERTISED_LISTENERS", ""))
    address = (host, int(port)) if port.isdigit() else None
    listener = next((name for name, there in advertised.items() if there == address), "")
    if protocols.get(listener) != "SASL_SSL":
        return [*problems, f"worker: broker {settings.broker} is not a SASL_SSL listener Kafka advertises"]
    prefix = f"listener.name.{listener.lower()}."
    keystore = props.get(prefix + "ssl.keystore.location", props.get("ssl.keystore.location"))
    if props.get(prefix + "ssl.keystore.type", props.get("ssl.keystore.type")) != "PEM":
        problems.append(f"kafka: listener {listener}'s keystore is not PEM")
    shown = on_volume(kafka, keystore, run) if keystore else None
    problems += _certificate_problems(settings, shown, host)
    if shown is not None and owner_of(run, shown) != KAFKA_UID:
        problems.append(
            f"kafka: the certs service does not give the keystore to Kafka's user (uid {KAFKA_UID})"
        )
    mechanisms = props.get(prefix + "sasl.enabled.mechanisms", props.get("sasl.enabled.mechanisms", "GSSAPI"))
    if settings.sasl_mechanism not in mechanisms.split(","):
        problems.append(f"kafka: {settings.sasl_mechanism} is not an enabled SASL mechanism")
    jaas = f"{prefix}{settings.sasl_mechanism.lower()}.sasl.jaas.config"
    if "ScramLoginModule required" not in props.get(jaas, ""):
        problems.append(f"kafka: no {jaas} with the ScramLoginModule")
    if props.get("authorizer.class.name") != STANDARD_AUTHORIZER:
        problems.append("kafka: the standard authorizer is not on")
    if "User:ANONYMOUS" not in props.get("super.users", "").split(";"):
        problems.append("kafka: User:ANONYMOUS (its PLAINTEXT listeners) is not a super user")

    # kafka-users: the worker's user, with the worker's password, and its rights; as a super user.
    script = script_of(users)
    read = re.search(r"(\w+)=\$\(cat\s+(\S+)\)", script)
    if read is None or on_volume(users, read.group(2), run) != Path(settings.sasl_password_file):
        problems.append("kafka-users: does not read the password file the worker reads")
    admin = {f"{h}:{p}" for name, (h, p) in advertised.items() if protocols.get(name) == "PLAINTEXT"}
    commands = script_commands(script)
    tools = {
        tool: next((words for words in commands if words[0].endswith(f"/{tool}.sh")), [])
        for tool in ("kafka-configs", "kafka-acls")
    }
    for tool, words in tools.items():
        if (options(words).get("--bootstrap-server") or [""])[-1] not in admin:
            problems.append(f"kafka-users: {tool} does not run against a PLAINTEXT listener of Kafka")
    user = options(tools["kafka-configs"])
    wanted = f"{settings.sasl_mechanism}=[password=${read.group(1) if read else ''}]"
    if "--alter" not in user or user.get("--entity-type") != ["users"]:
        problems.append("kafka-users: kafka-configs does not alter a user")
    if user.get("--entity-name") != [settings.sasl_username] or user.get("--add-config") != [wanted]:
        problems.append(f"kafka-users: does not add {settings.sasl_mechanism} for {settings.sasl_username}")
    acl = options(tools["kafka-acls"])
    if "--add" not in acl or acl.get("--allow-principal") != [f"User:{settings.sasl_username}"]:
        problems.append(f"kafka-users: grants nothing to User:{settings.sasl_username}")
    if acl.get("--resource-pattern-type") != ["prefixed"] or set(acl.get("--operation", [])) != {"All"}:
        problems.append("kafka-users: the ACLs are not All on prefixes")
    if not any(settings.topic_prefix.startswith(topic) for topic in acl.get("--topic", [])):
        problems.append(f"kafka-users: no ACL covers the topics under {settings.topic_prefix}")
    if not any(settings.worker_app_id.startswith(group) for group in acl.get("--group", [])):
        problems.append(f"kafka-users: no ACL covers the group {settings.worker_app_id}")
    return problems


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def secure_override() -> dict[str, Any]:
    return load_yaml(SECURE_FILE)


@pytest.fixture(scope="module")
def secure_compose(secure_override: dict[str, Any]) -> dict[str, Any]:
    return load_secure_compose(secure_override)


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


def test_compose_parses_to_the_five_services(compose: dict[str, Any]) -> None:
    assert {"kafka", "worker", "prometheus", "alertmanager", "grafana"} <= set(services(compose))


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
    # One Kafka node: 1 replica, asked for, or the broker's default (0) that compose sets to 1.
    default = env_of(services(compose)[host]).get("KAFKA_DEFAULT_REPLICATION_FACTOR", 1)
    assert (worker_settings.replication_factor or int(default)) == 1


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


def test_prometheus_alerts_reach_the_generated_routes(compose: dict[str, Any]) -> None:
    assert check_alertmanager(load_yaml(PROMETHEUS_FILE), compose, REPO) == []


def test_alertmanager_check_catches_a_wrong_mount_or_target(compose: dict[str, Any]) -> None:
    prom = load_yaml(PROMETHEUS_FILE)
    prom["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": ["alertmanager:9094"]}]
    assert any("not alertmanager:9093" in p for p in check_alertmanager(prom, compose, REPO))
    doc = copy.deepcopy(compose)
    doc["services"]["alertmanager"]["volumes"][0] = f"./config/prometheus.yml:{ALERTMANAGER_CONFIG}"
    problems = check_alertmanager(load_yaml(PROMETHEUS_FILE), doc, REPO)
    assert any("is not mounted from grafana/alertmanager" in p for p in problems), problems


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
    for name in ("motwatch", "streams", "agents", "tracker", "config"):
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


# ---------------------------------------------------------------- the secured variant


def test_merge_follows_composes_rules() -> None:
    base = {
        "services": {
            "a": {
                "image": "x",
                "environment": ["A=1", "B=2"],
                "ports": ["1:1"],
                "volumes": ["v:/data", "./c:/c:ro"],
                "command": ["one"],
                "depends_on": ["b"],
            },
            "b": {"image": "y"},
        },
        "volumes": {"v": None},
    }
    over = {
        "services": {
            "a": {
                "environment": {"B": "3", "C": "4"},
                "ports": ["2:2"],
                "volumes": ["w:/data"],
                "command": ["two"],
                "depends_on": {"c": {"condition": "service_completed_successfully"}},
            },
            "c": {"image": "z"},
        },
        "volumes": {"w": None},
    }
    before = copy.deepcopy(base)
    merged = merge_compose(base, over)
    a = merged["services"]["a"]
    assert a["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert a["ports"] == ["1:1", "2:2"]
    assert a["volumes"] == ["w:/data", "./c:/c:ro"]
    assert a["command"] == ["two"]
    assert depends_of(a) == {"b": "service_started", "c": "service_completed_successfully"}
    assert set(merged["services"]) == {"a", "b", "c"}
    assert merged["volumes"] == {"v": None, "w": None}
    assert base == before


def test_secure_override_adds_the_one_shot_services(
    compose: dict[str, Any], secure_compose: dict[str, Any]
) -> None:
    assert set(services(secure_compose)) == set(services(compose)) | {"certs", "kafka-users"}
    built = [name for name, svc in services(secure_compose).items() if svc.get("build") is not None]
    assert built == ["worker"]
    assert "certs" in (secure_compose.get("volumes") or {})


@pytest.mark.parametrize(
    "check", ["services", "mounts", "ports", "depends_on", "kafka", "prometheus", "grafana"]
)
def test_secure_stack_passes_the_structural_checks(secure_compose: dict[str, Any], check: str) -> None:
    assert _problems(secure_compose, check) == []


def test_secure_stack_fits_together(secure_compose: dict[str, Any], tmp_path: Path) -> None:
    assert check_secure(secure_compose, REPO, tmp_path) == []


def test_secure_worker_settings_as_its_container_sees_them(
    secure_compose: dict[str, Any], tmp_path: Path
) -> None:
    run = run_certs(secure_compose, tmp_path)
    assert isinstance(run, CertsRun), run
    assert (run.volume, run.target) == ("certs", "/certs")
    settings, problems = secure_worker_settings(secure_compose, REPO, run)
    assert problems == [] and settings is not None
    assert settings.security_protocol == "SASL_SSL"
    assert settings.sasl_mechanism == "SCRAM-SHA-512"
    assert settings.sasl_username == "motwatch"
    # Both files are the ones the certs service wrote, read through the worker's mount.
    assert Path(settings.sasl_password_file) == run.directory / tls.PASSWORD_FILE
    assert Path(settings.ssl_cafile) == run.directory / tls.CA_FILE
    assert len(settings.password()) >= 32
    # Its broker is Kafka's SASL_SSL listener, as Kafka advertises it.
    env = env_of(services(secure_compose)["kafka"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    sasl_ssl = [address for name, address in advertised.items() if protocols[name] == "SASL_SSL"]
    host, _, port = settings.broker.rpartition(":")
    assert sasl_ssl == [(host, int(port))] == [("kafka", 9095)]
    props = kafka_properties(env)
    assert props["listener.name.secure.scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    )
    assert props["listener.name.secure.ssl.keystore.location"] == "/etc/kafka/certs/broker.pem"


def _problems(doc: dict[str, Any], check: str, workdir: Path | None = None) -> list[str]:
    """What one check says of ``doc``; ``secure`` runs the certs service's command in ``workdir``."""
    return {
        "services": lambda: check_services(doc, REPO),
        "mounts": lambda: check_mounts(doc, REPO),
        "ports": lambda: check_ports(doc),
        "depends_on": lambda: check_depends_on(doc),
        "kafka": lambda: check_kafka(env_of(services(doc)["kafka"]), "kafka"),
        "prometheus": lambda: check_prometheus(load_yaml(PROMETHEUS_FILE), doc, REPO, Settings().web_port),
        "grafana": lambda: check_grafana(doc, REPO),
        "secure": lambda: check_secure(doc, REPO, _required(workdir)),
    }[check]()


def _required(workdir: Path | None) -> Path:
    assert workdir is not None, "the secure check writes certificates: give it a folder"
    return workdir


def _env(service: str, key: str, value: str | None) -> Any:
    def change(doc: dict[str, Any]) -> None:
        env = doc["services"][service]["environment"]
        if value is None:
            del env[key]
        else:
            env[key] = value

    return change


def _script(service: str, old: str, new: str) -> Any:
    def change(doc: dict[str, Any]) -> None:
        command = doc["services"][service]["command"]
        assert old in command[2], old
        command[2] = command[2].replace(old, new)

    return change


def _rename_listener(doc: dict[str, Any]) -> None:
    env = doc["services"]["kafka"]["environment"]
    for key in ("KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"):
        env[key] = env[key].replace("SECURE:", "SASL_SSL:")


@pytest.mark.parametrize(
    ("check", "change", "expected"),
    [
        ("secure", _env("worker", "MOTWATCH_BROKER", "kafka:9092"), "is not a SASL_SSL listener"),
        ("secure", _env("worker", "MOTWATCH_SECURITY_PROTOCOL", "SSL"), "not SASL_SSL SCRAM-SHA-512"),
        ("secure", _env("worker", "MOTWATCH_SSL_CAFILE", "/certs/ca.crt"), "ssl_cafile: no such file"),
        (
            "secure",
            _env("worker", "MOTWATCH_SASL_PASSWORD_FILE", "/run/secrets/password"),
            "is not on the certs volume",
        ),
        ("secure", _env("worker", "MOTWATCH_SSL_CAFILE", None), "no ssl_cafile"),
        ("secure", _script("certs", "--host kafka ", ""), "covers ['localhost'], not 'kafka'"),
        ("secure", _script("certs", "chown 10001", "chown 1000"), "password file to the worker's user"),
        ("secure", _script("certs", "chown 1000 ", "chown 10001 "), "keystore to Kafka's user"),
        (
            "secure",
            lambda d: d["services"]["certs"].__setitem__("image", "python:3.11-slim"),
            "the worker builds",
        ),
        (
            "secure",
            lambda d: d["services"]["certs"].__setitem__("restart", "unless-stopped"),
            "again and again",
        ),
        (
            "secure",
            lambda d: d["services"]["worker"]["depends_on"].pop("kafka-users"),
            "wait for kafka-users",
        ),
        (
            "secure",
            lambda d: d["services"]["kafka"].__setitem__("volumes", ["certs:/etc/kafka/certs"]),
            "read-only",
        ),
        (
            "secure",
            _env("kafka", "KAFKA_LISTENER_NAME_SECURE_SSL_KEYSTORE_LOCATION", "/etc/kafka/certs/kafka.pem"),
            "keystore is not a file the certs service writes",
        ),
        (
            "secure",
            lambda d: d["services"]["kafka"]["environment"].__setitem__(
                "KAFKA_LISTENER_NAME_SECURE_SCRAM_SHA_512_SASL_JAAS_CONFIG",
                d["services"]["kafka"]["environment"].pop(
                    "KAFKA_LISTENER_NAME_SECURE_SCRAM___SHA___512_SASL_JAAS_CONFIG"
                ),
            ),
            "no listener.name.secure.scram-sha-512.sasl.jaas.config",
        ),
        ("secure", _env("kafka", "KAFKA_SUPER_USERS", "User:motwatch"), "User:ANONYMOUS"),
        ("secure", _script("kafka-users", "--entity-name motwatch", "--entity-name worker"), "for motwatch"),
        ("secure", _script("kafka-users", "cat /certs/password", "cat /certs/ca.pem"), "password file"),
        ("secure", _script("kafka-users", "kafka:9092 --add", "kafka:9095 --add"), "kafka-acls does not run"),
        ("secure", _script("kafka-users", "--topic motwatch.", "--topic sandbox."), "topics under motwatch."),
        (
            "secure",
            _script("kafka-users", "--group motwatch.", "--group motwatch-"),
            "group motwatch.motwatch",
        ),
        ("kafka", _rename_listener, "give the listener another name"),
        ("kafka", _env("kafka", "KAFKA_SSL_PRINCIPAL_MAPPING_RULES", "RULE:^CN=(.*)$/$1/"), "holds '='"),
        ("mounts", lambda d: d.pop("volumes"), "'certs' is not declared"),
        (
            "ports",
            lambda d: d["services"]["kafka"].__setitem__("ports", ["127.0.0.1:9094:9095"]),
            "also published",
        ),
        (
            "depends_on",
            lambda d: d["services"]["worker"]["depends_on"].__setitem__("kafka-user", {}),
            "undefined service 'kafka-user'",
        ),
    ],
)
def test_checks_catch_a_broken_secure_override(
    secure_override: dict[str, Any], tmp_path: Path, check: str, change: Any, expected: str
) -> None:
    override = copy.deepcopy(secure_override)
    change(override)
    problems = _problems(load_secure_compose(override), check, tmp_path)
    assert any(expected in problem for problem in problems), problems
