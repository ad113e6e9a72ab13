"""Segments: a user's behavioral segment (assigned on first need, refreshed on demand and by the
daily job), its profile, and the user beside the segment's other users (aggregates only)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.cache.predictions import ON_SEGMENT_CHANGE
from fincoach.db.queries import peers as peers_q
from fincoach.db.queries import segments as q
from fincoach.db.queries.features import load_snapshot
from fincoach.db.queries.users import all_user_ids
from fincoach.db.tables import UserSegment
from fincoach.errors import ModelUnavailable
from fincoach.features.frames import UserSnapshot
from fincoach.features.state import BEHAVIOR_FEATURE_NAMES, behavior_features
from fincoach.features.vocab import SEGMENT_NAMES
from fincoach.observability import metrics
from fincoach.usecases.clients import ModelCallFailed
from fincoach.usecases.context import Context
from models.names import SEGMENTATION
from models.segmentation import keep_segment
from schemas.original import SegmentInfo
from schemas.segments import (
    PeerAverages,
    RefreshSegmentResponse,
    SegmentComparisonResponse,
    SegmentInsightsResponse,
    SegmentResponse,
)

logger = logging.getLogger("fincoach.segments")
# An aggregate of fewer users could reveal one user's numbers: peer statistics are published
# for a segment of at least MIN_PEER_GROUP users, republished only when that many changed,
# with counts in steps of PEER_COUNT_STEP and values to PEER_DIGITS significant digits.
MIN_PEER_GROUP = 10
MIN_PEERS = MIN_PEER_GROUP  # the name the answers' messages use
PEER_COUNT_STEP = 5
PEER_DIGITS = 2
COMMIT_EVERY = 100


async def assign(
    ctx: Context, session: AsyncSession, user_id: int, snapshot: UserSnapshot | None = None
) -> UserSegment:
    """Assign the user to a segment from their behavior now and store it (the caller commits);
    ModelCallFailed when the segmentation model is unavailable."""
    features = behavior_features(snapshot or await load_snapshot(session, user_id))
    assigned = await ctx.models.assign_segment(features)
    previous = await q.get_segment(session, user_id)
    assigned = with_hysteresis(assigned, previous.segment_id if previous else None)
    return await q.upsert_segment(session, user_id, assigned, features)


def with_hysteresis(assigned: dict[str, Any], previous: int | None) -> dict[str, Any]:
    """The model's answer, but the stored segment kept unless another is clearly ahead
    (``models.segmentation.keep_segment``); confidence is that segment's posterior."""
    probabilities = assigned.get("probabilities")
    if not probabilities:
        return assigned
    segment = keep_segment(probabilities, previous)
    return {
        **assigned,
        "segment_id": segment,
        "segment_name": SEGMENT_NAMES[segment],
        "confidence": float(probabilities[segment]),
    }


async def current(
    ctx: Context,
    session: AsyncSession,
    user_id: int,
    snapshot: UserSnapshot | None = None,
    *,
    refresh: bool = False,
) -> tuple[UserSegment | None, bool]:
    """The stored segment, assigned and stored first if missing (or ``refresh``); the user's
    rows are read only then, unless the caller has them already. (row or None, True) when the
    segmentation model is unavailable. The caller commits."""
    row = await q.get_segment(session, user_id)
    if row is not None and not refresh:
        return row, False
    try:
        return await assign(ctx, session, user_id, snapshot), False
    except ModelCallFailed:
        metrics.count_fallback(SEGMENTATION)
        return row, True


def _no_segment() -> ModelUnavailable:
    return ModelUnavailable("the segmentation model is unavailable and no segment is stored yet")


async def required(
    ctx: Context, session: AsyncSession, user_id: int, snapshot: UserSnapshot | None = None
) -> tuple[UserSegment, bool]:
    """The segment (stored, or assigned and committed now), or 503 when there is none."""
    row, fallback = await current(ctx, session, user_id, snapshot)
    await session.commit()
    if row is None:
        raise _no_segment()
    return row, fallback


def as_response(row: UserSegment, fallback: bool = False) -> SegmentResponse:
    return SegmentResponse.model_validate(row).model_copy(
        update={"fallback": fallback, "characteristics": dict(row.features or {})}
    )


