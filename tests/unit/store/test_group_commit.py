"""GroupCommit (store/group_commit.py, decision P34) with a fake write_batch: who goes in which
batch, how many batches run at once, and that every caller gets its own outcome, whatever
happens to the batch or to the other callers."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence

import pytest

from taskgate.store.errors import StoreUnavailableError
from taskgate.store.group_commit import GroupCommit

CALLER = contextvars.ContextVar("CALLER", default="none")


class Writer:
    """A write_batch that records each batch and waits until the test releases it."""

    def __init__(self, fail: frozenset[int] = frozenset()) -> None:
        self.batches: list[list[int]] = []
        self.contexts: list[str] = []
        self.gates: list[asyncio.Event] = []
        self.fail = fail
        self.running = 0
        self.most_running = 0

    async def __call__(self, items: list[int]) -> Sequence[str | BaseException]:
        self.batches.append(list(items))
        self.contexts.append(CALLER.get())
        gate = asyncio.Event()
        self.gates.append(gate)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await gate.wait()
        finally:
            self.running -= 1
        return [ValueError(f"bad {i}") if i in self.fail else f"row {i}" for i in items]

    async def started(self, count: int) -> None:
        """Until `count` batches have started (bounded)."""
        for _ in range(1000):
            if len(self.batches) >= count:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{len(self.batches)} batches started, expected {count}")

    def release(self, index: int) -> None:
        self.gates[index].set()


async def submit_as(batcher: GroupCommit[int, str], item: int) -> str:
    CALLER.set(f"caller {item}")
    return await batcher.submit(item)


async def test_a_lone_call_is_written_at_once_alone() -> None:
    writer = Writer()
    batcher = GroupCommit(writer, max_batch=64, max_in_flight=1)

    call = asyncio.create_task(submit_as(batcher, 1))
    await writer.started(1)
    writer.release(0)

    assert await call == "row 1"
    assert writer.batches == [[1]]
    assert writer.contexts == ["caller 1"]


async def test_calls_during_a_batch_go_together_in_the_next_in_order() -> None:
    writer = Writer()
    batcher = GroupCommit(writer, max_batch=64, max_in_flight=1)
    first = asyncio.create_task(submit_as(batcher, 0))
    await writer.started(1)
    queued = [asyncio.create_task(submit_as(batcher, i)) for i in range(1, 11)]
    await asyncio.sleep(0)

    writer.release(0)
    await writer.started(2)
    writer.release(1)

    assert await first == "row 0"
    assert await asyncio.gather(*queued) == [f"row {i}" for i in range(1, 11)]
    assert writer.batches == [[0], list(range(1, 11))]
    # A batch runs in its first caller's context (its database span's parent).
    assert writer.contexts == ["caller 0", "caller 1"]


async def test_a_batch_takes_at_most_max_batch_calls() -> None:
    writer = Writer()
    batcher = GroupCommit(writer, max_batch=4, max_in_flight=1)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(10)]
    for index, expected in enumerate(([0], [1, 2, 3, 4], [5, 6, 7, 8], [9])):
        await writer.started(index + 1)
        assert writer.batches[index] == expected
        writer.release(index)

    assert await asyncio.gather(*calls) == [f"row {i}" for i in range(10)]


@pytest.mark.parametrize("max_in_flight", [1, 2, 3])
async def test_at_most_max_in_flight_batches_run_at_once(max_in_flight: int) -> None:
    writer = Writer()
    batcher = GroupCommit(writer, max_batch=64, max_in_flight=max_in_flight)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(20)]
    await writer.started(max_in_flight)
    for _ in range(10):
        await asyncio.sleep(0)

    # The first max_in_flight calls each start a batch at once; the rest wait together.
    assert writer.batches == [[i] for i in range(max_in_flight)]
    writer.release(0)
    await writer.started(max_in_flight + 1)
    assert writer.batches[-1] == list(range(max_in_flight, 20))
    for index in range(1, len(writer.gates)):
        writer.release(index)

    assert await asyncio.gather(*calls) == [f"row {i}" for i in range(20)]
    assert writer.most_running == max_in_flight


async def test_each_caller_gets_its_own_outcome() -> None:
    writer = Writer(fail=frozenset({2, 5}))
    batcher = GroupCommit(writer, max_batch=64, max_in_flight=1)
    first = asyncio.create_task(batcher.submit(0))
    await writer.started(1)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(1, 8)]
    writer.release(0)
    await writer.started(2)
    writer.release(1)

    outcomes = await asyncio.gather(first, *calls, return_exceptions=True)

    assert [str(o) for o in outcomes] == [
        "row 0", "row 1", "bad 2", "row 3", "row 4", "bad 5", "row 6", "row 7",
    ]  # fmt: skip
    assert isinstance(outcomes[2], ValueError)


async def test_a_failing_write_batch_fails_its_callers_only() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def write_batch(items: list[int]) -> list[str]:
        batches.append(items)
        await gate.wait()
        if 1 in items:
            raise RuntimeError("boom")
        return [f"row {i}" for i in items]

    batcher = GroupCommit(write_batch, max_batch=2, max_in_flight=1)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(5)]
    await asyncio.sleep(0)
    gate.set()

    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert batches == [[0], [1, 2], [3, 4]]
    assert [str(o) for o in outcomes] == ["row 0", "boom", "boom", "row 3", "row 4"]


async def test_too_few_outcomes_fail_the_batch_instead_of_hanging() -> None:
    async def write_batch(items: list[int]) -> list[str]:
        await asyncio.sleep(0)
        return ["only one"]

    batcher = GroupCommit(write_batch, max_batch=64, max_in_flight=1)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(3)]

    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert outcomes[0] == "only one"  # a lone call: a batch of one
    assert [str(o) for o in outcomes[1:]] == ["write_batch gave 1 outcomes for 2"] * 2


async def test_a_caller_cancelled_while_queued_is_left_out() -> None:
    writer = Writer()
    batcher = GroupCommit(writer, max_batch=64, max_in_flight=1)
    first = asyncio.create_task(batcher.submit(0))
    await writer.started(1)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(1, 4)]
    await asyncio.sleep(0)

    calls[1].cancel()
    await asyncio.sleep(0)
    writer.release(0)
    await writer.started(2)
    writer.release(1)

    assert await first == "row 0"
    assert await calls[0] == "row 1"
    assert await calls[2] == "row 3"
    assert calls[1].cancelled()
    assert writer.batches == [[0], [1, 3]]


async def test_a_caller_cancelled_during_its_batch_does_not_stop_it() -> None:
    writer = Writer()
    batcher = GroupCommit(writer, max_batch=64, max_in_flight=1)
    first = asyncio.create_task(batcher.submit(0))
    await writer.started(1)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(1, 4)]
    writer.release(0)
    await writer.started(2)

    calls[0].cancel()  # the first caller of the running batch, whose context it runs in
    await asyncio.sleep(0)
    writer.release(1)

    assert await first == "row 0"
    assert [await calls[1], await calls[2]] == ["row 2", "row 3"]
    assert calls[0].cancelled()
    assert writer.batches == [[0], [1, 2, 3]]


async def test_everyone_queued_cancelled_frees_the_batchers_place() -> None:
    writer = Writer()
    batcher = GroupCommit(writer, max_batch=64, max_in_flight=1)
    first = asyncio.create_task(batcher.submit(0))
    await writer.started(1)
    queued = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    queued.cancel()
    writer.release(0)
    assert await first == "row 0"

    later = asyncio.create_task(batcher.submit(2))
    await writer.started(2)
    writer.release(1)

    assert await later == "row 2"
    assert writer.batches == [[0], [2]]


async def test_a_lone_call_cancelled_during_its_write_cancels_it_the_queue_goes_on() -> None:
    writer = Writer()
    batcher = GroupCommit(writer, max_batch=64, max_in_flight=1)
    lone = asyncio.create_task(batcher.submit(0))
    await writer.started(1)
    queued = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0)

    lone.cancel()  # its write is its own: cancelled with it, as a single INSERT was
    await writer.started(2)
    writer.release(1)

    assert await asyncio.gather(*queued) == ["row 1", "row 2"]
    assert lone.cancelled()
    assert writer.batches == [[0], [1, 2]]


async def test_a_cancelled_batch_answers_unavailable_and_the_queue_goes_on() -> None:
    writer = Writer()
    batcher = GroupCommit(writer, max_batch=64, max_in_flight=1)
    lone = asyncio.create_task(batcher.submit(0))
    await writer.started(1)
    batch = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    writer.release(0)
    await writer.started(2)
    later = asyncio.create_task(batcher.submit(3))
    await asyncio.sleep(0)

    (batch_task,) = batcher._tasks  # what the loop shutting down would cancel
    batch_task.cancel()
    await writer.started(3)
    writer.release(2)

    assert await lone == "row 0"
    for call in batch:
        with pytest.raises(StoreUnavailableError):
            await call
    assert await later == "row 3"
    assert writer.batches == [[0], [1, 2], [3]]


@pytest.mark.parametrize(("max_batch", "max_in_flight"), [(0, 1), (1, 0)])
def test_limits_must_be_positive(max_batch: int, max_in_flight: int) -> None:
    async def write_batch(items: list[int]) -> list[str]:
        return []

    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(write_batch, max_batch=max_batch, max_in_flight=max_in_flight)
