"""A map over items on several workers, its results in the items' order: threads, or processes
forked from this one.

Threads suit work whose time is in NumPy's long loops, which release the GIL. Work made of many
NumPy calls on small arrays holds the GIL between them: the grouped filter's blocks on two threads
ran no faster than on one, while two processes at once each ran at full speed (BENCHMARKS.md,
fiftieth session). Forked processes see the caller's arrays as they are (nothing is copied or
pickled on the way in; only each item and its result travel), so they suit a function that is a
closure over large images. Forking is used only where it is safe and cheap: Linux, and not from
a daemonic process (a ``multiprocessing`` worker, which may not have children); elsewhere, or
once a worker process has died (killed for memory, say), the same map runs on threads. The
results are the function's, in order, whichever way they were made; a function whose numbers do
not depend on the process it runs in gives the same bits either way.
"""
from __future__ import annotations

import collections
import contextlib
import multiprocessing
import signal
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

__all__ = ["can_fork", "mapped_in_order"]

AHEAD = 2
"""Items given to each worker process ahead of the one whose result is awaited: enough to keep
it busy, few enough that finished results waiting their turn stay a few items' worth."""

_forking_failed = threading.Event()
"""Set once a forked worker died: later maps in this process run on threads."""

_function: Callable[[Any], Any] | None = None
"""In a forked worker: the function it maps (set by :func:`_start_worker`)."""


def can_fork() -> bool:
    """Whether :func:`mapped_in_order` may fork workers here: Linux, not in a daemonic process
    (which may have no children), and no worker forked earlier in this process has died."""
    return (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon and not _forking_failed.is_set())


def _start_worker(function: Callable[[Any], Any]) -> None:
    """A forked worker's start: the function to map (inherited, not pickled, by a fork), and Ctrl-C
    left to the parent, which stops the map (the worker ends with the pool, without a traceback)."""
    global _function
    _function = function
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call(item: Any) -> Any:
    assert _function is not None
    return _function(item)


@contextlib.contextmanager
def mapped_in_order(workers: int, *, processes: bool = False
                    ) -> Iterator[Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]]:
    """``mapped(function, items)``: ``function`` of each of ``items``, in the items' order, on
    ``workers`` workers: threads, or with ``processes`` processes forked from this one where
    :func:`can_fork` (else threads); one worker: the plain ``map`` in this thread. Items not yet
    started are cancelled when the block ends early (an error, Ctrl-C). A forked worker that dies
    (the pool broken) costs nothing but time: its item and all later ones are made in this
    process instead, and later maps run on threads."""
    if workers <= 1:
        yield map
        return
    if not (processes and can_fork()):
        pool = ThreadPoolExecutor(workers)
        try:
            yield pool.map
        finally:
            pool.shutdown(cancel_futures=True)
        return
    pools: list[ProcessPoolExecutor] = []

    def mapped(function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_worker, initargs=(function,))
        pools.append(pool)
        return _forked_in_order(pool, function, iter(items), workers * AHEAD)

    try:
        yield mapped
    finally:
        for pool in pools:
            pool.shutdown(cancel_futures=True)


def _forked_in_order(pool: ProcessPoolExecutor, function: Callable[[Any], Any], items: Iterator[Any],
                     ahead: int) -> Iterator[Any]:
    """The results of ``function`` over ``items`` from ``pool``'s workers, at most ``ahead`` items
    given out at a time; in this process once the pool is broken."""
    waiting: collections.deque[tuple[Any, Future[Any] | None]] = collections.deque()

    def give_out() -> None:
        while len(waiting) < ahead:
            item = next(items, _END)
            if item is _END:
                return
            waiting.append((item, None if _forking_failed.is_set() else _submit(pool, item)))

    give_out()
    while waiting:
        item, future = waiting.popleft()
        result = _result(future) if future is not None else _BROKEN
        if result is _BROKEN:
            result = function(item)
        give_out()
        yield result


def _submit(pool: ProcessPoolExecutor, item: Any) -> Future[Any] | None:
    try:
        return pool.submit(_call, item)
    except (BrokenProcessPool, OSError):  # a worker died, or a fork failed (memory)
        _forking_failed.set()
        return None


def _result(future: Future[Any]) -> Any:
    try:
        return future.result()
    except BrokenProcessPool:
        _forking_failed.set()
        return _BROKEN


_END = object()
_BROKEN = object()
