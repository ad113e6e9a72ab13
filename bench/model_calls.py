"""Time the served model calls of the segmentation and forecasting replicas on one input:
segment assignment, goal probability and its risk factors, as the replicas load them (the
registry's newest versions), and whether loading them pulled in scikit-learn.

Usage: .venv/bin/python bench/model_calls.py MODEL_DIR   (prints one JSON line; microseconds,
best and median of 5 repeats)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.names import GOAL_PROBABILITY, SEGMENTATION  # noqa: E402
from models.registry import ModelRegistry  # noqa: E402
from models.serving import ForecastingService, SegmentationService  # noqa: E402


def timed(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(best, median) microseconds per call over 5 repeats of ``n`` calls, after a warm-up."""
    for _ in range(50):
        fn()
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    runs.sort()
    return round(runs[0], 1), round(runs[2], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="A model registry (e.g. ./artifacts)")
    opts = parser.parse_args()
    segmentation = SegmentationService(ModelRegistry(opts.model_dir))
    forecasting = ForecastingService(ModelRegistry(opts.model_dir))
    for service in (segmentation, forecasting):
        for report in service.apply():
            if not report.ok:
                raise SystemExit(f"could not load {report.name}: {report.error}")
    segmenter = segmentation.slots[SEGMENTATION].model
    goal = forecasting.slots[GOAL_PROBABILITY].model
    rng = np.random.default_rng(0)
    user = rng.normal(size=(1, segmenter.n_features_in_)) * segmenter.scale_ + segmenter.mean_
    typical_goal = goal.reference_[None, :]
    print(
        json.dumps(
            {
                "segment assignment, us (best, median)": timed(
                    lambda: segmenter.assign(user), 2000
                ),
                "goal probability, us": timed(lambda: goal.predict_proba(typical_goal), 2000),
                "goal risk factors, us": timed(lambda: goal.risk_factors(typical_goal), 1000),
                "scikit-learn loaded": "sklearn" in sys.modules,
            }
        )
    )


if __name__ == "__main__":
    main()
