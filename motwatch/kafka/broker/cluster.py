"""Run a local Kafka cluster: N KRaft nodes on 127.0.0.1, one JVM per node, from the same jars.

Every node is broker and controller, and the controller quorum is all of
them, so the cluster keeps working while a majority runs. Topics default to
3 replicas (2 with two nodes) and need 2 in sync (1 with two nodes): what a
production cluster does, for tests that kill and restart brokers.

Each node's ports stay the same for the cluster's life, so a node stopped or
killed comes back on the same port with the same data, and the bootstrap
list (:attr:`KafkaCluster.bootstrap`) stays valid throughout.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from .jars import BrokerError, Cancel, check_java, ensure_jars
from .server import HOST, KafkaBroker, _cluster_id, _free_ports, _log_tail, _port_taken

NODE_HEAP_MB = 384
_T = TypeVar("_T")

# Strong references, as for single brokers: a running cluster is stopped before the interpreter exits.
_clusters: set[KafkaCluster] = set()


@atexit.register
def _stop_clusters() -> None:
    """Stop clusters a program forgot to stop (before the single-broker hook, all nodes at once)."""
    for cluster in list(_clusters):
        with suppress(Exception):  # best effort at interpreter exit
            cluster.stop(timeout=10)


class ClusterNode(KafkaBroker):
    """One node of a :class:`KafkaCluster`: broker and controller, on ports fixed at creation."""

    def __init__(
        self, cluster: KafkaCluster, node_id: int, port: int, controller_port: int, workdir: Path
    ) -> None:
        super().__init__(port, heap_mb=cluster.heap_mb, data_dir=workdir)
        self.node_id = node_id
        self.port = port
        self.controller_port = controller_port
        self._cluster = cluster

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, whether the node runs or not."""
        return f"{HOST}:{self.port}"

    def kill(self) -> None:
        """SIGKILL the JVM (no clean shutdown) and reap it; its data stays."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                raise BrokerError(f"Kafka JVM (pid {proc.pid}) did not exit after SIGKILL") from None
        self._cleanup()

    def _choose_ports(self) -> None:
        pass  # fixed in __init__: the quorum and the clients know them

    def _storage_cluster_id(self) -> str:
        return self._cluster.cluster_id

    def _settings(self, data: Path) -> dict[str, str]:
        settings = super()._settings(data)
        settings.update({"node.id": str(self.node_id), **self._cluster._shared_settings()})
        return settings

    def __repr__(self) -> str:
        state = f"running, pid {self.pid}" if self.running else "stopped"
        return f"<ClusterNode {self.node_id} at {self.address}, {state}>"


class KafkaCluster:
    """``nodes`` local Kafka nodes (KRaft, each broker and controller) on 127.0.0.1, one JVM each.

    Each JVM gets ``heap_mb`` (default 384 MiB). ``port=0`` picks free ports;
    another gives the nodes ``port``, ``port+1``, … ``data_dir`` keeps every
    node's config, log and data (``<data_dir>/node-<id>``) across runs;
    without it everything goes to a temporary directory that :meth:`stop`
    removes. Use as a context manager, or call start()/stop().
    """

    def __init__(
        self,
        nodes: int = 3,
        *,
        port: int = 0,
        heap_mb: int = NODE_HEAP_MB,
        data_dir: str | Path | None = None,
    ) -> None:
        if nodes < 1:
            raise BrokerError(f"bad node count {nodes}: a cluster needs at least 1 node")
        if port != 0 and not 1 <= port <= 65536 - nodes:
            raise BrokerError(f"bad port {port}: nodes take {port}..{port + nodes - 1}, use 1-65535")
        self.size = nodes
        self.requested_port = port
        self.heap_mb = heap_mb
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.workdir: Path | None = None
        self.cluster_id = ""
        self.bootstrap: str | None = None
        self._nodes: list[ClusterNode] = []

    # --- what clients and tests see -----------------------------------------------------------

    @property
    def nodes(self) -> list[ClusterNode]:
        """Every node, by id (1..N); empty before the first start."""
        return list(self._nodes)

    def node(self, node_id: int) -> ClusterNode:
        for node in self._nodes:
            if node.node_id == node_id:
                return node
        raise BrokerError(f"no node {node_id} in this cluster (nodes: {[n.node_id for n in self._nodes]})")

    @property
    def running(self) -> bool:
        """True while every node's JVM runs."""
        return bool(self._nodes) and all(node.running for node in self._nodes)

    @property
    def replication_factor(self) -> int:
        """The cluster's ``default.replication.factor``: 3, or the node count if fewer."""
        return min(3, self.size)

    @property
    def min_insync_replicas(self) -> int:
        """The cluster's ``min.insync.replicas``: one less than the replication factor, at least 1."""
        return max(1, self.replication_factor - 1)

    # --- the whole cluster --------------------------------------------------------------------

    def start(self, timeout: float = 180.0, *, cancel: Cancel | None = None) -> str:
        """Start every node; return the bootstrap list once each accepts connections and sees all N.

        Fetches the jars first if needed (not counted in ``timeout``). Raises
        BrokerError, naming the node and its last log lines, if a JVM exits or
        the cluster is not ready in time; nothing is left running then.
        """
        if self.bootstrap is not None:
            raise BrokerError(f"cluster already started at {self.bootstrap}")
        java = check_java()
        lib = ensure_jars(cancel=cancel)
        if self.requested_port:
            ports = range(self.requested_port, self.requested_port + self.size)
            taken = [port for port in ports if _port_taken(port)]
            if taken:
                raise BrokerError(
                    f"port {taken[0]} on {HOST} is already in use (another broker running?); "
                    "pick another with --port"
                )
        self._make_workdir()
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            self._make_nodes()
            try:
                self._launch(self._nodes, java, lib, timeout, cancel)
                break
            except BrokerError as exc:
                self._kill_all()
                port_race = "Address already in use" in str(exc) and self._fresh()
                if not port_race or attempt == attempts - 1:
                    self._discard()
                    raise
                self._wipe()  # a port picked as free was taken meanwhile: fresh nodes, new ports
        _clusters.add(self)
        self.bootstrap = ",".join(node.address for node in self._nodes)
        return self.bootstrap

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node (SIGTERM all, SIGKILL after ``timeout``); drop a temporary directory.

        Afterwards every JVM is gone and reaped. Safe to call more than once.
        """
        try:
            self._halt(self._nodes, timeout)
        finally:
            self._discard()

    def stop_all(self, timeout: float = 30.0) -> None:
        """Stop every node like :meth:`stop`, keeping their data and ports for :meth:`start_all`."""
        self._require_started()
        self._halt(self._nodes, timeout)

    def start_all(self, timeout: float = 180.0) -> None:
        """Start every stopped node on its data and port; return once the cluster is whole again."""
        self._require_started()
        stopped = [node for node in self._nodes if not node.running]
        self._restart(stopped, timeout)

    # --- one node -----------------------------------------------------------------------------

    def kill(self, node_id: int) -> None:
        """SIGKILL one node's JVM, as a crash would; it is reaped before this returns."""
        self._require_started()
        self.node(node_id).kill()

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """Stop one node cleanly (SIGTERM: it hands over its leaderships first), SIGKILL after ``timeout``."""
        self._require_started()
        self._halt([self.node(node_id)], timeout)

    def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        """Start a stopped node on its data and port; return once it accepts and every node sees it."""
        self._require_started()
        node = self.node(node_id)
        if node.running:
            raise BrokerError(f"node {node_id} is already running (pid {node.pid})")
        self._restart([node], timeout)

    async def leader_of(self, topic: str, partition: int = 0) -> int | None:
        """The node leading ``topic``'s ``partition`` in the cluster's metadata; None while it has none."""
        leader = (await self._partition_metadata(topic, partition))["leader"]
        return int(leader) if leader >= 0 else None

    async def in_sync_replicas(self, topic: str, partition: int = 0) -> set[int]:
        """The nodes in ``topic``'s ``partition``'s ISR, as the cluster's metadata has it."""
        return set((await self._partition_metadata(topic, partition))["isr"])

    # --- how -----------------------------------------------------------------------------------

    def _shared_settings(self) -> dict[str, str]:
        """What every node's server.properties says beyond the single broker's (its node.id aside)."""
        voters = ",".join(f"{node.node_id}@{HOST}:{node.controller_port}" for node in self._nodes)
        replicas, in_sync = str(self.replication_factor), str(self.min_insync_replicas)
        return {
            "controller.quorum.voters": voters,
            "default.replication.factor": replicas,
            "min.insync.replicas": in_sync,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": in_sync,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": in_sync,
        }

    def _make_workdir(self) -> None:
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.workdir = self.data_dir.resolve()
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="motwatch-kafka-cluster-"))
        # A data_dir formatted before keeps its cluster id: a node formatted anew must match it.
        self.cluster_id = self._formatted_cluster_id() or _cluster_id()

    def _formatted_cluster_id(self) -> str | None:
        assert self.workdir is not None
        for meta in sorted(self.workdir.glob("node-*/data/meta.properties")):
            for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "cluster.id" and value.strip():
                    return value.strip()
        return None

    def _make_nodes(self) -> None:
        """The nodes, with their ports: ``port``, ``port+1``, … or free ones; controllers on free ones."""
        assert self.workdir is not None
        if self.requested_port:
            ports = list(range(self.requested_port, self.requested_port + self.size))
            controllers = [p for p in _free_ports(2 * self.size) if p not in ports][: self.size]
            while len(controllers) < self.size:  # only if the kernel hands out those ports again
                controllers += [p for p in _free_ports(1) if p not in ports and p not in controllers]
        else:
            free = _free_ports(2 * self.size)
            ports, controllers = free[: self.size], free[self.size :]
        self._nodes = [
            ClusterNode(self, node_id, port, controller, self.workdir / f"node-{node_id}")
            for node_id, port, controller in zip(range(1, self.size + 1), ports, controllers, strict=True)
        ]

    def _launch(
        self, nodes: list[ClusterNode], java: str, lib: Path, timeout: float, cancel: Cancel | None
    ) -> None:
        """Spawn ``nodes`` together (a quorum needs a majority up before any broker is ready), then wait.

        Ready: each accepts connections, and every running node's metadata lists every running node.
        """
        deadline = time.monotonic() + timeout
        for node in nodes:
            try:
                node._spawn(java, lib, deadline)
            except BrokerError as exc:
                raise BrokerError(f"node {node.node_id}: {exc}") from None
        waiting = list(nodes)
        while True:
            for node in list(waiting):
                try:
                    if node._poll_ready():
                        waiting.remove(node)
                except BrokerError as exc:
                    raise BrokerError(f"node {node.node_id}: {exc}") from None
            if not waiting and self._whole():
                return
            if cancel is not None and cancel.is_set():
                raise BrokerError("cluster start interrupted")
            if time.monotonic() > deadline:
                if waiting:
                    late = waiting[0]
                    raise BrokerError(
                        f"node {late.node_id} not ready within {timeout:.0f}s: {_log_tail(late.log_path)}"
                    )
                raise BrokerError(f"the nodes did not all see each other within {timeout:.0f}s")
            time.sleep(0.1)

    def _whole(self) -> bool:
        """True when every running node's metadata lists exactly the running nodes."""
        running = [node for node in self._nodes if node.running]
        expected = {node.node_id for node in running}
        views = _run(lambda: _broker_ids([node.address for node in running]))
        return all(view == expected for view in views)

    def _restart(self, nodes: list[ClusterNode], timeout: float) -> None:
        if not nodes:
            return
        java = check_java()
        lib = ensure_jars()
        try:
            self._launch(nodes, java, lib, timeout, None)
        except BrokerError:
            for node in nodes:
                node.kill()
            raise

    def _halt(self, nodes: Iterable[ClusterNode], timeout: float) -> None:
        """SIGTERM every running one of ``nodes`` at once (so the quorum lasts through their controlled
        shutdowns), wait up to ``timeout`` in all, SIGKILL those still there."""
        procs = [(node, node._proc) for node in nodes if node._proc is not None and node.running]
        for _node, proc in procs:
            assert proc is not None
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node, proc in procs:
            assert proc is not None
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                node.kill()
            node._cleanup()

    def _kill_all(self) -> None:
        for node in self._nodes:
            node.kill()

    def _fresh(self) -> bool:
        """True when this cluster chose its own ports and formatted its nodes itself (a new cluster)."""
        return not self.requested_port and self.data_dir is None

    def _wipe(self) -> None:
        for node in self._nodes:
            if node.workdir is not None:
                shutil.rmtree(node.workdir, ignore_errors=True)

    def _discard(self) -> None:
        """Forget the nodes' processes; drop the temporary directory (a data_dir stays)."""
        self.bootstrap = None
        _clusters.discard(self)
        if self.data_dir is None and self.workdir is not None and not any(n.running for n in self._nodes):
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _require_started(self) -> None:
        if self.bootstrap is None:
            raise BrokerError("the cluster is not started")

    async def _partition_metadata(self, topic: str, partition: int) -> dict[str, Any]:
        """The partition's state in the metadata of the first running node that answers.

        Asked of one node at a time: a client bootstrapped from the whole list
        may send its request to a node that just died, still in its metadata.
        """
        self._require_started()
        for node in self._nodes:
            if not node.running:
                continue
            metadata = await _metadata(node.address, all_topics=True)
            if metadata is None:
                continue
            for entry in metadata["topics"]:
                if entry["topic"] == topic and entry["error_code"] == 0:
                    for state in entry["partitions"]:
                        if state["partition"] == partition:
                            return dict(state)
            raise BrokerError(f"no partition {partition} of topic {topic} in the cluster's metadata")
        raise BrokerError("no node of the cluster answers")

    def __enter__(self) -> Self:
        if self.bootstrap is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _exit_report(self) -> str | None:
        """None while every node runs; else one line naming the first that ended and how."""
        for node in self._nodes:
            report = node._exit_report()
            if report is not None:
                return f"node {node.node_id}: {report}"
        return None

    def __repr__(self) -> str:
        state = f"at {self.bootstrap}" if self.bootstrap is not None else "stopped"
        return f"<KafkaCluster of {self.size} nodes {state}>"


async def _metadata(address: str, *, all_topics: bool) -> dict[str, Any] | None:
    """One node's own metadata (brokers; every topic too if ``all_topics``); None if it does not answer.

    Every topic or none: naming a topic would let a broker create it.
    """
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.metadata import MetadataRequest

    host, _, port = address.rpartition(":")
    try:
        conn = await create_conn(host, int(port), client_id="motwatch-cluster", request_timeout_ms=5_000)
    except (KafkaError, OSError, TimeoutError):
        return None
    try:
        response = await conn.send(MetadataRequest(None if all_topics else [], False))
        return dict(response.to_object())
    except (KafkaError, OSError, TimeoutError):
        return None
    finally:
        conn.close()


async def _broker_ids(addresses: list[str]) -> list[set[int]]:
    """The broker ids each address's own metadata lists (empty for one that does not answer)."""
    views = []
    for address in addresses:
        metadata = await _metadata(address, all_topics=False)
        views.append({broker["node_id"] for broker in metadata["brokers"]} if metadata else set())
    return views


def _run(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, also when called inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


__all__ = ["NODE_HEAP_MB", "ClusterNode", "KafkaCluster"]
