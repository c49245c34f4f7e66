"""linr.parallel: a map in the items' order on threads or forked processes, and the grouped filter
on processes giving the bits it gives on one thread."""

from __future__ import annotations

import os

import numpy as np
import pytest

from linr import parallel
from linr.parallel import mapped_in_order
from linr.refine import GroupedWiener

forking = pytest.mark.skipif(not parallel.can_fork(), reason="forked workers need Linux")


def test_every_way_gives_the_results_in_the_items_order():
    items = list(range(23))
    for workers, processes in [(1, False), (2, False), (3, False), (2, True), (3, True)]:
        with mapped_in_order(workers, processes=processes) as mapped:
            assert list(mapped(lambda i: (i * i, i), items)) == [(i * i, i) for i in items]


@forking
def test_forked_workers_are_other_processes_that_see_the_callers_arrays_and_are_gone_after():
    import multiprocessing

    big = np.arange(10_000.0)  # a closure's array: inherited by the fork, not pickled
    parent = os.getpid()
    with mapped_in_order(2, processes=True) as mapped:
        out = list(mapped(lambda i: (os.getpid(), big[i * 100: (i + 1) * 100].sum()), range(12)))
        few = list(mapped(lambda i: os.getpid(), range(parallel.SMALLEST_FORKED_MAP - 1)))
        left = mapped(lambda i: i, range(12))
        assert next(left) == 0  # abandoned after its first result
    assert all(pid != parent for pid, _ in out) and few == [parent] * len(few)  # a short map: threads
    assert [s for _, s in out] == [big[i * 100: (i + 1) * 100].sum() for i in range(12)]
    assert multiprocessing.active_children() == []


@forking
def test_a_forked_worker_dies_with_its_parent(tmp_path):
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "from linr.parallel import mapped_in_order\n"
        "def slow(i):\n"
        "    os.write(1, b'%d\\n' % os.getpid())  # one write: two workers' lines do not interleave\n"
        "    time.sleep(60)\n"
        "with mapped_in_order(2, processes=True) as mapped:\n"
        "    list(mapped(slow, range(8)))\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    parent.kill()  # no unwinding: the pool cannot stop its workers
    parent.wait()
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(worker, 9)
        raise AssertionError("the forked worker outlived its parent")


@forking
def test_a_worker_that_dies_costs_time_not_results(monkeypatch):
    monkeypatch.setattr(parallel, "_forking_failed", type(parallel._forking_failed)())  # a fresh flag
    parent = os.getpid()

    def dies_in_a_worker(i: int) -> int:
        if i == 5 and os.getpid() != parent:
            os._exit(9)  # as the kernel's out-of-memory killer would end it
        return 10 * i

    with mapped_in_order(2, processes=True) as mapped:
        assert list(mapped(dies_in_a_worker, range(20))) == [10 * i for i in range(20)]
    assert not parallel.can_fork()  # later maps run on threads
    with mapped_in_order(2, processes=True) as mapped:
        assert list(mapped(lambda i: os.getpid(), range(4))) == [parent] * 4


class TwoArgumentError(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickles, but does not unpickle
        super().__init__(f"{a} {b}")


@forking
def test_a_result_that_fails_to_unpickle_is_made_here_and_forking_goes_on(monkeypatch):
    monkeypatch.setattr(parallel, "_forking_failed", type(parallel._forking_failed)())

    def fails(i: int) -> int:
        if i == 2:
            raise TwoArgumentError(1, 2)
        return i

    with pytest.raises(TwoArgumentError):
        with mapped_in_order(2, processes=True) as mapped:
            list(mapped(fails, range(8)))
    assert parallel.can_fork()


@forking
def test_an_error_in_a_forked_worker_reaches_the_caller():
    def fails(i: int) -> int:
        if i == 3:
            raise MemoryError("a block too large")
        return i

    with pytest.raises(MemoryError, match="a block too large"):
        with mapped_in_order(2, processes=True) as mapped:
            list(mapped(fails, range(8)))


def test_the_grouped_filter_gives_the_same_bits_on_processes_threads_and_one_thread(monkeypatch):
    rng = np.random.default_rng(3)
    clean = np.cumsum(np.cumsum(rng.random((70, 61, 3)), 0), 1)
    clean /= clean.max()
    noisy, pilot = clean + rng.normal(0, 0.1, clean.shape), clean + rng.normal(0, 0.03, clean.shape)
    monkeypatch.setattr(GroupedWiener, "BLOCK", (4, 8))  # several blocks on a small image
    one = GroupedWiener(threads=1, window=9)(noisy, pilot, 0.1)
    assert GroupedWiener(threads=2).blocks(70, 61) > 2
    assert np.array_equal(GroupedWiener(threads=2, window=9)(noisy, pilot, 0.1), one)  # processes where Linux
    monkeypatch.setattr(parallel, "can_fork", lambda: False)
    assert np.array_equal(GroupedWiener(threads=2, window=9)(noisy, pilot, 0.1), one)  # threads


def test_a_spawned_worker_ends_when_its_parent_is_killed():
    """A batch driver killed by SIGKILL left its two spawned workers waiting on their pipes for
    good (290 MB each); a worker that watches its parent (linr.parallel.end_with_parent) ends."""
    import signal
    import subprocess
    import sys
    import time

    child = "import sys, time; from linr.parallel import end_with_parent; end_with_parent(int(sys.argv[1])); time.sleep(60)"
    parent = (f"import os, subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid())]); "
              "print(p.pid, flush=True); time.sleep(60)")
    outer = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    pid = int(outer.stdout.readline())
    time.sleep(0.5)  # killed before or after the child starts its watch: it ends either way
    outer.send_signal(signal.SIGKILL)
    outer.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
        try:  # reaped by init, or a zombie of no one: gone either way once its state is Z
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":
                    return
        except FileNotFoundError:
            return
    raise AssertionError(f"the worker {pid} outlived its killed parent")
