"""The layers' import contracts hold, and a forbidden import breaks them (scripts/lint_imports.py)."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lint_imports", REPO / "scripts" / "lint_imports.py")
assert _spec is not None and _spec.loader is not None
lint_imports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lint_imports)

pytestmark = pytest.mark.external


def test_every_contract_is_kept() -> None:
    done = lint_imports.check(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "statement", "importer", "imported"),
    [
        ("motwatch/core/clock.py", "import faust", "motwatch.core.clock", "faust"),
        ("motwatch/core/engine.py", "import aiokafka", "motwatch.core.engine", "aiokafka"),
        (
            "motwatch/core/moments.py",
            "import prometheus_client",
            "motwatch.core.moments",
            "prometheus_client",
        ),
        (
            "motwatch/core/journey.py",
            "from motwatch.kafka import admin",
            "motwatch.core.journey",
            "motwatch.kafka",
        ),
        (
            "motwatch/core/dispatch.py",
            "from motwatch.streams import app",
            "motwatch.core.dispatch",
            "motwatch.streams",
        ),
        (
            "motwatch/core/classify.py",
            "from motwatch.commands import detect",
            "motwatch.core.classify",
            "motwatch.commands",
        ),
        (
            "motwatch/core/records.py",
            "from motwatch.agents import journeys",
            "motwatch.core.records",
            "motwatch.agents",
        ),
        ("motwatch/kafka/admin.py", "import faust", "motwatch.kafka.admin", "faust"),
        ("motwatch/adapters/segment.py", "import aiohttp", "motwatch.adapters.segment", "aiohttp"),
        ("motwatch/collector/app.py", "import faust", "motwatch.collector.app", "faust"),
        (
            "motwatch/adapters/intake.py",
            "from motwatch.collector import app",
            "motwatch.adapters.intake",
            "motwatch.collector",
        ),
        (
            "motwatch/commands/detect.py",
            "from motwatch.agents import journeys",
            "motwatch.commands.detect",
            "motwatch.agents",
        ),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, statement: str, importer: str, imported: str
) -> None:
    for folder in ("motwatch", "streams", "agents"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a") as source:
        source.write(f"\n{statement}  # noqa\n")
    done = lint_imports.check(tmp_path)
    assert done.returncode == 1, done.stdout
    # A layer that imports the offending one breaks its own contract too (the adapters import the core).
    assert re.search(r"\b[1-9]\d* broken", done.stdout), done.stdout
    assert f"{importer} -> {imported}" in done.stdout
