"""A three-node KRaft cluster: replication by default, a leader killed, every node stopped and back.

One cluster (``KafkaCluster(3)``) is started once for the module; the tests
run in file order, the ones that stop nodes last. ``motwatch broker --nodes
3`` runs before it (no two clusters at once on this small machine).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from motwatch.commands.worker import needed_topics, prepare_topics
from motwatch.kafka.admin import create_topics
from motwatch.kafka.broker import BrokerError, KafkaCluster, ensure_jars
from motwatch.settings import Settings
from tests.workers import children, gone, read_topic, readline_within, run_cli, wait_for, wait_until

# Its clusters run beside the rest of make test, in a pytest session of their own.
pytestmark = pytest.mark.background

NODES = 3


def _topic() -> str:
    return f"cluster.{uuid.uuid4().hex[:8]}"


# --- motwatch broker --nodes ------------------------------------------------------------------


def test_broker_nodes_3_prints_one_ready_line_and_stops_every_jvm_on_sigterm(tmp_path: Path) -> None:
    ensure_jars()  # a fetch, if any, is not counted against the deadlines below
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "motwatch.cli", "broker", "--nodes", "3", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            line = readline_within(proc, timeout=180).decode()
            assert line.startswith("ready ") and line.endswith("\n"), line
            addresses = line.split()[1].split(",")
            assert len(addresses) == NODES and len(set(addresses)) == NODES, line
            assert all(address.startswith("127.0.0.1:") for address in addresses), line
            jvms = children(proc.pid)
            assert len(jvms) == NODES, jvms

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=90) == 0
            assert proc.stdout is not None
            assert proc.stdout.read() == b""  # nothing after the one ready line
            wait_until(lambda: all(gone(pid) for pid in jvms), 20, f"JVMs {jvms} to exit")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = stderr_path.read_text()
    assert "Traceback" not in err, err
    # Where each node logs, for whoever watches the terminal.
    assert sum("log " in line for line in err.splitlines()) >= NODES, err


@pytest.mark.parametrize(
    "args, code, says",
    [
        (("--nodes", "0"), 2, "'0' must be at least 1"),
        (("--nodes", "three"), 2, "'three' is not a number"),
        (("--nodes", "2", "--secure"), 1, "--secure runs a single node"),
    ],
)
def test_a_bad_node_count_is_one_line(args: tuple[str, ...], code: int, says: str) -> None:
    done = run_cli("broker", *args, env=dict(os.environ), timeout=60)
    err = done.stderr.decode()
    assert done.returncode == code, (done.returncode, err)
    assert len(err.strip().splitlines()) == 1 and says in err, err
    assert done.stdout == b""


# --- KafkaCluster -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[KafkaCluster]:
    """Three nodes, started once for the module; fails (never skips) when they cannot start."""
    started = KafkaCluster(NODES)
    problem = None
    try:
        started.start(timeout=240)
    except BrokerError as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(f"cannot start the test Kafka cluster: {problem}", pytrace=False)
    try:
        yield started
    finally:
        pids = [node.pid for node in started.nodes]
        started.stop()
        assert all(pid is not None and gone(pid) for pid in pids)


async def test_metadata_lists_every_node(cluster: KafkaCluster) -> None:
    assert cluster.bootstrap == ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes)
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_cluster()
    finally:
        await admin.close()
    brokers = {broker["node_id"]: broker["port"] for broker in described["brokers"]}
    assert brokers == {node.node_id: node.port for node in cluster.nodes}
    assert sorted(brokers) == [1, 2, 3]


async def test_topics_default_to_three_replicas_two_in_sync(cluster: KafkaCluster) -> None:
    topic = _topic()
    assert Settings().replication_factor == 0  # "the cluster's default"
    await create_topics(cluster.bootstrap, [topic], 2, Settings().replication_factor)
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    assert [sorted(p["replicas"]) for p in described["partitions"]] == [[1, 2, 3]] * 2
    configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
    assert configs["min.insync.replicas"] == "2"


async def test_every_topic_the_worker_creates_has_three_replicas(cluster: KafkaCluster) -> None:
    assert cluster.bootstrap is not None
    settings = Settings(broker=cluster.bootstrap, topic_prefix=f"{_topic()}.")
    await prepare_topics(settings)
    needed = set(needed_topics(settings))
    replicas: dict[str, set[int]] = {}
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()

    async def all_known() -> bool:
        """The node asked may learn of the last topics created a moment after the others."""
        listed = [t for t in await admin.describe_topics() if t["topic"].startswith(settings.topic_prefix)]
        replicas.clear()
        replicas.update({t["topic"]: {len(p["replicas"]) for p in t["partitions"]} for t in listed})
        return needed <= set(replicas)

    try:
        await wait_for(all_known, 30, "the metadata to list every topic the worker created")
    finally:
        await admin.close()
    # Faust's leader topic too (Faust alone would give it one replica).
    assert f"{settings.worker_app_id}-__assignor-__leader" in replicas
    assert set(replicas) == needed
    assert all(counts == {3} for counts in replicas.values()), replicas


async def test_a_killed_leader_is_replaced_and_rejoins_the_isr(cluster: KafkaCluster) -> None:
    topic = _topic()
    await create_topics(cluster.bootstrap, [topic], 1)
    await wait_for(lambda: _isr_is(cluster, topic, {1, 2, 3}), 30, "a full ISR")
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        before = [f"before-{i}".encode() for i in range(20)]
        for value in before:
            await producer.send_and_wait(topic, value)

        leader = await cluster.leader_of(topic)
        assert leader is not None
        killed = cluster.node(leader)
        pid, port = killed.pid, killed.port
        cluster.kill(leader)
        assert pid is not None and gone(pid) and not killed.running

        async def replaced() -> bool:
            return await cluster.leader_of(topic) not in (None, leader)

        await wait_for(replaced, 60, "a new leader", interval=0.5)
        # acks=all with 2 of 3 in sync: the same producer goes on, the records all there.
        after = [f"after-{i}".encode() for i in range(20)]
        for value in after:
            await asyncio.wait_for(producer.send_and_wait(topic, value), 60)
    finally:
        await producer.stop()
    assert await cluster.in_sync_replicas(topic) == {1, 2, 3} - {leader}
    records = await read_topic(cluster.bootstrap, topic, lambda got: len(got) >= 40, timeout=60)
    assert [record.value for record in records] == before + after

    await asyncio.to_thread(cluster.start_node, leader)
    assert killed.running and killed.pid != pid and killed.port == port
    await wait_for(lambda: _isr_is(cluster, topic, {1, 2, 3}), 60, f"node {leader} back in the ISR")


async def test_every_node_stopped_and_started_again_keeps_the_records(cluster: KafkaCluster) -> None:
    topic = _topic()
    await create_topics(cluster.bootstrap, [topic], 2)
    values = [f"kept-{i}".encode() for i in range(30)]
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send_and_wait(topic, value, partition=i % 2)
    finally:
        await producer.stop()
    ports = [node.port for node in cluster.nodes]
    pids = [node.pid for node in cluster.nodes]

    await asyncio.to_thread(cluster.stop_all)
    assert all(pid is not None and gone(pid) for pid in pids)
    assert not any(node.running for node in cluster.nodes)
    await asyncio.to_thread(cluster.start_all)

    assert [node.port for node in cluster.nodes] == ports and cluster.running
    records = await read_topic(cluster.bootstrap, topic, lambda got: len(got) >= len(values), timeout=60)
    assert sorted(record.value for record in records) == sorted(values)


async def _isr_is(cluster: KafkaCluster, topic: str, nodes: set[int]) -> bool:
    return await cluster.in_sync_replicas(topic) == nodes
