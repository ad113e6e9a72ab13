"""`fincoach train` and `fincoach evaluate` end to end: registry versions, metrics table,
model_performance rows (the quick pipeline, as `make serve` runs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.tables import ModelPerformance
from models.registry import ModelRegistry

FINCOACH = str(Path(sys.executable).parent / "fincoach")
ARTIFACTS = {"segmentation", "forecast", "goal_probability", "cql_legacy", "cql_enhanced", "bandit"}


def fincoach(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FINCOACH, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
async def test_quick_training_writes_every_model_and_its_metrics(
    database_url: str, clean_engine: AsyncEngine, tmp_path: Path
) -> None:
    models = tmp_path / "artifacts"
    # The whole quick pipeline once (SQLite); on PostgreSQL one cheap step shows the rows land.
    only = [] if database_url.startswith("sqlite") else ["--only", "bandit"]
    result = fincoach(
        "train", "--quick", "--model-dir", str(models), "--database-url", database_url, *only
    )
    assert result.returncode == 0, result.stderr[-2000:]
    registry = ModelRegistry(models)
    expected = ARTIFACTS if not only else {"bandit"}
    assert set(registry.names()) == expected
    for name in expected:
        manifest = registry.manifest(name, None)
        assert manifest.version == "v1" and manifest.metrics, name
        assert "evaluation" in manifest.extra
    async with clean_engine.connect() as conn:
        rows = (await conn.execute(select(ModelPerformance.model_name))).scalars().all()
    assert sorted(rows) == sorted(expected)

    table = fincoach("evaluate", "--model-dir", str(models), "--markdown", str(tmp_path / "t.md"))
    assert table.returncode == 0, table.stderr
    assert "| model | metric | ours |" in table.stdout
    written = (tmp_path / "t.md").read_text()
    if not only:
        for model in ("segmentation", "forecast", "goal probability", "recommender", "bandit"):
            assert f"| {model}" in written, model
        # A second run adds versions instead of overwriting.
        again = fincoach(
            "train", "--quick", "--only", "bandit", "--model-dir", str(models), "--no-db"
        )
        assert again.returncode == 0 and registry.latest_version("bandit") == "v2"


def test_evaluate_without_models_says_what_to_do(tmp_path: Path) -> None:
    result = fincoach("evaluate", "--model-dir", str(tmp_path / "none"))
    assert result.returncode == 1 and "fincoach train" in result.stderr


def test_train_refuses_unknown_model_names(tmp_path: Path) -> None:
    result = fincoach("train", "--quick", "--only", "nonsense", "--model-dir", str(tmp_path))
    assert result.returncode != 0 and "nonsense" in result.stderr
