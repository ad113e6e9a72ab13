"""The layer contract of DESIGN.md (pyproject's [tool.importlinter]) holds on this tree, and it
does fail on a wrong-way import: the same contract on a copy with one import pointing up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("deployments", "actors", "schemas", "models", "fincoach")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # this tree's packages before the installed ones
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(cwd / "pyproject.toml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_layer_contract_holds() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_layer_contract_fails_on_a_wrong_way_import(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    query = tmp_path / "fincoach" / "db" / "queries" / "goals.py"
    query.write_text(query.read_text() + "\nimport fincoach.http.app  # points up\n")
    model = tmp_path / "models" / "names.py"
    model.write_text(model.read_text() + "\nimport sqlalchemy  # a model touching the database\n")

    result = _lint(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "fincoach.db is not allowed to import fincoach.http" in result.stdout
    assert "models.names -> sqlalchemy" in result.stdout
