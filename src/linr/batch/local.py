"""Local backends: fits in this process (one worker) or in a pool of worker processes.

A backend runs its ``task`` (:func:`~linr.batch.work.fit_group` for ``linr batch``: groups of
payloads, one image each or several fitted together with ``--stack``;
:func:`linr.tiling.fit_tile_group` for the tiles of one image) on what it is given:
``submit`` returns a handle, ``wait`` returns at
least one finished ``(handle, results)`` (a list, one per payload, or one error dict for the
whole group when the worker was lost), ``close(abort=...)`` ends it (``abort`` kills fits in
flight: Ctrl-C should not wait minutes for them), ``cancel(handles)`` stops those groups (queued or
running; the backend stays usable: the tiles of an image whose other tile failed). ``slots`` is how many groups it runs at once;
the driver keeps exactly that many in flight, so an interruption loses at most ``slots`` groups.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

from .work import fit_group, init_worker

__all__ = ["InlineBackend", "PoolBackend"]


class InlineBackend:
    """One fit at a time in the driver process (``--workers 1``): no start-up cost."""

    name = "local"
    slots = 1

    def __init__(self, *, task: Callable[[Any], Any] = fit_group) -> None:
        self._task = task
        self._next = 0
        self._queued: dict[int, Any] = {}

    def submit(self, group: Any) -> int:
        self._next += 1
        self._queued[self._next] = group
        return self._next

    def wait(self, handles: Sequence[int]) -> list[tuple[int, Any]]:
        handle = handles[0]
        return [(handle, self._task(self._queued.pop(handle)))]

    def close(self, *, abort: bool) -> None:
        self._queued.clear()

    def cancel(self, handles: Sequence[int]) -> None:
        for handle in handles:
            self._queued.pop(handle, None)

    def idle(self) -> None:
        """Nothing held between fits."""

    def with_task(self, task: Callable[[Any], Any]) -> InlineBackend:
        """A backend like this one running ``task`` (such as the tiles of one image)."""
        return InlineBackend(task=task)


WORKER_DIED = ("worker process died (killed or out of memory; from a Python script, also when the "
               "script lacks an 'if __name__ == \"__main__\":' guard around its work, which the "
               "spawned workers re-run on start)")
"""What a fit lost with its worker says."""


class PoolBackend:
    """``workers`` processes (spawned: safe with torch and CUDA); GPU ``devices`` are handed out
    one per worker, round robin when there are more workers than GPUs."""

    name = "local"

    def __init__(self, workers: int, *, devices: Sequence[str] = (),
                 task: Callable[[Any], Any] = fit_group):
        self.slots = workers
        self._task = task
        self._devices = list(devices)
        self._ctx = multiprocessing.get_context("spawn")
        self._pool: cf.ProcessPoolExecutor | None = None
        self._current: set[cf.Future] = set()
        """Futures of the current pool (not of one that broke before)."""

    def _start(self) -> cf.ProcessPoolExecutor:
        queue = None
        if self._devices:
            queue = self._ctx.Queue()
            for i in range(self.slots):
                queue.put(self._devices[i % len(self._devices)])
        return cf.ProcessPoolExecutor(self.slots, mp_context=self._ctx, initializer=init_worker,
                                      initargs=(queue, os.getpid()))

    def submit(self, group: Any) -> cf.Future:
        if self._pool is None:
            self._pool = self._start()
        future = self._pool.submit(self._task, group)
        self._current.add(future)
        return future

    def wait(self, handles: Sequence[cf.Future]) -> list[tuple[cf.Future, Any]]:
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        results = []
        for future in done:
            try:
                results.append((future, future.result()))
            except BrokenProcessPool:
                # A worker died (killed, out of memory, crashed in native code): every fit in
                # flight is lost with it. Record them as failed and start a fresh pool.
                results.append((future, {"error": WORKER_DIED}))
                if future in self._current:
                    self._discard(abort=True)
            self._current.discard(future)
        return results

    def _discard(self, *, abort: bool) -> None:
        if self._pool is None:
            return
        if abort:
            # The executor has no public way to stop running calls; terminate its processes.
            for process in list(getattr(self._pool, "_processes", {}).values()):
                if process.is_alive():
                    process.terminate()
        self._pool.shutdown(wait=not abort, cancel_futures=True)
        self._pool = None
        self._current.clear()

    def close(self, *, abort: bool) -> None:
        self._discard(abort=abort)

    def cancel(self, handles: Sequence[cf.Future]) -> None:
        """Queued groups are dropped; running ones can only be stopped with their processes, so
        then the pool is ended (the next ``submit`` starts a fresh one)."""
        running = [f for f in handles if not f.cancel() and not f.done()]
        for future in handles:
            self._current.discard(future)
        if running:
            self._discard(abort=True)

    def idle(self) -> None:
        """Stop the worker processes until the next ``submit`` (which starts them again), so that
        a sibling pool (:meth:`with_task`) does not run beside idle ones."""
        self._discard(abort=False)

    def with_task(self, task: Callable[[Any], Any]) -> PoolBackend:
        """A pool of as many workers, on the same devices, running ``task`` (such as the tiles of
        one image); its processes start on its first ``submit``."""
        return PoolBackend(self.slots, devices=self._devices, task=task)
