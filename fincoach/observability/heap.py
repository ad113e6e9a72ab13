"""The serving processes' startup heap, kept out of the cyclic garbage collector's scans."""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger("fincoach.heap")


def freeze_startup_heap() -> int:
    """Collect, then move every object alive now (modules, classes, the app, the loaded models)
    to the collector's permanent generation, and return how many that is.

    A full collection scans every tracked object: about 200,000 in an ingress replica once the
    app is imported, 120 ms on these 2 cores (measured), and it runs when allocation counts say
    so, in the middle of whatever request is being served; with cores busy hashing passwords
    it was the rare 200-300 ms /health probe under a login burst (bench/RESULTS.md, issue 14).
    After this it scans only what serving allocated since. Frozen objects are still freed by
    reference counting when their last reference goes; only a cycle among them would outlive
    its use, so call it once, after start-up, not per request."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info(
        "froze %d start-up objects in %.0f ms", frozen, (time.perf_counter() - started) * 1000
    )
    return frozen
