"""The users recently found active, so that an authenticated request does not read its user row
each time (the row is the only database read of a request such as ``/users/me``).

An entry lives ``ttl_s`` seconds: deactivating or deleting an account elsewhere (another replica,
an operator's SQL) takes effect within that time, and at once in the process that deleted it.
Entries are detached copies of the row, read-only by contract (routes read columns only).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from fincoach.db.tables import User

MAX_USERS = 10_000


class ActiveUsers:
    def __init__(
        self,
        ttl_s: float,
        *,
        max_users: int = MAX_USERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_users = max_users
        self._clock = clock
        self._users: OrderedDict[int, tuple[float, User]] = OrderedDict()

    def get(self, user_id: int) -> User | None:
        entry = self._users.get(user_id)
        if entry is None:
            return None
        if self._clock() - entry[0] >= self._ttl_s:
            del self._users[user_id]
            return None
        return entry[1]

    def put(self, user: User) -> None:
        if self._ttl_s <= 0:
            return
        self._users[user.id] = (self._clock(), user)
        self._users.move_to_end(user.id)
        while len(self._users) > self._max_users:
            self._users.popitem(last=False)

    def forget(self, user_id: int) -> None:
        self._users.pop(user_id, None)
