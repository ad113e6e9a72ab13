"""Capping the OpenMP threads of the tree models around a call.

OpenMP spin-waits badly when cores are shared (measured 30x slower fits with 2 threads on a busy
2-core machine), and a serving replica owns one core anyway."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    # Built once (scanning the loaded libraries costs ~2 ms; limiting afterwards ~20 us).
    return ThreadpoolController()


@contextlib.contextmanager
def openmp_threads(n_threads: int | None) -> Iterator[None]:
    """Cap OpenMP threads (the boosted trees') for the duration of a call; None leaves them."""
    if n_threads is None:
        yield
    else:
        with _controller().limit(limits=n_threads, user_api="openmp"):
            yield
