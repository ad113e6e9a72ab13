"""Goal queries, always scoped to the owner: another user's goal id is simply not found."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.tables import Goal
from fincoach.errors import NotFound


async def list_goals(session: AsyncSession, user_id: int, status: str | None = None) -> list[Goal]:
    query = select(Goal).where(Goal.user_id == user_id)
    if status is not None:
        query = query.where(Goal.status == status)
    return list(await session.scalars(query.order_by(Goal.target_date, Goal.id)))


async def get_goal(session: AsyncSession, user_id: int, goal_id: int) -> Goal:
    goal = await session.scalar(select(Goal).where(Goal.id == goal_id, Goal.user_id == user_id))
    if goal is None:
        raise NotFound(f"Goal {goal_id} not found")
    return goal


async def create_goal(session: AsyncSession, user_id: int, values: dict[str, Any]) -> Goal:
    goal = Goal(user_id=user_id, **values)
    session.add(goal)
    await session.flush()
    await session.refresh(goal)
    return goal


async def update_goal(
    session: AsyncSession, user_id: int, goal_id: int, changes: dict[str, Any]
) -> Goal:
    goal = await get_goal(session, user_id, goal_id)
    for key, value in changes.items():
        setattr(goal, key, value)
    await session.flush()
    await session.refresh(goal)
    return goal


async def delete_goal(session: AsyncSession, user_id: int, goal_id: int) -> None:
    await session.delete(await get_goal(session, user_id, goal_id))
    await session.flush()