def segment_info(row: UserSegment) -> SegmentInfo:
    """The segment in the original API's shape."""
    return SegmentInfo(
        segment_id=row.segment_id,
        segment_name=row.segment_name,
        confidence=row.confidence,
        characteristics={k: float(v) for k, v in (row.features or {}).items()},
    )


def behavior_dict(snapshot: UserSnapshot) -> dict[str, float]:
    """The user's behavioral features by name."""
    return dict(zip(BEHAVIOR_FEATURE_NAMES, map(float, behavior_features(snapshot)), strict=True))


async def user_segment(ctx: Context, session: AsyncSession, user_id: int) -> SegmentResponse:
    row, fallback = await required(ctx, session, user_id)
    return as_response(row, fallback)


async def refresh(ctx: Context, session: AsyncSession, user_id: int) -> RefreshSegmentResponse:
    """Recompute the segment from the latest behavior, store it, and drop what depended on it."""
    row, fallback = await current(ctx, session, user_id, refresh=True)
    if fallback or row is None:
        raise _no_segment()
    await session.commit()
    await ctx.predictions.invalidate(user_id, ON_SEGMENT_CHANGE)
    return RefreshSegmentResponse(
        **as_response(row).model_dump(),
        message="User segment updated successfully",
        segment_info=segment_info(row),
    )


async def insights(ctx: Context, session: AsyncSession, user_id: int) -> SegmentInsightsResponse:
    """The segment's profile and where the user differs most from its centroid."""
    snapshot = await load_snapshot(session, user_id)
    row, fallback = await required(ctx, session, user_id, snapshot)
    try:
        profiles = await ctx.models.segment_characteristics()
    except ModelCallFailed as exc:
        raise _no_segment() from exc
    profile = profiles[row.segment_id]
    you = behavior_dict(snapshot)
    centroid = profile["centroid"]
    differences = sorted(
        (
            {
                "feature": k,
                "you": you[k],
                "segment": centroid[k],
                "difference": you[k] - centroid[k],
            }
            for k in BEHAVIOR_FEATURE_NAMES
        ),
        key=lambda d: -abs(d["difference"]) / (abs(d["segment"]) + 1e-6),
    )[:3]
    return SegmentInsightsResponse(
        segment=as_response(row, fallback),
        description=profile["description"],
        share_of_users=profile["share"],
        centroid=centroid,
        you=you,
        differences=differences,
        segment_info=segment_info(row),
        characteristics=profile,
        peer_comparison=[],
        generated_at=row.updated_at,
    )


