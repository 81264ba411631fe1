"""``motwatch explain`` as a user meets it without a worker or a broker: one-line errors, the worker's URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from motwatch.commands.explain import NoWorker, ask_worker, base_url
from tests.workers import free_port, run_cli

pytestmark = pytest.mark.external


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Built-in settings; an unreachable broker, and no worker on the web port."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOTWATCH_")}
    clean["MOTWATCH_BROKER"] = "127.0.0.1:1"
    clean["MOTWATCH_WEB_PORT"] = str(free_port())
    defaults = tmp_path / "defaults.toml"
    defaults.write_text("")
    clean["MOTWATCH_CONFIG"] = str(defaults)
    return clean


def _one_line_error(result, code: int) -> str:
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("args", "says"),
    [((), "JOURNEY_KEY"), (("cust-1", "--since", "last tuesday"), "neither an RFC 3339 time")],
)
def test_bad_arguments_are_one_line_and_exit_2(env, args, says):
    assert says in _one_line_error(run_cli("explain", *args, env=env), 2)


def test_no_worker_and_no_broker_is_one_line(env):
    err = _one_line_error(run_cli("explain", "cust-1", env=env, timeout=60), 1)
    assert err.startswith("motwatch explain: ") and "127.0.0.1:1" in err


def test_a_worker_that_does_not_answer_is_named_in_one_line():
    port = free_port()
    with pytest.raises(NoWorker) as raised:
        ask_worker(f"127.0.0.1:{port}", "cust-1")
    assert str(raised.value).startswith(f"no worker answers at http://127.0.0.1:{port} (")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "given",
    ["127.0.0.1:6066", "http://127.0.0.1:6066", "http://127.0.0.1:6066/", "http://127.0.0.1:6066/metrics"],
)
def test_a_worker_is_named_by_host_and_port_or_any_of_its_urls(given):
    assert base_url(given) == "http://127.0.0.1:6066"
