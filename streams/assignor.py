"""Faust's partition assignor, for a static member that rejoins with another web address.

Each member tells the group's leader the URL its web server advertises,
and the leader writes it into every member's assignment. A static member
(``instance_id``) that rejoins a stable group is not assigned afresh: the
broker hands it back the assignment of the last rebalance, with the URL it
had then. Faust asserts that URL is its own, so a worker restarted on the
same data dir with another ``web_port`` failed that assertion on every
join and never became ready. The URL only routes requests to Faust's web
views, which the worker does not serve (``streams/app.py``): the
assignment is taken whatever URL it carries.
"""

from __future__ import annotations

import logging

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor import PartitionAssignor

log = logging.getLogger("motwatch.assignor")


class RejoiningAssignor(PartitionAssignor):
    """Faust's assignor, taking an assignment made when this member advertised another URL."""

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        try:
            super().on_assignment(assignment)
        except AssertionError as failed:
            # Faust's two checks: the partitions agree (its message says how they differ), and
            # the URL is this member's (no message). Only the second is let go.
            if failed.args:
                raise
            log.info("rejoined the group with the assignment it had under another web address")
