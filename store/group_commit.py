"""Group commit: concurrent writes queue while a batch is in flight and go together in the next.

`GroupCommit.submit(item)` returns the item's own outcome. A call that finds fewer than
`max_in_flight` batches running writes its item at once, alone, itself (no task, no queue: no
added latency when calls do not overlap); otherwise it queues, and when a batch finishes the
next one takes up to `max_batch` queued items, in arrival order. `write_batch(items)` answers
one outcome per item, in the same order: a result or an exception, so a batch never gives one
caller another's error.

A batch of queued items runs in a task of its own, in the context of its first caller (so its
database span has a parent): cancelling a caller never cancels a batch others wait for. A
caller cancelled while queued is left out of the batch; one cancelled while its batch runs gets
no answer, and its write may be committed, as a cancel during a single INSERT may commit (a
lone call cancelled during its own write cancels that write, exactly as before group commit).
Every other caller is answered, whatever happens to the batch: if `write_batch` raises, each
gets that error; if the batch's task is cancelled (the loop shutting down),
StoreUnavailableError, since the write's outcome is then unknown.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from taskgate.store.errors import StoreUnavailableError

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

#: One outcome per item of a batch: its result, or the error its caller gets.
WriteBatch = Callable[[list[ItemT]], Awaitable[Sequence[ResultT | BaseException]]]


@dataclass(slots=True)
class _Waiter(Generic[ItemT, ResultT]):
    item: ItemT
    future: asyncio.Future[ResultT]
    context: contextvars.Context  # the caller's, for a batch it is first in


class GroupCommit(Generic[ItemT, ResultT]):
    """Batches concurrent `submit` calls into calls of `write_batch` (see the module)."""

    def __init__(
        self, write_batch: WriteBatch[ItemT, ResultT], *, max_batch: int, max_in_flight: int
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: deque[_Waiter[ItemT, ResultT]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()  # strong references to running batches

    async def submit(self, item: ItemT) -> ResultT:
        """The item's outcome, once its batch is done (its write committed, or failed)."""
        if self._in_flight < self._max_in_flight:
            # Nothing is queued (a finishing batch takes the queue before it lets go of its
            # place), so this call goes first, at once, alone.
            self._in_flight += 1
            try:
                (outcome,) = await self._write_batch([item])
            finally:
                self._next()
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiter(item, future, contextvars.copy_context()))
        return await future

    def _start(self, batch: list[_Waiter[ItemT, ResultT]]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(batch), context=batch[0].context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Waiter[ItemT, ResultT]]) -> None:
        try:
            outcomes = await self._write_batch([waiter.item for waiter in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"write_batch gave {len(outcomes)} outcomes for {len(batch)}")
            for waiter, outcome in zip(batch, outcomes, strict=True):
                _answer(waiter.future, outcome)
        except Exception as error:  # every caller gets it, none is left waiting
            for waiter in batch:
                _answer(waiter.future, error)
        except BaseException:
            for waiter in batch:
                _answer(waiter.future, StoreUnavailableError("database unavailable"))
            raise
        finally:
            self._next()

    def _next(self) -> None:
        """Start the next batch with what is queued, or give up this batch's place."""
        batch: list[_Waiter[ItemT, ResultT]] = []
        while self._queue and len(batch) < self._max_batch:
            waiter = self._queue.popleft()
            if not waiter.future.done():  # a caller cancelled while queued is left out
                batch.append(waiter)
        if batch:
            self._start(batch)
        else:
            self._in_flight -= 1


def _answer(future: asyncio.Future[ResultT], outcome: ResultT | BaseException) -> None:
    if future.done():  # its caller was cancelled
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
