"""A map over items on several workers, its results in the items' order: threads, or processes
forked from this one.

Threads suit work whose time is in NumPy's long loops, which release the GIL. Work made of many
NumPy calls on small arrays holds the GIL between them: the grouped filter's blocks on two threads
ran no faster than on one, while two processes at once each ran at full speed (BENCHMARKS.md,
fiftieth session). Forked processes see the caller's arrays as they are (nothing is copied or
pickled on the way in; only each item and its result travel), so they suit a function that is a
closure over large images. They are forked from a process that may run other threads (torch's
OpenMP pool, a web server's), so the function must be NumPy or plain Python that takes no lock
another thread may hold (no torch, no logging), and items and results must pickle. Forking is used
on Linux only, not from a daemonic process (a ``multiprocessing`` worker, which may have no
children), and not once a forked worker died or a fork failed in this process: there the map runs
on threads. A worker dies with the process that forked it (the kernel's parent-death signal), so
none outlives a killed restoration holding its memory and its pipes. The results are the
function's, in order, whichever way they were made; a function whose numbers do not depend on the
process it runs in gives the same bits either way.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator, Sequence

__all__ = ["can_fork", "mapped_in_order", "will_fork"]

AHEAD = 2
"""Items given to each worker process ahead of the one whose result is awaited: enough to keep
it busy, few enough that finished results waiting their turn stay a few items' worth."""

_forking_failed = threading.Event()
"""Set once a forked worker died, a fork failed or a pool could not be made: later maps in this
process run on threads."""

_function: Callable[[Any], Any] | None = None
"""In a forked worker: the function it maps (set by :func:`_start_worker`)."""


def can_fork() -> bool:
    """Whether :func:`mapped_in_order` may fork workers here: Linux, not in a daemonic process
    (which may have no children), and no forked worker has died (nor a fork or a pool failed)
    earlier in this process."""
    return (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon and not _forking_failed.is_set())


def will_fork(items: int) -> bool:
    """Whether a map of ``items`` asked to run on processes forks them (:func:`mapped_in_order`):
    at least :data:`SMALLEST_FORKED_MAP` items, where :func:`can_fork`."""
    return items >= SMALLEST_FORKED_MAP and can_fork()


def _start_worker(function: Callable[[Any], Any], parent: int) -> None:
    """A forked worker's start: the function to map (inherited, not pickled, by a fork); killed when
    ``parent`` (the process that forked it) dies, however it dies; Ctrl-C left to the parent, which
    stops the map (the worker ends with the pool, without a traceback); SIGTERM's default action
    (not a handler the parent installed)."""
    global _function
    _function = function
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl: the worker still ends with a parent that unwinds
        pass
    if os.getppid() != parent:  # the parent died before the death signal was asked for
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


PARENT_CHECK_S = 1.0
"""Seconds between a spawned worker's looks at whether its parent is still there (:func:`end_with_parent`)."""


def end_with_parent(parent: int) -> None:
    """Make this process (a spawned worker) end within :data:`PARENT_CHECK_S` once ``parent`` is
    gone, however it went (SIGKILL leaves no chance to stop the workers): a daemon thread that
    watches this process's parent id change."""
    if os.getppid() != parent:
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="linr-parent-watch", daemon=True).start()


PR_SET_PDEATHSIG = 1
"""prctl's option: the signal a process gets when the thread that forked it ends (Linux)."""

SMALLEST_FORKED_MAP = 4
"""Fewest items a map forks workers for: a fork costs about 20 ms with a large caller (a
reviewer's 2.2 GB process), more than two blocks of a small image's grouped filter take;
fewer items run on threads."""


def _call(item: Any) -> Any:
    assert _function is not None
    return _function(item)


@contextlib.contextmanager
def mapped_in_order(workers: int, *, processes: bool = False
                    ) -> Iterator[Callable[[Callable[[Any], Any], Sequence[Any]], Iterator[Any]]]:
    """``mapped(function, items)``: ``function`` of each of ``items``, in the items' order, on
    ``workers`` workers: threads, or with ``processes`` processes forked from this one where
    :func:`can_fork` and there are at least :data:`SMALLEST_FORKED_MAP` items (else threads; the
    module docstring says what such a function may do); one worker: the plain ``map`` in this
    thread. Items not yet started are cancelled when the block ends early (an error, Ctrl-C), and
    forked workers are gone when it ends. A forked worker that dies (the pool broken) costs
    nothing but time: its item and all later ones of that map are made in this thread instead,
    and later maps in this process run on threads."""
    if workers <= 1:
        yield map
        return
    threads = ThreadPoolExecutor(workers)
    maps: list[Iterator[Any]] = []

    def mapped(function: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
        items = list(items)
        if processes and will_fork(len(items)):
            maps.append(_forked_in_order(function, items, workers))
            return maps[-1]
        return threads.map(function, items)

    try:
        yield mapped
    finally:
        for forked in maps:
            forked.close()  # type: ignore[attr-defined]  # its pool shut down, its workers joined
        threads.shutdown(cancel_futures=True)


def _forked_in_order(function: Callable[[Any], Any], items: list[Any], workers: int) -> Iterator[Any]:
    """The results of ``function`` over ``items`` from ``workers`` forked workers, at most
    :data:`AHEAD` items a worker given out at a time; made in this thread from the first item
    whose worker died (or could not be forked, or whose pool could not be made) on."""
    try:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_worker, initargs=(function, os.getpid()))
    except OSError:  # no shared memory for the pool's locks (/dev/shm missing): threads from now on
        _forking_failed.set()
        yield from map(function, items)
        return
    waiting: collections.deque[tuple[Any, Future[Any] | None]] = collections.deque()
    pending = iter(items)
    broken = False

    def give_out() -> None:
        nonlocal broken
        while len(waiting) < workers * AHEAD:
            item = next(pending, _END)
            if item is _END:
                return
            future = None
            if not broken:
                try:
                    future = pool.submit(_call, item)
                except BrokenProcessPool:  # broken before: a worker died (its pending futures say so,
                    broken = True  # below) or a result failed to unpickle (forking goes on)
                except OSError:  # a fork failed (memory)
                    broken = True
                    _forking_failed.set()
            waiting.append((item, future))

    try:
        give_out()
        while waiting:
            item, future = waiting.popleft()
            try:
                result = function(item) if future is None else future.result()
            except BrokenProcessPool as exc:  # made here instead
                broken = True
                if exc.__cause__ is None or "terminated" in str(exc.__cause__):  # a worker died (a result
                    _forking_failed.set()  # that failed to unpickle has its traceback as the cause)
                result = function(item)
            give_out()
            yield result
    finally:
        if broken:  # a fork that failed part-way leaves workers the pool does not stop
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                if process.is_alive():
                    process.kill()
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()
