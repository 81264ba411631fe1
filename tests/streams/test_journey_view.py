"""Who may read a journey's live state from the worker: callers on this machine, unless allowed."""

from __future__ import annotations

import pytest

from motwatch.streams.journey_view import is_local, refusal


@pytest.mark.parametrize("remote", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_callers_are_answered(remote):
    assert is_local(remote)
    assert refusal(remote, from_network=False) is None


@pytest.mark.parametrize("remote", ["192.0.2.2", "10.0.0.7", "fd00::2", "::ffff:192.0.2.2", "", None, "unix"])
def test_other_callers_are_refused_in_one_line_unless_the_network_is_allowed(remote):
    assert not is_local(remote)
    reason = refusal(remote, from_network=False)
    assert reason is not None and "\n" not in reason
    assert "explain_from_network" in reason
    assert refusal(remote, from_network=True) is None
