"""Letting the running event loop take steps in tests without a broker: bounded, never timed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], steps: int = 10_000) -> None:
    """Let the loop step until ``condition()`` holds; fail after ``steps`` steps without it."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def run_steps(n: int = 20) -> None:
    """Let the loop run ``n`` steps: for what must NOT happen, which has no condition to wait for."""
    for _ in range(n):
        await asyncio.sleep(0)
