"""``motwatch explain`` without a worker or a broker: one-line errors, the worker's URL, topic formats."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from motwatch.commands.explain import NoWorker, ask_worker, base_url, touchpoints_of
from motwatch.core.dispatch import Inbound
from motwatch.settings import Settings
from tests.adapters.examples import SEGMENT_PAGE
from tests.journeys import line
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


def test_the_input_topic_is_read_in_its_format_and_the_rekeyed_topic_in_motwatchs():
    segment = Settings.model_validate({"input_format": "segment"})
    page = Inbound(orjson.dumps(SEGMENT_PAGE), 0, timestamp_ms=None)
    own = Inbound(line("page_view", 0, key="97980cfea0067", url="https://shop.example/"), 0)
    [converted] = touchpoints_of([page], segment, vendor=True)
    assert (converted.journey_key, converted.type) == ("97980cfea0067", "page_view")
    assert [e.type for e in touchpoints_of([own, page], segment, vendor=False)] == ["page_view"]
    assert touchpoints_of([own], Settings(), vendor=True)[0].event_id == orjson.loads(own.value)["event_id"]
