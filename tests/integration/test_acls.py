"""Least privilege: the README's ACLs are all the worker needs, and one less is one line naming it.

The worker's ACLs are read from the README's table (Least privilege) and
granted, with what ``motwatch produce`` and ``motwatch record`` need and
nothing else, to the secure broker's user; simulated journeys go through
``produce`` over SASL_SSL and the worker's moments are ``motwatch detect``'s,
ids included. Then, for each row of the table, the worker with every row but
that one stops within seconds, before it creates anything, with one line
naming the right it lacks. The commands' rights are checked the same way.
The checks read the topics on the broker's PLAINTEXT listener, a super user's.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from motwatch.commands.worker import needed_topics
from motwatch.kafka.admin import create_topics, partition_counts
from motwatch.kafka.broker.acls import Acl
from motwatch.kafka.broker.secure import SecureKafkaBroker
from motwatch.kafka.connection import NotAuthorized, not_authorized
from motwatch.kafka.rights import reader_rights, require_rights, writer_rights
from motwatch.kafka.security import Endpoint, endpoint_of
from motwatch.kafka.writer import produce_lines
from motwatch.settings import load_settings
from tests.integration.test_secured import secured_env
from tests.workers import (
    run_cli,
    worker_round_trip,
)

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples.jsonl"
# Idle advance far beyond the test: only the stream itself moves event time.
SETTINGS = {"partitions": 2, "idle_advance_s": 36000}
# A row of the worker's table: | resource | pattern | `name` | OPERATION | why |
_ROW = re.compile(r"^\| (topic|group) \| (literal|prefixed) \| `([^`]+)` \| ([A-Z_]+) \| [^|]+ \|$")


def readme_rows() -> list[tuple[str, str, str, str]]:
    """The worker's ACLs as the README's Least privilege section lists them: (type, pattern, name, op)."""
    section = README.read_text(encoding="utf-8").split("\n## Least privilege\n", 1)[1].split("\n## ", 1)[0]
    rows = [match.groups() for line in section.splitlines() if (match := _ROW.match(line))]
    assert len(rows) >= 5, "the README's Least privilege table is not where the test looks"
    return rows


ROWS = readme_rows()


def acl(row: tuple[str, str, str, str], principal: str, prefix: str) -> Acl:
    resource_type, pattern, name, operation = row
    return Acl(principal, resource_type, name.replace("<prefix>", prefix), operation.lower(), pattern)


def worker_acls(broker: SecureKafkaBroker, prefix: str, *, leave_out: object = None) -> list[Acl]:
    return [acl(row, broker.principal, prefix) for row in ROWS if row != leave_out]


@pytest.fixture
async def bare(secure_kafka_broker: SecureKafkaBroker) -> AsyncIterator[SecureKafkaBroker]:
    """The shared secure broker; its user has the rights the test grants, revoked afterwards."""
    await secure_kafka_broker.revoke_all()
    try:
        yield secure_kafka_broker
    finally:
        await secure_kafka_broker.revoke_all()


def one_line(done, *, within: float, started: float) -> str:
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert time.monotonic() - started < within, f"took {time.monotonic() - started:.0f}s: {err}"
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "(grant it: see README, Least privilege)" in err or "(grant them:" in err, err
    return err


async def ours(plain: str, prefix: str) -> set[str]:
    return {name for name in await partition_counts(plain) if name.startswith(prefix)}


@pytest.mark.parametrize("auto_create", [True, False], ids=["worker-creates-topics", "operator-made-topics"])
async def test_the_readme_acls_run_the_worker_end_to_end(
    bare: SecureKafkaBroker, auto_create: bool, topic_prefix: str, tmp_path: Path
) -> None:
    plain = bare.bootstrap
    assert plain is not None
    env = secured_env(bare, "scram", topic_prefix, **SETTINGS, auto_create_topics=str(auto_create).lower())
    acls = worker_acls(bare, topic_prefix)
    if not auto_create:  # an operator made the topics: the worker needs no CREATE
        acls = [a for a in acls if a.operation != "create"]
        for name, partitions in needed_topics(load_settings(None, environ=env)).items():
            await create_topics(plain, [name], partitions or SETTINGS["partitions"])
    # What produce (into the existing input) and record (of the moments) need: README, the commands.
    cli = [
        Acl(bare.principal, "topic", f"{topic_prefix}touchpoints", "write"),
        Acl(bare.principal, "topic", f"{topic_prefix}moments", "read"),
    ]
    await bare.grant(*acls, *cli)
    assert set(await bare.acls(bare.principal)) == {*acls, *cli}

    log = await worker_round_trip(env, plain, topic_prefix, tmp_path)
    assert "uthoriz" not in log


@pytest.mark.parametrize("row", ROWS, ids=[f"{op}-{kind}-{name}" for kind, _, name, op in ROWS])
async def test_one_acl_less_stops_the_worker_with_one_line_naming_it(
    bare: SecureKafkaBroker, row: tuple[str, str, str, str], topic_prefix: str, tmp_path: Path
) -> None:
    plain = bare.bootstrap
    assert plain is not None
    await bare.grant(*worker_acls(bare, topic_prefix, leave_out=row))
    env = secured_env(bare, "scram", topic_prefix, **SETTINGS)

    started = time.monotonic()
    err = one_line(run_cli("worker", env=env, cwd=tmp_path, timeout=90), within=60, started=started)
    resource_type, _, name, operation = row
    assert f"not authorized to {operation} {resource_type}" in err
    # A prefixed ACL stands for every topic under it: the line names those the worker needs.
    assert f" {name.replace('<prefix>', topic_prefix)}" in err
    assert "as user 'motwatch'" in err
    assert await ours(plain, topic_prefix) == set(), "the worker created topics before it stopped"


async def test_a_command_refused_a_topic_it_may_see_says_which_right(
    bare: SecureKafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    plain = bare.bootstrap
    assert plain is not None
    topic = f"{topic_prefix}touchpoints"
    await create_topics(plain, [topic], 2)
    await produce_lines(plain, topic, [b'{"x": 1}'])
    env = secured_env(bare, "scram", topic_prefix)

    await bare.grant(Acl(bare.principal, "topic", topic, "read"))
    started = time.monotonic()
    err = one_line(run_cli("produce", str(EXAMPLES), env=env), within=30, started=started)
    assert f"motwatch produce: not authorized to WRITE topic {topic} as user 'motwatch'" in err

    await bare.revoke_all()
    await bare.grant(Acl(bare.principal, "topic", topic, "write"))
    started = time.monotonic()
    out = str(tmp_path / "x.jsonl")
    done = run_cli("record", "touchpoints", "--out", out, "--from-beginning", "--idle", "2", env=env)
    err = one_line(done, within=30, started=started)
    assert f"motwatch record: not authorized to READ topic {topic} as user 'motwatch'" in err


def test_the_line_names_each_refused_right_once_by_operation() -> None:
    sasl = Endpoint("h:9093", "SASL_SSL", username="motwatch", password="secret")
    denied = [("READ", "topic", "a"), ("READ", "topic", "b"), ("READ", "group", "g"), ("READ", "topic", "a")]
    assert str(not_authorized(sasl, denied)) == (
        "not authorized to READ topics a, b; READ group g as user 'motwatch' on Kafka at h:9093 "
        "(grant them: see README, Least privilege)"
    )
    mtls = Endpoint("h:9094", "SSL", certfile="c.pem", keyfile="k.pem")
    assert str(not_authorized(mtls, [("WRITE", "topic", "m")])) == (
        "not authorized to WRITE topic m on Kafka at h:9094 (grant it: see README, Least privilege)"
    )


async def test_the_commands_rights_are_checked_against_the_readme_table(
    bare: SecureKafkaBroker, topic_prefix: str
) -> None:
    """WRITE to write, READ to read, and CREATE only while the topic does not exist."""
    plain = bare.bootstrap
    assert plain is not None
    target: Endpoint = endpoint_of(load_settings(None, environ=secured_env(bare, "scram", topic_prefix)))
    topic, me = f"{topic_prefix}touchpoints", bare.principal
    write, create = Acl(me, "topic", topic, "write"), Acl(me, "topic", topic_prefix, "create", "prefixed")

    async def refusal(rights) -> str | None:
        try:
            await require_rights(target, rights)
        except NotAuthorized as exc:
            return str(exc)
        return None

    cases = (([], "WRITE"), ([write], "CREATE"), ([create], "WRITE"), ([write, create], None))
    for granted, missing in cases:
        await bare.revoke_all()
        if granted:
            await bare.grant(*granted)
        said = await refusal(writer_rights(topic))
        assert said is None if missing is None else f"not authorized to {missing} topic {topic} " in said
    assert await refusal(reader_rights(topic)) == (
        f"not authorized to READ topic {topic} as user 'motwatch' on Kafka at {target.bootstrap} "
        "(grant it: see README, Least privilege)"
    )

    await create_topics(plain, [topic], 2)
    await bare.revoke_all()
    await bare.grant(write)
    assert await refusal(writer_rights(topic)) is None, "an existing topic needs no CREATE"
    await bare.grant(Acl(me, "topic", topic, "read"))
    assert await refusal(reader_rights(topic)) is None


@pytest.mark.parametrize("case", ["produce-without-WRITE", "produce-without-CREATE", "record-without-READ"])
async def test_one_acl_less_stops_a_command_with_one_line_naming_it(
    bare: SecureKafkaBroker, case: str, topic_prefix: str, tmp_path: Path
) -> None:
    plain = bare.bootstrap
    assert plain is not None
    topic, me = f"{topic_prefix}touchpoints", bare.principal
    env = secured_env(bare, "scram", topic_prefix)
    if case != "produce-without-CREATE":
        await create_topics(plain, [topic], 2)
    command, operation = case.split("-without-")
    grants = {
        "produce-without-WRITE": [Acl(me, "topic", topic_prefix, "create", "prefixed")],
        "produce-without-CREATE": [Acl(me, "topic", topic, "write")],
        "record-without-READ": [],
    }[case]
    if grants:
        await bare.grant(*grants)
    args = [str(EXAMPLES)] if command == "produce" else ["touchpoints", "--out", str(tmp_path / "x")]
    started = time.monotonic()
    err = one_line(run_cli(command, *args, env=env, timeout=20), within=15, started=started)
    assert f"not authorized to {operation} topic {topic}" in err
