"""The browser tracker stays within its budget: 5,000 bytes minified (terser, pinned in tracker/)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

TRACKER = Path(__file__).resolve().parents[2] / "tracker"

pytestmark = pytest.mark.external


def test_the_minified_tracker_is_at_most_5000_bytes() -> None:
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed to measure the tracker (Debian's nodejs and npm)"
    if not (TRACKER / "node_modules" / "terser").is_dir():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=TRACKER, capture_output=True, text=True, timeout=300
        )
        assert installed.returncode == 0, installed.stderr[-2000:]
    measured = subprocess.run(
        ["node", "scripts/size.mjs"], cwd=TRACKER, capture_output=True, text=True, timeout=120
    )
    line = measured.stdout.strip()
    found = re.search(r"minified (\d+) B, gzipped (\d+) B", line)
    assert found is not None, (line, measured.stderr)
    minified, gzipped = map(int, found.groups())
    assert minified <= 5000, line
    assert gzipped < minified
    assert measured.returncode == 0, measured.stderr
