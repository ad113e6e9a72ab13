"""Savings goals. Every change is committed first, then the predictions it makes stale are
dropped from the cache."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.cache.predictions import ON_GOAL_CHANGE
from fincoach.db.queries import goals as goal_rows
from fincoach.db.tables import Goal
from fincoach.errors import VALIDATION_ERROR, CoachError
from fincoach.usecases import quotas
from fincoach.usecases.context import Context


class GoalDateInPast(CoachError):
    status = 422
    code = VALIDATION_ERROR
    title = "Invalid request"


async def _goal_changed(ctx: Context, user_id: int, goal_id: int) -> None:
    """A goal changed: its own predictions, and the recommendations that weigh goals."""
    await ctx.predictions.invalidate(user_id, ("goal",), goal=goal_id)
    await ctx.predictions.invalidate(user_id, ON_GOAL_CHANGE)


async def list_all(session: AsyncSession, user_id: int, status: str | None) -> list[Goal]:
    return await goal_rows.list_goals(session, user_id, status)


async def get(session: AsyncSession, user_id: int, goal_id: int) -> Goal:
    return await goal_rows.get_goal(session, user_id, goal_id)


def _not_past(target: date) -> None:
    if target < datetime.now(UTC).date():
        raise GoalDateInPast("body.target_date: the target date lies in the past")


async def add(ctx: Context, session: AsyncSession, user_id: int, values: dict[str, Any]) -> Goal:
    _not_past(values["target_date"])
    async with quotas.user_lock("goal", user_id):
        await quotas.check_goal(session, ctx.settings, user_id)
        goal = await goal_rows.create_goal(session, user_id, values)
        await session.commit()
    await ctx.predictions.invalidate(user_id, ON_GOAL_CHANGE)
    return goal


async def update(
    ctx: Context, session: AsyncSession, user_id: int, goal_id: int, changes: dict[str, Any]
) -> Goal:
    if changes.get("target_date") is not None:
        _not_past(changes["target_date"])
    goal = await goal_rows.update_goal(session, user_id, goal_id, changes)
    await session.commit()
    await _goal_changed(ctx, user_id, goal_id)
    return goal


async def delete(ctx: Context, session: AsyncSession, user_id: int, goal_id: int) -> None:
    await goal_rows.delete_goal(session, user_id, goal_id)
    await session.commit()
    await _goal_changed(ctx, user_id, goal_id)
