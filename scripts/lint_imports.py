"""Check the layers' import contracts (pyproject's ``[tool.importlinter]``) on motwatch as it installs.

``streams/`` and ``agents/`` install as ``motwatch.streams`` and
``motwatch.agents`` (pyproject's ``package-dir``), which import-linter cannot
find in the source tree: the package's Python files are copied, in their
installed places, into a temporary directory, and import-linter reads them
there. Exits with import-linter's status: 0 when every contract holds.

Usage: ``python scripts/lint_imports.py [--repo DIR]`` (default: this repository).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Where each top-level source folder goes in the installed package.
INSTALLED = {"motwatch": "motwatch", "streams": "motwatch/streams", "agents": "motwatch/agents"}


def lay_out(repo: Path, into: Path) -> None:
    """Copy the package's Python files from ``repo`` into ``into`` as they are installed."""
    for source, target in INSTALLED.items():
        shutil.copytree(
            repo / source,
            into / target,
            ignore=lambda _, names: [n for n in names if not n.endswith(".py") and "." in n],
            dirs_exist_ok=True,
        )


def check(repo: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter with ``repo``'s contracts on ``repo``'s package; its output and status."""
    with tempfile.TemporaryDirectory(prefix="motwatch-imports-") as tmp:
        lay_out(repo, Path(tmp))
        env = {**os.environ, "PYTHONPATH": tmp}
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, importlinter.cli as cli; sys.exit(cli.lint_imports_command())",
                str(repo / "pyproject.toml"),
                "--no-cache",
                "--no-logo",
            ],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the repository to check (default: this one)")
    args = parser.parse_args(argv)
    done = check(args.repo.resolve())
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
