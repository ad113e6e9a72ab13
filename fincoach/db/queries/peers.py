"""The published peer snapshot (segment_peer_snapshot) and what it is computed from. Functions
take ``session`` and never commit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.tables import SegmentPeerSnapshot, UserSegment, Wallet


async def segment_members(
    session: AsyncSession,
) -> dict[int, list[tuple[int, dict[str, Any], float]]]:
    """{segment id: [(user id, stored features, wallet balance)]} over every stored segment."""
    rows = await session.execute(
        select(UserSegment.segment_id, UserSegment.user_id, UserSegment.features, Wallet.balance)
        .outerjoin(Wallet, Wallet.user_id == UserSegment.user_id)
        .order_by(UserSegment.segment_id, UserSegment.user_id)
    )
    groups: dict[int, list[tuple[int, dict[str, Any], float]]] = {}
    for segment_id, user_id, features, balance in rows.all():
        groups.setdefault(int(segment_id), []).append(
            (int(user_id), dict(features or {}), float(balance or 0.0))
        )
    return groups


async def snapshots(session: AsyncSession) -> dict[int, SegmentPeerSnapshot]:
    rows = await session.scalars(select(SegmentPeerSnapshot))
    return {row.segment_id: row for row in rows.all()}


async def get_snapshot(session: AsyncSession, segment_id: int) -> SegmentPeerSnapshot | None:
    return await session.get(SegmentPeerSnapshot, segment_id)


async def publish(
    session: AsyncSession,
    segment_id: int,
    *,
    member_count: int,
    members: list[int],
    stats: dict[str, Any],
) -> None:
    await session.merge(
        SegmentPeerSnapshot(
            segment_id=segment_id,
            member_count=member_count,
            members={"ids": members},
            stats=stats,
            refreshed_at=datetime.now(UTC),
        )
    )
    await session.flush()


async def withdraw(session: AsyncSession, segment_id: int) -> None:
    await session.execute(
        delete(SegmentPeerSnapshot).where(SegmentPeerSnapshot.segment_id == segment_id)
    )
