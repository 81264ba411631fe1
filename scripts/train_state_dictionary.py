"""Train a zstd dictionary for packed journey states (motwatch/packing.py).

The samples are the states a worker writes: simulated journeys run through
the engine with the default settings, each state taken as its journey
changes (events held for the watermark included) and once more when all is
settled. Usage:

    python scripts/train_state_dictionary.py motwatch/journey-state-2.zdict

A shipped dictionary never changes; write a new one under the next number,
add it to ``packing.DICTIONARIES`` and make it ``CURRENT``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import zstandard

from motwatch.core.engine import JourneyEngine
from motwatch.core.events import Touchpoint
from motwatch.core.validation import validate_touchpoint
from motwatch.settings import Settings
from motwatch.simulation import SimulationConfig, simulate

SIZE = 16 * 1024
# One state in this many changes is a sample; enough for the trainer, small enough to be quick.
EVERY = 5


def samples(journeys: int, seed: int) -> list[bytes]:
    engine = JourneyEngine(Settings())
    taken: list[bytes] = []
    for i, line in enumerate(simulate(SimulationConfig(journeys=journeys, seed=seed)).lines):
        event = validate_touchpoint(line)
        if not isinstance(event, Touchpoint):
            continue
        engine.process(event)
        if i % EVERY == 0:
            taken.append(engine.store[event.journey_key].to_json())
    engine.advance(2**62)
    taken.extend(state.to_json() for state in engine.store.values())
    return taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="where to write the dictionary")
    parser.add_argument("--journeys", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args(argv)
    taken = samples(args.journeys, args.seed)
    # One thread: the trainer's search for its parameters, and so the dictionary, repeat exactly.
    trained = zstandard.train_dictionary(SIZE, taken, threads=1)
    args.out.write_bytes(trained.as_bytes())
    print(f"{args.out}: {len(trained.as_bytes())} bytes from {len(taken)} states", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
