"""Run a single-node Apache Kafka broker (KRaft, broker+controller) as a child JVM.

Development and tests need a real broker, and there is no Docker here: the
broker runs straight from the Maven Central jars that :func:`ensure_jars`
caches. Everything lives in one working directory (config, log, data), a
temporary one unless ``data_dir`` is given.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from importlib import resources
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Self

from .jars import KAFKA_VERSION, BrokerError, Cancel, check_java, ensure_jars

if TYPE_CHECKING:
    from .secure import SecureKafkaBroker

HOST = "127.0.0.1"  # not "localhost": avoids clients trying IPv6 first
_PR_SET_PDEATHSIG = 1


def _free_ports(count: int) -> list[int]:
    """Ports the kernel considers free right now (all held open together, so distinct)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _port_taken(port: int) -> bool:
    """True when something already listens on ``port`` (binding it would fail).

    With SO_REUSEADDR, as the JVM binds: connections of a broker that just
    stopped, left in TIME_WAIT, do not count.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def _accepts(port: int) -> bool:
    """True once a TCP connect to ``HOST:port`` succeeds."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _cluster_id() -> str:
    """A fresh cluster id in Kafka's own format (22 chars of URL-safe base64 of a UUID).

    Like Kafka, never one starting with "-": the storage tool would parse it as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _log_tail(path: Path | None, lines: int = 6) -> str:
    """The last meaningful log lines as one line (stack frames left out)."""
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(cannot read {path})"
    keep = [
        line.strip()[:300]
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("at ") and not line.lstrip().startswith("...")
    ]
    return " | ".join(keep[-lines:]) or "(log is empty)"


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn that makes Linux SIGKILL the JVM if this process dies.

    Linux ties PR_SET_PDEATHSIG to the *thread* that forked, so it is only used
    from the main thread (a worker thread ending must not kill the broker).
    Elsewhere, or off Linux, we rely on stop() and the atexit hook.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # parent died before the prctl took effect
            os._exit(1)

    return preexec


# Strong references: a running broker must not be garbage-collected before it is stopped.
_running: set[KafkaBroker] = set()


@atexit.register
def _stop_all() -> None:
    """Stop brokers a program forgot to stop, so a normal exit leaves no JVM behind."""
    for broker in list(_running):
        with suppress(Exception):  # best effort at interpreter exit
            broker.stop(timeout=10)


class _PortRace(Exception):
    """Someone took the port we picked before the JVM bound it; pick again."""


class KafkaBroker:
    """One local Kafka broker+controller JVM on 127.0.0.1.

    ``port=0`` picks a free port. ``data_dir`` keeps config, log and data
    across runs; without it everything goes to a temporary directory that
    :meth:`stop` removes. Use as a context manager, or call start()/stop().
    """

    def __init__(
        self, port: int = 0, *, heap_mb: int = 512, data_dir: str | os.PathLike[str] | None = None
    ) -> None:
        if not 0 <= port <= 65535:
            raise BrokerError(f"bad port {port}: use 1-65535, or 0 for any free port")
        self.requested_port = port
        self.heap_mb = heap_mb
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.port: int | None = None
        self.controller_port: int | None = None
        self.bootstrap: str | None = None
        self.workdir: Path | None = None
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The JVM's process id (kept after stop, for checking it is gone)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0, *, cancel: Cancel | None = None) -> str:
        """Start the broker and return its bootstrap address once it accepts connections.

        Fetches the jars first if needed (not counted in ``timeout``). Raises
        BrokerError, with the last log lines, if the JVM exits or is not ready
        in time; nothing is left running then.
        """
        if self.running:
            raise BrokerError(f"broker already running at {self.bootstrap}")
        java = check_java()
        lib = ensure_jars(cancel=cancel)
        if self.requested_port and _port_taken(self.requested_port):
            raise BrokerError(
                f"port {self.requested_port} on {HOST} is already in use "
                "(another broker running?); pick another with --port"
            )
        attempts = 3 if self.requested_port == 0 else 1
        for attempt in range(attempts):
            try:
                return self._start_once(java, lib, timeout, cancel)
            except _PortRace:
                tail = _log_tail(self.log_path)
                self._cleanup()
                if attempt == attempts - 1:
                    raise BrokerError(f"could not bind a free port after {attempts} tries: {tail}") from None
        raise AssertionError("unreachable")

    def _prepare(self) -> tuple[Path, Path]:
        """Create the working directory, server.properties and logging config."""
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.workdir = self.data_dir.resolve()
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="motwatch-kafka-"))
        self._choose_ports()
        self.log_path = self.workdir / "broker.log"
        log4j = self.workdir / "log4j2.properties"
        log4j.write_bytes(resources.files(__package__).joinpath("log4j2.properties").read_bytes())
        props = self.workdir / "server.properties"
        props.write_text(self._server_properties(self.workdir / "data"), encoding="utf-8")
        return props, log4j

    def _choose_ports(self) -> None:
        """The listener's port (the requested one, else a free one) and the controller's."""
        if self.requested_port:
            self.port, self.controller_port = self.requested_port, _free_ports(1)[0]
            while self.controller_port == self.port:
                self.controller_port = _free_ports(1)[0]
        else:
            self.port, self.controller_port = _free_ports(2)

    def _server_properties(self, data: Path) -> str:
        return "".join(f"{key}={value}\n" for key, value in self._settings(data).items())

    def _settings(self, data: Path) -> dict[str, str]:
        """server.properties, key by key."""
        # Single node: internal topics must not ask for 3 replicas; the cleaner's
        # 128 MiB default dedupe buffer would eat a small heap. No time retention:
        # simulated and replayed records keep their own, older timestamps, and the
        # first retention pass (30 s after start, then every 5 minutes) would delete
        # them under a running worker (which then skips to the new log start).
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": "2097152",
            "log.retention.ms": "-1",
            "num.network.threads": "2",
            "num.io.threads": "2",
        }
        return settings

    def _format_options(self) -> list[str]:
        """More options of the storage tool's ``format`` (e.g. users to add)."""
        return []

    def _storage_cluster_id(self) -> str:
        """The cluster id the storage is formatted with: a fresh one for a broker of its own."""
        return _cluster_id()

    def _client_ports(self) -> list[int]:
        """The ports clients connect to: the broker is ready once they all accept."""
        assert self.port is not None
        return [self.port]

    def _start_once(self, java: str, lib: Path, timeout: float, cancel: Cancel | None) -> str:
        deadline = time.monotonic() + timeout
        self._spawn(java, lib, deadline)
        while not self._poll_ready():
            if cancel is not None and cancel.is_set():
                self.stop()
                raise BrokerError("broker start interrupted")
            if time.monotonic() > deadline:
                tail = _log_tail(self.log_path)
                self.stop()
                raise BrokerError(f"Kafka broker not ready within {timeout:.0f}s: {tail}")
            time.sleep(0.05)
        assert self.bootstrap is not None
        return self.bootstrap

    def _spawn(self, java: str, lib: Path, deadline: float) -> None:
        """Write the config, format the storage if it is new, and launch the JVM (not waiting for it)."""
        props, log4j = self._prepare()
        assert self.workdir is not None and self.log_path is not None and self.port is not None
        classpath = f"{lib}/*"  # expanded by Java, not a shell
        logging = f"-Dlog4j2.configurationFile={log4j}"
        with open(self.log_path, "wb") as log:
            if not (self.workdir / "data" / "meta.properties").exists():
                # A short-lived tool: the quick JIT tier and serial GC start fastest.
                fmt = [java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", logging]
                fmt += ["-cp", classpath, "kafka.tools.StorageTool"]
                fmt += ["format", "-t", self._storage_cluster_id(), "-c", str(props)]
                fmt += self._format_options()
                try:
                    done = subprocess.run(
                        fmt,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        timeout=max(deadline - time.monotonic(), 5),
                        check=False,
                    )
                except subprocess.TimeoutExpired:
                    tail = _log_tail(self.log_path)
                    self._cleanup()
                    raise BrokerError(f"formatting Kafka storage timed out: {tail}") from None
                if done.returncode != 0:
                    tail = _log_tail(self.log_path)
                    self._cleanup()
                    raise BrokerError(f"formatting Kafka storage failed: {tail}")
            command = [
                java,
                f"-Xms{self.heap_mb}m",
                f"-Xmx{self.heap_mb}m",
                "-XX:+UseG1GC",
                "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true",
                logging,
                "-cp",
                classpath,
                "kafka.Kafka",
                str(props),
            ]
            # Own session: Ctrl-C in a terminal reaches only us, and we decide
            # how the broker stops.
            self._proc = subprocess.Popen(
                command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),
            )
        _running.add(self)

    def _poll_ready(self) -> bool:
        """True (and :attr:`bootstrap` set) once every client port accepts connections.

        Raises BrokerError with the log's last lines, the JVM gone and
        forgotten, if it exited (_PortRace when it lost a port it picked).
        """
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            tail = _log_tail(self.log_path)
            if self.requested_port == 0 and "Address already in use" in tail:
                raise _PortRace()
            self._cleanup()
            raise BrokerError(f"Kafka broker exited with code {code} while starting: {tail}")
        if all(_accepts(port) for port in self._client_ports()) and self._proc.poll() is None:
            self.bootstrap = f"{HOST}:{self.port}"
            return True
        return False

    def _exit_report(self) -> str | None:
        """None while the JVM runs; else one line saying how it ended."""
        if self.running:
            return None
        code = self._proc.returncode if self._proc is not None else None
        return f"Kafka broker exited unexpectedly (code {code}): {_log_tail(self.log_path)}"

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the JVM (Kafka's clean shutdown), SIGKILL it after ``timeout``.

        Afterwards the process is gone and reaped; the temporary directory is
        removed. Safe to call more than once.
        """
        proc = self._proc
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # Popen never signals a reaped pid
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        raise BrokerError(
                            f"Kafka JVM (pid {proc.pid}) did not exit even after SIGKILL"
                        ) from None
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        """Forget the process once it is gone, and drop a temporary working directory."""
        if self._proc is None or self._proc.poll() is not None:
            _running.discard(self)
        self.bootstrap = None
        if self.data_dir is None and self.workdir is not None and not self.running:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at {self.bootstrap}, pid {self.pid}" if self.running else "stopped"
        return f"<KafkaBroker {state}>"


def run_foreground(
    port: int,
    *,
    heap_mb: int | None = None,
    data_dir: str | None = None,
    secure: bool = False,
    grant_all: bool = False,
    nodes: int = 1,
) -> int:
    """``motwatch broker``: run a broker (or a cluster) until SIGINT/SIGTERM/SIGHUP, then stop it cleanly.

    Prints ``ready <bootstrap>`` on stdout once clients can connect, so scripts
    can wait for that line. ``secure`` runs a :class:`SecureKafkaBroker`; then
    more lines follow at once (:func:`secure_lines`). ``grant_all`` gives its
    user every right. ``nodes`` > 1 runs a :class:`KafkaCluster` (``port``:
    its first node's, the others next to it; 0: free ports) and the line
    lists every node, comma separated. ``heap_mb``: per JVM (default 512 MiB
    for one node, 384 MiB per cluster node). Must be called from the main
    thread (it installs signal handlers). Returns 0 after a requested stop;
    raises BrokerError.
    """
    from .cluster import NODE_HEAP_MB, KafkaCluster
    from .secure import SecureKafkaBroker  # not needed (nor its imports) by a plain broker

    if nodes < 1:
        raise BrokerError(f"bad node count {nodes}: use 1 or more")
    if not secure and grant_all:
        raise BrokerError("--grant-all goes with --secure (a plain broker has no users)")
    if secure and data_dir is not None:
        raise BrokerError("--secure keeps its users and certificates in a temporary folder: no --data-dir")
    if secure and nodes > 1:
        raise BrokerError("--secure runs a single node: leave out --nodes")
    requested: list[int] = []

    class _Flag:
        # A plain attribute, not threading.Event: a signal handler that takes a
        # lock the interrupted code already holds would deadlock.
        def is_set(self) -> bool:
            return bool(requested)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        requested.append(signum)

    stop_flag = _Flag()
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    broker: KafkaBroker | KafkaCluster
    if nodes > 1:
        broker = KafkaCluster(nodes, port=port, heap_mb=heap_mb or NODE_HEAP_MB, data_dir=data_dir)
    elif secure:
        broker = SecureKafkaBroker(port, heap_mb=heap_mb or 512)
    else:
        broker = KafkaBroker(port, heap_mb=heap_mb or 512, data_dir=data_dir)
    try:
        try:
            ensure_jars(announce=_to_stderr, cancel=stop_flag)
            bootstrap = broker.start(cancel=stop_flag)
        except BrokerError:
            if stop_flag.is_set():
                _to_stderr("stopped before the broker was ready")
                return 0
            raise
        if isinstance(broker, SecureKafkaBroker):
            if grant_all:
                asyncio.run(broker.grant_all())
            print("".join(f"{line}\n" for line in secure_lines(broker)), end="", flush=True)
            rights = "every right" if grant_all else "no rights until ACLs grant them"
            _to_stderr(
                f"SCRAM user {broker.username} ({broker.principal}, {rights}); "
                "the PLAINTEXT listener is a super user"
            )
        else:
            print(f"ready {bootstrap}", flush=True)
        if isinstance(broker, KafkaCluster):
            for node in broker.nodes:
                _to_stderr(
                    f"Kafka {KAFKA_VERSION} node {node.node_id} pid {node.pid} at {node.address}, "
                    f"log {node.log_path}"
                )
            _to_stderr(
                f"{nodes} nodes, topics default to {broker.replication_factor} replicas, "
                f"{broker.min_insync_replicas} in sync; Ctrl-C to stop"
            )
        else:
            _to_stderr(
                f"Kafka {KAFKA_VERSION} broker pid {broker.pid} at {bootstrap}, "
                f"log {broker.log_path}; Ctrl-C to stop"
            )
        while not stop_flag.is_set():
            time.sleep(0.2)
            problem = broker._exit_report()
            if problem is not None and not stop_flag.is_set():
                raise BrokerError(problem)
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def secure_lines(broker: SecureKafkaBroker) -> list[str]:
    """What ``motwatch broker --secure`` prints: each listener, then the files clients need.

    The first line is the plain broker's ``ready <bootstrap>`` (PLAINTEXT), so
    scripts waiting for it work unchanged. The password is only in the
    credentials file.
    """
    return [
        f"ready {broker.bootstrap}",
        f"ready SSL {broker.ssl_bootstrap}",
        f"ready SASL_SSL {broker.sasl_ssl_bootstrap}",
        f"ca {broker.ca_file}",
        f"client-cert {broker.client_cert_file}",
        f"client-key {broker.client_key_file}",
        f"credentials {broker.credentials_file}",
    ]


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
