"""Topics an operator creates: with ``auto_create_topics = false`` the worker creates none, names
every one that is missing or has the wrong partition count, and runs once they are right."""

from __future__ import annotations

from pathlib import Path

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from motwatch.commands.worker import needed_topics
from motwatch.kafka.admin import create_topics, partition_counts
from motwatch.settings import load_settings
from tests.workers import WorkerProcess, motwatch_env, read_topic, run_cli, wait_for

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples.jsonl"


def _refused(done) -> str:
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


async def _ours(bootstrap: str, prefix: str) -> dict[str, int]:
    return {name: n for name, n in (await partition_counts(bootstrap)).items() if name.startswith(prefix)}


async def test_with_auto_create_off_the_worker_checks_the_topics_an_operator_made(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = motwatch_env(kafka_bootstrap, topic_prefix, auto_create_topics="false", partitions=2)
    needed = needed_topics(load_settings(None, environ=env))
    assert len(needed) == 8

    err = _refused(run_cli("worker", env=env, cwd=tmp_path))
    assert "auto_create_topics is false" in err
    for name, partitions in needed.items():
        assert f"{name} (missing" in err
        if partitions:
            assert f"{name} (missing, {partitions} partitions)" in err
    assert await _ours(kafka_bootstrap, topic_prefix) == {}, "the worker created a topic"

    by_journey = f"{topic_prefix}touchpoints-by-journey"
    for name, partitions in needed.items():
        await create_topics(kafka_bootstrap, [name], 3 if name == by_journey else partitions or 2)
    err = _refused(run_cli("worker", env=env, cwd=tmp_path))
    assert f"{by_journey} (has 3 partitions, needs 2)" in err
    assert err.count(" (") == 1, "only the wrong one is named"

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([by_journey])
    finally:
        await admin.close()

    async def gone() -> bool:
        return by_journey not in await _ours(kafka_bootstrap, topic_prefix)

    await wait_for(gone, 30, f"{by_journey} to be deleted")
    await create_topics(kafka_bootstrap, [by_journey], 2)
    assert (await _ours(kafka_bootstrap, topic_prefix))[by_journey] == 2
    with WorkerProcess(env, tmp_path / "w") as worker:
        assert run_cli("produce", str(EXAMPLES), env=env).returncode == 0
        moments = await read_topic(kafka_bootstrap, f"{topic_prefix}moments", lambda r: len(r) >= 1)
        assert [orjson.loads(m.value)["kind"] for m in moments] == ["checkout_error"]
        assert worker.alive()
    assert set(await _ours(kafka_bootstrap, topic_prefix)) == set(needed), "the worker created a topic"
