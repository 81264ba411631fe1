"""Packed journey states: exact round trips, earlier formats read, bad bytes named, the dictionary pays."""

from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path
from types import ModuleType

import pytest
import zstandard

from motwatch.core import packing
from motwatch.core.journey import JourneyState, UnreadableStateError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_state_dictionary.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_state_dictionary", SCRIPT)
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


script = _load_script()


@pytest.fixture(scope="module")
def states() -> list[JourneyState]:
    """States as a worker writes them (the training script's samples), from a seed it was not trained on."""
    return [JourneyState.from_json(text) for text in script.samples(300, seed=41)]


def test_every_state_reads_back_exactly(states: list[JourneyState]) -> None:
    assert any(s.pending for s in states) and any(s.reported for s in states)
    for state in states:
        packed = state.pack()
        assert packed[0] == packing.CURRENT
        assert JourneyState.unpack(packed).to_json() == state.to_json()


def test_states_stored_by_earlier_versions_still_read(states: list[JourneyState]) -> None:
    for state in states[:50]:
        text = state.to_json()
        assert JourneyState.unpack(text).to_json() == text  # plain JSON
        assert JourneyState.unpack(zlib.compress(text, 1)).to_json() == text  # zlib, until 2026-11-23


@pytest.mark.parametrize(
    ("stored", "says"),
    [
        (b"\x7fnot a state", "not a format this motwatch knows"),
        (b"", "not a format this motwatch knows"),
        (b"\x01garbage after the dictionary's byte", "does not unpack"),
        (b"x\x9c truncated zlib", "while decompressing"),
        (b"{not json", "JSONDecodeError"),
        (b'{"key": "k", "surprise": 1}', "unexpected keyword argument"),
        (b'{"key": "k", "seen": 5}', "field seen is a int, not a dict"),
        (b'{"key": 7}', "field key is a int, not a str"),
        (b'{"key": "k", "merged_into": []}', "merged_into is not text"),
        (b'{"v": 99, "key": "k"}', "newer than this motwatch"),
    ],
)
def test_bytes_that_are_no_state_say_so(stored: bytes, says: str) -> None:
    """Whatever is wrong with them (the format, the JSON, the shape, a newer version): one error."""
    with pytest.raises(UnreadableStateError, match=says):
        JourneyState.unpack(stored)


def test_the_dictionary_more_than_halves_what_zlib_stores(states: list[JourneyState]) -> None:
    texts = [s.to_json() for s in states]
    zstd = sum(len(packing.pack(t)) for t in texts)
    deflated = sum(len(zlib.compress(t, 1)) for t in texts)
    assert zstd < 0.6 * deflated


def test_the_training_script_writes_a_dictionary_that_packs(tmp_path: Path, states) -> None:
    out = tmp_path / "journey-state-x.zdict"
    assert script.main([str(out), "--journeys", "300", "--seed", "5"]) == 0
    trained = zstandard.ZstdCompressionDict(out.read_bytes())
    compressor = zstandard.ZstdCompressor(level=1, dict_data=trained)
    plain = zstandard.ZstdCompressor(level=1)
    texts = [s.to_json() for s in states]
    assert sum(len(compressor.compress(t)) for t in texts) < 0.7 * sum(len(plain.compress(t)) for t in texts)
