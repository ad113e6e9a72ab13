"""The cache of users found active: entries expire, the oldest go first, 0 turns it off."""

from __future__ import annotations

from datetime import UTC, datetime

from fincoach.db.tables import User
from fincoach.usecases.active_users import ActiveUsers


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def user(user_id: int) -> User:
    return User(id=user_id, email=f"u{user_id}@example.com", created_at=datetime.now(UTC))


def test_an_entry_lives_ttl_seconds() -> None:
    clock = Clock()
    users = ActiveUsers(2.0, clock=clock)
    users.put(user(1))
    clock.now = 1.9
    found = users.get(1)
    assert found is not None and found.id == 1
    clock.now = 2.0
    assert users.get(1) is None
    users.put(user(1))
    users.forget(1)
    assert users.get(1) is None


def test_the_least_recently_stored_go_first() -> None:
    users = ActiveUsers(60, max_users=3, clock=Clock())
    for i in range(1, 5):
        users.put(user(i))
    assert users.get(1) is None
    assert [users.get(i) is not None for i in (2, 3, 4)] == [True, True, True]


def test_zero_ttl_keeps_nothing() -> None:
    users = ActiveUsers(0, clock=Clock())
    users.put(user(1))
    assert users.get(1) is None
