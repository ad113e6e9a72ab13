"""What each Serve process imports decides its memory (issue 17: every replica is a process of
its own). scikit-learn and SciPy cost about 90 MB of RSS per process; only the model
replicas whose artifacts are scikit-learn objects may load them, and they do so when the
artifact is unpickled, never by importing the code."""

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
