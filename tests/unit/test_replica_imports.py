"""What each Serve process imports decides its memory (issue 17: every replica is a process of
its own). scikit-learn and SciPy cost about 90 MB of RSS per process: no Serve process loads
them, neither by importing the code nor by unpickling the models (which are plain arrays once
fitted); only training does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sklearn", "scipy")


@pytest.mark.parametrize(
    "module",
    [
        "deployments.ingress",
        "deployments.forecast",
        "deployments.segmentation",
        "deployments.policy",
        "actors.bandit_stats",
    ],
)
def test_importing_a_serve_process_module_loads_no_sklearn(module: str) -> None:
    probe = f"import sys, {module}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"


@pytest.mark.parametrize(
    "service", ["SegmentationService", "ForecastingService", "RecommenderService"]
)
def test_a_model_replica_loads_its_trained_models_without_sklearn(
    service: str, trained_models: str
) -> None:
    """The models a replica unpickles are plain arrays (the mixture, the goal calibration):
    loading and smoke-predicting them, as a replica does at start, loads neither library."""
    probe = (
        "import sys\n"
        "from models.registry import ModelRegistry\n"
        f"from models.serving import {service}\n"
        f"reports = {service}(ModelRegistry({trained_models!r})).apply()\n"
        "assert reports and all(r.ok for r in reports), reports\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"{service} loaded {out.stdout.strip()}"
