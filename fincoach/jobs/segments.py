"""The segment refresh job: assign every user (or the given ones) to a segment and store it.

Idempotent: running it twice stores the same assignments. It reads rows and runs the segmenter
in-process from the registry; serving replicas are not involved.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from fincoach.db.engine import make_engine, make_sessionmaker
from fincoach.db.queries.features import load_snapshot
from fincoach.db.queries.segments import upsert_segment
from fincoach.db.tables import User
from fincoach.features.state import behavior_features
from models.registry import ModelRegistry
from models.serving import SegmentationService

logger = logging.getLogger("fincoach.jobs")
BATCH = 200


async def refresh_segments(
    database_url: str, model_dir: str, user_ids: list[int] | None = None
) -> int:
    """Recompute and store segments; returns how many users were assigned."""
    service = SegmentationService(ModelRegistry(model_dir))
    report = service.apply()
    if report and not report[0].ok:
        raise RuntimeError(f"cannot refresh segments: {report[0].error}")
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    done = 0
    try:
        async with sessions() as session:
            ids = user_ids or list(await session.scalars(select(User.id).order_by(User.id)))
        for start in range(0, len(ids), BATCH):
            async with sessions() as session:
                for user_id in ids[start : start + BATCH]:
                    features = behavior_features(await load_snapshot(session, user_id))
                    await upsert_segment(session, user_id, service.assign(features)[0], features)
                    done += 1
                await session.commit()
    finally:
        await engine.dispose()
    logger.info("segments refreshed for %d users", done)
    return done
