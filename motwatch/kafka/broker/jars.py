"""Fetch the Kafka broker's jars from Maven Central once, into a per-user cache.

The jars are too big (about 43 MB) to ship with motwatch, and Maven already
knows how to resolve Kafka's transitive dependencies, so we let ``mvn`` copy
them into ``<cache>/kafka-<version>/lib``. The folder appears atomically (fetch
into a temporary sibling, then rename) and a file lock serialises concurrent
fetches, so it is either complete or absent.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Protocol

KAFKA_VERSION = "4.4.0"
# log4j-core comes with kafka-server; its SLF4J 1.x binding must match that version.
LOG4J_VERSION = "2.25.5"
MIN_JAVA = 17

FETCH_TIMEOUT_S = 900.0
_KAFKA_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"


class Cancel(Protocol):
    """Anything with ``is_set()``, e.g. ``threading.Event``: asks a wait to give up."""

    def is_set(self) -> bool: ...


class BrokerError(Exception):
    """Something a person must fix to run the local broker; the message is one line."""


def cache_dir() -> Path:
    """``$MOTWATCH_CACHE_DIR``, else ``~/.cache/motwatch``: outside the repository."""
    env = os.environ.get("MOTWATCH_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "motwatch"


def lib_dir() -> Path:
    """Where this Kafka version's jars live (whether or not fetched yet)."""
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "lib"


def find_java() -> str | None:
    """``$JAVA_HOME/bin/java`` when set (as Maven does), else ``java`` on ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def _java_major(java: str) -> int:
    """The major version ``java -version`` reports (``1.8.0`` counts as 8)."""
    try:
        done = subprocess.run(
            [java, "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"cannot run {java} -version: {exc}") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not match:
        raise BrokerError(f"cannot tell the Java version from `{java} -version`")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> str:
    """The path of a Java 17+ ``java``; BrokerError otherwise."""
    java = find_java()
    if java is None:
        raise BrokerError(
            "java not found: install a Java 17+ JDK (Debian: apt-get install openjdk-17-jre-headless)"
        )
    major = _java_major(java)
    if major < MIN_JAVA:
        raise BrokerError(
            f"{java} is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+ "
            "(Debian: apt-get install openjdk-17-jre-headless)"
        )
    return java


def check_tools() -> None:
    """Raise BrokerError unless a Java 17+ ``java`` and ``mvn`` are installed."""
    check_java()
    if shutil.which("mvn") is None:
        raise BrokerError("mvn not found: install Maven (Debian: apt-get install maven)")


@contextmanager
def _locked(path: Path, timeout: float, cancel: Cancel | None) -> Iterator[None]:
    """Hold an exclusive flock on ``path``; the kernel drops it if we die."""
    deadline = time.monotonic() + timeout
    with open(path, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if cancel is not None and cancel.is_set():
                    raise BrokerError("waiting for the Kafka jar fetch was interrupted") from None
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"timed out after {timeout:.0f}s waiting for another process "
                        f"fetching Kafka jars (lock {path})"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_complete(lib: Path) -> bool:
    return (lib / _KAFKA_JAR).is_file()


def _first_error(log: Path) -> str:
    """Maven's first ``[ERROR]`` line, to make the one-line message useful."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if line.startswith("[ERROR]"):
            detail = re.sub(r"^(\[ERROR\]\s*)+", "", line)
            detail = re.sub(r"\s*-> \[Help \d+\]$", "", detail).strip()
            if detail:
                return detail[:300]
    return ""


def _run_mvn(pom: Path, out_dir: Path, log: Path, timeout: float, cancel: Cancel | None) -> None:
    """Run ``mvn dependency:copy-dependencies`` into ``out_dir``, bounded by ``timeout``."""
    command = [
        "mvn",
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out_dir}",
        f"-Dkafka.version={KAFKA_VERSION}",
        f"-Dlog4j.version={LOG4J_VERSION}",
    ]
    with open(log, "wb") as log_file:
        # Own session: a terminal's Ctrl-C reaches our handler, not Maven, and on
        # timeout we can end Maven together with anything it started.
        proc = subprocess.Popen(
            command,
            cwd=pom.parent,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    code = proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if cancel is not None and cancel.is_set():
                    raise BrokerError("fetching Kafka jars was interrupted")
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"mvn did not finish fetching Kafka jars within {timeout:.0f}s; see {log}"
                    )
        finally:
            if proc.returncode is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if code != 0:
        detail = _first_error(log)
        detail = f": {detail}" if detail else ""
        raise BrokerError(f"mvn failed to fetch Kafka {KAFKA_VERSION} jars{detail}; see {log}")


def ensure_jars(
    *,
    timeout: float = FETCH_TIMEOUT_S,
    announce: Callable[[str], None] | None = None,
    cancel: Cancel | None = None,
) -> Path:
    """The folder of Kafka jars, fetched with ``mvn`` the first time only.

    ``announce`` is called with a short message only when a fetch really
    happens (so the CLI can say why the first run is slow). ``cancel``, when
    set, aborts a fetch in progress. Safe to call from several processes.
    """
    lib = lib_dir()
    if _is_complete(lib):
        return lib
    version_dir = lib.parent
    try:
        version_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrokerError(f"cannot create the jar cache {version_dir}: {exc}") from None
    with _locked(version_dir / ".lock", timeout + 60, cancel):
        if _is_complete(lib):  # another process fetched while we waited
            return lib
        check_tools()
        # Leftovers of interrupted fetches; nobody else uses them while we hold the lock.
        for stale in version_dir.glob("lib.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if lib.exists():  # incomplete (e.g. someone deleted jars by hand)
            shutil.rmtree(lib)
        if announce is not None:
            announce(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central (once) …")
        pom = version_dir / "pom.xml"
        pom.write_bytes(resources.files(__package__).joinpath("pom.xml").read_bytes())
        staging = Path(tempfile.mkdtemp(prefix="lib.tmp-", dir=version_dir))
        try:
            _run_mvn(pom, staging, version_dir / "mvn.log", timeout, cancel)
            if not _is_complete(staging):
                raise BrokerError(f"mvn finished but {_KAFKA_JAR} is missing; see {version_dir / 'mvn.log'}")
            os.rename(staging, lib)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return lib
