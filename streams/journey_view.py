"""``GET /journeys/{key}`` on the worker's web server: one journey's live state, for local callers only.

A journey is a key of the journeys table, and lives on the worker that holds
its partition (Kafka's default partitioner over ``partitions``, as Faust's
router places a table key). That worker answers 200 with the journey's state
as the engine holds it now (the batch being applied included), less the ids
kept to drop duplicates, and its partition's watermark; 404 when it holds no
state for the key (never seen, or expired), with the watermark all the same.
Another worker answers 421 with the owner's URL as Faust's assignor knows it
(``owner``), for the caller to ask there; 503 while the worker starts, stops
or has no owner for the partition. Customer state is not for the network: a
request from anywhere but a loopback address is refused (403) unless
``explain_from_network`` allows it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from faust.types import TP

from motwatch.core.clock import NEVER, PartitionClock
from motwatch.core.journey import JourneyState, UnreadableStateError
from motwatch.core.partitioner import partition_for_key
from motwatch.streams.partitionstore import partition_table
from motwatch.streams.web import HEALTHY

if TYPE_CHECKING:
    from motwatch.agents.journeys import PartitionEngines
    from motwatch.streams.app import Motwatch

PATH = "/journeys/{key}"


def is_local(remote: str | None) -> bool:
    """Whether a request came from this machine's loopback (IPv4, IPv6, or IPv4 mapped into IPv6)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def refusal(remote: str | None, from_network: bool) -> str | None:
    """Why a request from ``remote`` is refused; None when it may be answered."""
    if from_network or is_local(remote):
        return None
    return (
        f"journey state is served to local callers only (this request came from {remote or 'unknown'}); "
        "set explain_from_network = true to allow the network"
    )


def view(state: JourneyState) -> dict[str, Any]:
    """What the endpoint tells of a state: all of it but the ids kept to drop duplicates."""
    out = state.to_dict()
    out.pop("seen", None)
    return out


class JourneyView:
    """The handler of :data:`PATH`, reading the worker's engines and tables."""

    def __init__(self, mw: Motwatch, engines: PartitionEngines, health: Callable[[], str]) -> None:
        self.mw = mw
        self.engines = engines
        self.health = health

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self.serve)]

    async def serve(self, request: web.Request) -> web.Response:
        settings = self.mw.settings
        refused = refusal(request.remote, settings.explain_from_network)
        if refused is not None:
            return web.json_response({"error": refused}, status=403)
        health = self.health()
        if health != HEALTHY:
            return web.json_response({"error": f"the worker is {health}"}, status=503)
        key = request.match_info["key"]
        partition = partition_for_key(key, settings.partitions)
        changelog = self.mw.journeys.changelog_topic.get_topic_name()
        answer: dict[str, Any] = {"key": key, "partition": partition, "worker": self.own_url()}
        if TP(changelog, partition) not in self.mw.app.assignor.assigned_actives():
            owner = self.owner(changelog, partition)
            if owner is None:
                answer["error"] = f"no worker holds partition {partition} now (a rebalance?)"
                return web.json_response(answer, status=503)
            answer["owner"] = owner
            answer["error"] = f"partition {partition} is held by the worker at {owner}"
            return web.json_response(answer, status=421)
        answer["watermark_ms"] = self.watermark(partition)
        state = self.state(key, partition)
        if state is None:
            answer["error"] = f"this worker holds no state for journey {key} (never seen, or expired)"
            return web.json_response(answer, status=404)
        answer["state"] = view(state)
        return web.json_response(answer)

    def own_url(self) -> str:
        return str(self.mw.app.conf.canonical_url)

    def owner(self, changelog: str, partition: int) -> str | None:
        """The URL of the worker whose assignment holds the partition, as Faust's router has it."""
        for url, topics in self.mw.app.router.table_metadata("journeys").items():
            if partition in topics.get(changelog, ()):
                return str(url)
        return None

    def state(self, key: str, partition: int) -> JourneyState | None:
        """The journey as its engine holds it; before the partition's first record, as stored."""
        store = self.engines.stores.get(partition)
        if store is not None:
            state = store.get(key)
            return state if isinstance(state, JourneyState) else None
        raw = partition_table(self.mw.journeys, partition).data.get(key, None)
        if not raw:
            return None
        try:
            return JourneyState.unpack(bytes(raw))
        except UnreadableStateError:
            return None

    def watermark(self, partition: int) -> int | None:
        engine = self.engines.engines.get(partition)
        if engine is not None:
            clock: PartitionClock | None = engine.clock
        else:
            saved = partition_table(self.mw.clocks, partition).data.get(str(partition), None)
            try:
                clock = PartitionClock.from_json(bytes(saved)) if saved else None
            except ValueError:
                clock = None
        if clock is None or clock.watermark_ms <= NEVER:
            return None
        return clock.watermark_ms
