"""CPU-heavy work (password hashing, scrubbing event batches) run in worker threads of their
own, ``FINCOACH_CPU_OFFLOAD_CONCURRENCY`` per process and at the lowest CPU priority, so that
the event loop (health checks share it) and the other processes keep answering while a burst
of logins is hashed: a burst waits in the queue instead of taking every core."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from fincoach.config import Settings

T = TypeVar("T")
logger = logging.getLogger("fincoach.offload")
NICE = 19  # the lowest priority: any other runnable thread of the machine goes first

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def _lowest_priority() -> None:
    # On Linux each thread is scheduled on its own and has its own nice value.
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: still off the loop
        logger.debug("could not lower the offload thread's priority: %s", exc)


def _pool(size: int) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(size)
        if pool is None:
            pool = _pools[size] = ThreadPoolExecutor(
                max_workers=size, thread_name_prefix="cpu-offload", initializer=_lowest_priority
            )
        return pool


async def run_cpu(settings: Settings, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in an offload thread (at most the configured number at once)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(settings.cpu_offload_concurrency), partial(fn, *args))
