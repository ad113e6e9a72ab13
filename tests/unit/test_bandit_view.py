"""The ingress's local copy of the bandit posterior (no Ray: the actor is a BanditBook in this
process, reached through the same (method, args) calls; time is a fake clock)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from actors.bandit_book import BanditBook
from fincoach.usecases.bandit_view import BanditView


class Actor:
    """A BanditBook behind the actor's calls, counting them; ``down`` makes every call fail."""

    def __init__(self) -> None:
        self.book = BanditBook("sqlite+aiosqlite:///:memory:", "thompson", seed=1)
        self.calls: Counter[str] = Counter()
        self.down = False

    async def __call__(self, method: str, args: tuple[Any, ...]) -> Any:
        self.calls[method] += 1
        if self.down:
            raise ConnectionError("actor died")
        return await getattr(self.book, method)(*args)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let background refreshes (in-process calls, no I/O) finish."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_choices_come_from_the_copy_refreshed_in_the_background() -> None:
    actor, clock = Actor(), Clock()
    view = BanditView(actor, refresh_s=1.0, seed=2, clock=clock)
    assert await view.select("3") is not None  # the first choice waits for the copy
    for _ in range(50):
        await view.select("3")
    await settle()
    assert actor.calls == {"state": 1}
    clock.now = 1.5
    await view.select("3")  # stale: a refresh starts, the choice does not wait for it
    await settle()
    assert actor.calls["state"] == 2  # nothing changed: the actor answered None, copy kept
    assert await view.stats() is not None
    await settle()
    assert actor.calls["state"] == 2


async def test_feedback_goes_to_the_actor_and_shows_in_the_copy() -> None:
    actor, clock = Actor(), Clock()
    view = BanditView(actor, refresh_s=60, seed=3, clock=clock)
    await view.select("1")
    for feedback_id in range(1, 41):
        assert await view("update", (feedback_id, "goal_focused", "1", 1.0)) is True
    assert await view("update", (40, "goal_focused", "1", 1.0)) is False  # applied once
    await settle()  # the refresh the updates started
    stats = await view.stats()
    assert stats is not None
    assert stats["contexts"]["1"]["goal_focused"]["pulls"] == 40
    # 40 successes out of 40: Thompson sampling from the copy almost always picks it.
    picks = Counter([await view.select("1") for _ in range(200)])
    assert picks["goal_focused"] > 180
    assert actor.calls["select"] == 0 and actor.calls["stats"] == 0


async def test_an_unreachable_actor_keeps_the_copy_until_it_is_too_old() -> None:
    actor, clock = Actor(), Clock()
    view = BanditView(actor, refresh_s=1.0, max_stale_s=10.0, seed=4, clock=clock)
    assert await view.select("0") is not None
    actor.down = True
    clock.now = 5.0
    assert await view.select("0") is not None  # stale but trusted
    await settle()
    clock.now = 10.5
    assert await view.select("0") is None and await view.stats() is None
    await settle()
    actor.down = False
    clock.now = 12.0
    assert await view.select("0") is None  # too old still; this call starts a refresh
    await settle()
    assert await view.select("0") is not None


async def test_no_actor_at_start_means_no_choice() -> None:
    actor = Actor()
    actor.down = True
    view = BanditView(actor, refresh_s=1.0)
    assert await view.select("0") is None
    with pytest.raises(ConnectionError):
        await view("update", (1, "goal_focused", "0", 1.0))
