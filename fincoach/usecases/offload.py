"""CPU-heavy work (password hashing, scrubbing event batches) run in worker threads, at most
``FINCOACH_CPU_OFFLOAD_CONCURRENCY`` at once per process, so that the event loop keeps answering
other requests (health checks share it) while a burst of logins is hashed."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

from fincoach.config import Settings

T = TypeVar("T")

# One semaphore per event loop: a semaphore belongs to the loop that first waits on it, and
# tests (and the CLI) run several loops in one process.
_LIMITS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _limit(settings: Settings) -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    limit = _LIMITS.get(loop)
    if limit is None:
        limit = _LIMITS[loop] = asyncio.Semaphore(settings.cpu_offload_concurrency)
    return limit


async def run_cpu(settings: Settings, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in a worker thread, waiting for a free slot first."""
    async with _limit(settings):
        return await asyncio.to_thread(fn, *args)
