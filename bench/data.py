"""The benchmark's inputs: simulated journeys in JSONL files, made once and cached.

Files live in ``<motwatch cache>/bench`` (``~/.cache/motwatch/bench`` unless
``$MOTWATCH_CACHE_DIR``), named after the simulation's config and a hash of the
generator's source, so a changed generator makes new files.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import REPO, log

SEED = 2026


def cache_dir() -> Path:
    from motwatch.kafka.broker import cache_dir as motwatch_cache

    path = motwatch_cache() / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _generator_hash() -> str:
    sources = sorted((REPO / "motwatch" / "simulation").glob("*.py"))
    return hashlib.blake2b(b"".join(path.read_bytes() for path in sources), digest_size=6).hexdigest()


def simulated(journeys: int, seed: int = SEED) -> tuple[Path, dict[str, Any]]:
    """A file of ``journeys`` simulated journeys (every failure kind, default rates); its facts."""
    from motwatch.simulation import SimulationConfig, iter_lines

    stem = f"sim-j{journeys}-s{seed}-{_generator_hash()}"
    path, meta_path = cache_dir() / f"{stem}.jsonl", cache_dir() / f"{stem}.json"
    if path.exists() and meta_path.exists():
        return path, orjson.loads(meta_path.read_bytes())
    log(f"simulating {journeys:,} journeys into {path}")
    started = time.perf_counter()
    keys: set[bytes] = set()
    events = 0
    size = 0
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as out:
        for line in iter_lines(SimulationConfig(journeys=journeys, seed=seed)):
            out.write(line + b"\n")
            events += 1
            size += len(line) + 1
            event = orjson.loads(line)
            keys.add((event.get("customer_id") or event.get("anonymous_id")).encode())
    tmp.rename(path)
    meta = {
        "journeys_simulated": journeys,
        "seed": seed,
        "events": events,
        "journey_keys": len(keys),
        "bytes": size,
        "generate_seconds": round(time.perf_counter() - started, 1),
    }
    meta_path.write_bytes(orjson.dumps(meta))
    return path, meta


def first_touch_lines(n: int, prefix: str, start_ms: int) -> list[bytes]:
    """``n`` journeys of one healthy product page view each (for loading state, nothing fails)."""
    from motwatch.core.moments import iso_ms

    out = []
    for i in range(n):
        at = start_ms + i
        out.append(
            orjson.dumps(
                {
                    "event_id": f"{prefix}-ev-{i:08d}",
                    "occurred_at": iso_ms(at),
                    "customer_id": f"{prefix}-cust-{i:08d}",
                    "session_id": f"{prefix}-s-{i:08d}",
                    "channel": "web",
                    "type": "page_view",
                    "properties": {
                        "url": f"https://shop.example/p/{i % 5000}",
                        "http_status": 200,
                        "page_category": "product",
                        "product_id": f"p-{i % 5000}",
                    },
                }
            )
        )
    return out
