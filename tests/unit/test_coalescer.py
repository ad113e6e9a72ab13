"""Sending together the items that arrive while calls are out."""

from __future__ import annotations

import asyncio

import pytest

from fincoach.usecases.coalescer import Coalescer


class Remote:
    """A model call: doubles each item; ``gate`` holds calls until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = False

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("replica died")
        return [2 * x for x in items]


async def test_an_idle_caller_sends_each_item_at_once() -> None:
    remote = Remote()
    coalescer = Coalescer(remote)
    assert [await coalescer(i) for i in range(3)] == [0, 2, 4]
    assert remote.batches == [[0], [1], [2]]


async def test_items_arriving_while_calls_are_out_go_together() -> None:
    remote = Remote()
    remote.gate.clear()
    coalescer = Coalescer(remote, max_batch=4, max_in_flight=1)
    tasks = [asyncio.create_task(coalescer(i)) for i in range(10)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert remote.batches == [[0]]  # the first went alone; the rest wait for it
    remote.gate.set()
    assert await asyncio.gather(*tasks) == [2 * i for i in range(10)]
    assert remote.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]


async def test_a_failed_call_fails_only_its_items() -> None:
    remote = Remote()
    remote.gate.clear()
    coalescer = Coalescer(remote, max_in_flight=1)
    first = asyncio.create_task(coalescer(1))
    await asyncio.sleep(0)
    remote.fail_next = True
    rest = [asyncio.create_task(coalescer(i)) for i in (2, 3)]
    remote.gate.set()
    with pytest.raises(ConnectionError):
        await first
    assert await asyncio.gather(*rest) == [4, 6]


async def test_an_item_whose_caller_left_is_not_sent() -> None:
    remote = Remote()
    remote.gate.clear()
    coalescer = Coalescer(remote, max_in_flight=1)
    first = asyncio.create_task(coalescer(1))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(coalescer(2), 0.01)
    third = asyncio.create_task(coalescer(3))
    await asyncio.sleep(0)
    remote.gate.set()
    assert (await first, await third) == (2, 6)
    assert remote.batches == [[1], [3]]


async def test_a_wrong_number_of_results_is_an_error() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    coalescer = Coalescer(short)
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        await coalescer(1)
