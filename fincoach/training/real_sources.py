"""Which real histories training uses, and up to when (the rest is left for evaluation)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REAL_TRAIN_SHARE = 0.5
# The development account (MoneyVis open bank data) beside the checkout, when it is there.
DEV_ACCOUNT = Path("shared/fincoach-original/dataset/anonymized_original_with_category.csv")


def default_real_data() -> tuple[str, ...]:
    """FINCOACH_REAL_DATA (paths separated by ':'), else the development account beside the
    checkout if present, else none (the simulator alone)."""
    env = os.environ.get("FINCOACH_REAL_DATA")
    if env is not None:
        return tuple(p for p in env.split(":") if p)
    beside = Path(__file__).resolve().parents[2].parent / DEV_ACCOUNT
    return (str(beside),) if beside.is_file() else ()


def real_histories(paths: Iterable[str]) -> list[tuple[Any, date]]:
    """Each real history and the date up to which training may use its outcomes."""
    from fincoach.training.real_data import load_history

    out = []
    for path in paths:
        history = load_history(path)
        span = (history.last_day - history.first_day).days
        out.append((history, history.first_day + timedelta(days=int(span * REAL_TRAIN_SHARE))))
    return out


def sha256_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def real_sources(real: list[tuple[Any, date]], paths: Iterable[str]) -> list[dict[str, Any]]:
    return [
        {
            "history": history.name,
            "path": str(path),
            "sha256": sha256_of(path),
            "first_day": history.first_day.isoformat(),
            "last_day": history.last_day.isoformat(),
            "outcomes_until": until.isoformat(),
        }
        for (history, until), path in zip(real, paths, strict=True)
    ]
