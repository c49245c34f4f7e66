"""Torch's threads where other work holds some of the cores.

torch runs one thread per core by default, and every parallel operation waits for all of its
threads. When another program keeps a core busy, the thread that must share it is scheduled late
at every operation, and a fit slows down many times over rather than by that core's share: on
the fifty-first session's 2-core Intel Xeon, with one core busy, a fit of a 48-px photo took 0.465
s a step on two threads against 0.062 s on one, and of a 256-px photo 3.9 s against 2.2 s
(BENCHMARKS.md, "other work on the cores"). :func:`settle_threads` measures it just before a
restoration starts: the time of one small parallel operation on torch's threads against one
thread (tens of microseconds apart on idle cores, milliseconds when a core is held), and where the
threads answer that late it gives torch fewer (halving down to one) for the rest of the process
(``linr restore``, ``linr demo``; ``linr batch`` its fits' threads and ``linr app`` each job's by
:func:`fewer_threads`; :func:`linr.restore` for the call by :func:`threads_of_call`).
Nothing changes where the user chose the threads (``OMP_NUM_THREADS``, ``--threads``) or torch
has one.
"""
from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import InputError

__all__ = ["ThreadChoice", "check_threads", "fewer_threads", "omp_threads", "operation_seconds", "settle_threads",
           "threads_of_call"]

PROBE_VALUES = 1 << 16
"""Values of the probe's operation (a square root): above torch's grain for splitting an
elementwise operation over its threads (32768), small enough to take microseconds on one."""

PROBE_REPEATS = 9
"""Timed repeats of the probe's operation; their median is its time."""

WARM_SECONDS = 0.01
"""The probe's operation is run for this long before it is timed: the threads of a pool that slept
are awake (a first look after an idle wait found them late beside mere nice-19 load: a reviewer)."""

LATE_RATIO = 8.0
"""Threads are late where the operation on them takes this many times its time on one thread..."""

LATE_SECONDS = 1e-3
"""...and at least this long (idle: 20-30 microseconds on two threads; a held core: about 14 ms)."""


@dataclass(frozen=True)
class ThreadChoice:
    """What :func:`settle_threads` found: torch's threads before and after, and the probe's
    operation's seconds on those threads and on one."""

    before: int
    threads: int
    many_s: float
    one_s: float

    def note(self, count_set_by: str = "OMP_NUM_THREADS") -> str:
        """The line said to the user (``count_set_by``: how they set the count themselves)."""
        return (f"torch's threads answered late (other work seems to hold some of this CPU's cores): an operation "
                f"took {self.many_s * 1e3:.1f} ms on its {self.before} threads against {self.one_s * 1e3:.2f} ms on "
                f"one, so this run uses {self.threads} thread{'' if self.threads == 1 else 's'} ({count_set_by} "
                "sets the count yourself: a fit's float32 sums round differently between thread counts, which can move "
                "the step its automatic stop picks and the result by a few tenths of a dB)")


def operation_seconds(threads: int, *, repeats: int = PROBE_REPEATS) -> float:
    """The median seconds of one parallel elementwise operation (the square root of
    :data:`PROBE_VALUES` floats) on ``threads`` torch threads; torch's threads as they were after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.full((PROBE_VALUES,), 2.0)
        out = torch.empty_like(x)
        warm_until = time.perf_counter() + WARM_SECONDS
        while time.perf_counter() < warm_until:  # the threads started and awake
            torch.sqrt(x, out=out)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            torch.sqrt(x, out=out)
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    finally:
        torch.set_num_threads(before)


def omp_threads() -> int | None:
    """The thread count the user set in ``OMP_NUM_THREADS`` (its first level), or None (unset, or
    not a positive count: ignored, with a note on stderr)."""
    text = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        print(f"linr: note: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']!r} is not a positive "
              "thread count; ignored", file=sys.stderr)
        return None
    return value


def _late(many_s: float, one_s: float) -> bool:
    return many_s >= LATE_SECONDS and many_s >= LATE_RATIO * one_s


def fewer_threads(threads: int) -> ThreadChoice | None:
    """Fewer threads than ``threads`` where an operation on them is late against one thread
    (module docstring): halving until it is not (one at the least); None where ``threads`` answer
    promptly (or are one). torch's own threads are left as they were."""
    if threads <= 1:
        return None
    one_s = operation_seconds(1)
    many_s = operation_seconds(threads)
    if not _late(many_s, one_s):
        return None
    fewer = threads // 2
    while fewer > 1 and _late(operation_seconds(fewer), one_s):
        fewer //= 2
    return ThreadChoice(threads, max(1, fewer), many_s, one_s)


def settle_threads(threads: int | None = None) -> ThreadChoice | None:
    """Give torch :func:`fewer_threads` than ``threads`` (None: than it has) where they answer
    late, else ``threads``, for the rest of the process: what was found and chosen, or None where
    it has ``threads`` (one thread, or they answer promptly) or ``OMP_NUM_THREADS`` is set (then
    nothing is changed)."""
    import torch

    if omp_threads() is not None:
        return None
    threads = torch.get_num_threads() if threads is None else threads
    chosen = fewer_threads(threads)
    torch.set_num_threads(threads if chosen is None else chosen.threads)
    return chosen


def check_threads(threads: object) -> None:
    """A one-line error unless ``threads`` is 'auto', None or a positive count (:func:`threads_of_call`)."""
    if threads is None or threads == "auto":
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads must be 'auto', None or a positive count, not {threads!r}")


_CALLS_LOCK = threading.Lock()
_CALLS = {"running": 0, "home": 0}
"""The calls inside :func:`threads_of_call` now (from any Python thread) and torch's thread count
the first of them found: the count 'auto' starts from while they overlap."""


@contextmanager
def threads_of_call(threads: int | str | None) -> Iterator[ThreadChoice | None]:
    """torch's threads for one call from Python (:func:`linr.restore`), set back after it: 'auto'
    as many as torch has, fewer where they answer late (:func:`fewer_threads`; as many where
    ``OMP_NUM_THREADS`` is set: nothing is changed), a count exactly that many, None as they are.
    Yields what 'auto' found and chose where it chose fewer, else None. (The command line settles
    its process's once instead: :func:`settle_threads`.) A fit on a 2-core CPU with one core busy
    took 2.9x longer on two threads than on one (a 96-px photo, sixty-second session).

    torch's count is the calling thread's (OpenMP's, per thread; a new thread starts from the last
    one set anywhere): each call sets its own thread's back when it ends, and 'auto', in calls that
    overlap from several Python threads, starts from the count the first of them found (not from
    one another call set, which a new thread would inherit). None touches nothing."""
    import torch

    check_threads(threads)
    with _CALLS_LOCK:
        if _CALLS["running"] == 0:
            _CALLS["home"] = torch.get_num_threads()
        _CALLS["running"] += 1
        home = _CALLS["home"]
    before = torch.get_num_threads()
    count = None
    try:
        auto = threads == "auto" and omp_threads() is None  # 'auto' with OMP_NUM_THREADS set: as None
        chosen = fewer_threads(home) if auto else None
        count = threads if isinstance(threads, int) else (home if chosen is None else chosen.threads) if auto else None
        if count is not None and count != before:
            torch.set_num_threads(count)
        yield chosen
    finally:
        if count is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)
        with _CALLS_LOCK:
            _CALLS["running"] -= 1