def round_sig(value: float, digits: int = PEER_DIGITS) -> float:
    """``value`` to ``digits`` significant digits (a coarse value hides one member's share)."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def coarse_count(n: int) -> int:
    """A member count published in steps of PEER_COUNT_STEP (rounded down)."""
    return n - n % PEER_COUNT_STEP


def peer_stats(members: list[tuple[int, dict[str, Any], float]]) -> dict[str, Any]:
    """Rounded aggregates of a segment's members: feature averages, balance average and
    balance deciles."""
    balances = np.array([b for _, _, b in members], dtype=float)
    return {
        "features": {
            k: round_sig(float(np.mean([float(f.get(k, 0.0)) for _, f, _ in members])))
            for k in BEHAVIOR_FEATURE_NAMES
        },
        "balance_avg": round_sig(float(balances.mean())),
        "balance_deciles": [
            round_sig(float(q)) for q in np.quantile(balances, np.linspace(0.1, 0.9, 9))
        ],
    }


async def publish_peer_snapshot(ctx: Context) -> dict[str, Any]:
    """Recompute each segment's peer aggregates and publish those whose membership changed by
    at least MIN_PEER_GROUP users since their last publication (a segment below MIN_PEER_GROUP
    members is withdrawn). Peer answers read only what is published, so the difference of any
    two answers mixes at least MIN_PEER_GROUP users' changes, never one newcomer's values."""
    published = kept = withdrawn = 0
    async with ctx.sessions() as session:
        groups = await peers_q.segment_members(session)
        current = await peers_q.snapshots(session)
        for segment_id in sorted(set(groups) | set(current)):
            members = groups.get(segment_id, [])
            old = current.get(segment_id)
            if len(members) < MIN_PEER_GROUP:
                if old is not None:
                    await peers_q.withdraw(session, segment_id)
                    withdrawn += 1
                continue
            ids = [user_id for user_id, _, _ in members]
            if old is not None:
                changed = set(ids) ^ {int(i) for i in old.members.get("ids", [])}
                if len(changed) < MIN_PEER_GROUP:
                    kept += 1
                    continue
            await peers_q.publish(
                session,
                segment_id,
                member_count=coarse_count(len(ids)),
                members=ids,
                stats=peer_stats(members),
            )
            published += 1
        await session.commit()
    return {"published": published, "kept": kept, "withdrawn": withdrawn}


async def peers_average(
    session: AsyncSession, segment_id: int, user_id: int
) -> tuple[int, dict[str, float]] | None:
    """(coarse member count, rounded feature averages) of the segment as last published, or
    None when none is (fewer than MIN_PEER_GROUP members, or not computed yet). ``user_id``
    is not used: the snapshot is the same for every asker, so asking reveals nothing."""
    snapshot = await peers_q.get_snapshot(session, segment_id)
    if snapshot is None:
        return None
    features = snapshot.stats.get("features", {})
    return snapshot.member_count, {k: float(features.get(k, 0.0)) for k in BEHAVIOR_FEATURE_NAMES}


async def peer_averages(
    session: AsyncSession, segment_id: int, user_id: int, features: dict[str, float]
) -> PeerAverages | None:
    """The original API's peer averages (balance, savings rate, volatility) from the published
    snapshot; ``features`` is its feature average."""
    snapshot = await peers_q.get_snapshot(session, segment_id)
    if snapshot is None:
        return None
    return PeerAverages(
        current_balance=float(snapshot.stats.get("balance_avg", 0.0)),
        savings_rate=features["savings_rate"],
        spending_volatility=features["spending_volatility"],
    )


async def balance_percentile(session: AsyncSession, segment_id: int, balance: float) -> float:
    """The share of the segment (by the published deciles) with a lower balance, in tenths."""
    snapshot = await peers_q.get_snapshot(session, segment_id)
    deciles = snapshot.stats.get("balance_deciles", []) if snapshot is not None else []
    if not deciles:
        return 0.5
    return round(sum(1 for d in deciles if d < balance) / (len(deciles) + 1), 1)


async def comparison(
    ctx: Context, session: AsyncSession, user_id: int
) -> SegmentComparisonResponse:
    """The user beside the average of the other users of their segment (aggregates only); with
    fewer than MIN_PEERS of them, a message and no averages."""
    snapshot = await load_snapshot(session, user_id)
    row, fallback = await required(ctx, session, user_id, snapshot)
    peers = await peers_average(session, row.segment_id, user_id)
    you = behavior_dict(snapshot)
    if peers is None:
        return SegmentComparisonResponse(
            message=f"No peer data available for comparison: fewer than {MIN_PEERS} "
            "users in this segment (or not yet published)",
            segment=as_response(row, fallback),
            peer_count=0,
            peer_averages=None,
            peers=[],
            you=you,
            segment_average=None,
        )
    return SegmentComparisonResponse(
        segment=as_response(row, fallback),
        peer_count=peers[0],
        peer_averages=await peer_averages(session, row.segment_id, user_id, peers[1]),
        peers=[],
        you=you,
        segment_average=peers[1],
    )


async def refresh_many(ctx: Context, user_ids: Sequence[int]) -> dict[str, Any]:
    """Recompute and store the segments of these users, committing every COMMIT_EVERY; raises
    when the model failed for every one of them. Idempotent."""
    done = failed = 0
    for start in range(0, len(user_ids), COMMIT_EVERY):
        async with ctx.sessions() as session:
            for user_id in user_ids[start : start + COMMIT_EVERY]:
                try:
                    await assign(ctx, session, user_id)
                except ModelCallFailed:
                    failed += 1
                    continue
                done += 1
            await session.commit()
    if failed and not done:
        raise RuntimeError(f"the segmentation model failed for all {failed} users")
    logger.info("segments assigned to %d users (%d failed)", done, failed)
    return {"users": len(user_ids), "assigned": done, "failed": failed}


async def refresh_all(ctx: Context) -> dict[str, Any]:
    """``refresh_many`` over every user (the demo loader, after loading), then the peer
    snapshot."""
    async with ctx.sessions() as session:
        user_ids = await all_user_ids(session)
    done = await refresh_many(ctx, user_ids)
    await publish_peer_snapshot(ctx)
    return done
