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
def test_forked_workers_are_other_processes_that_see_the_callers_arrays():
    big = np.arange(10_000.0)  # a closure's array: inherited by the fork, not pickled
    parent = os.getpid()
    with mapped_in_order(2, processes=True) as mapped:
        out = list(mapped(lambda i: (os.getpid(), big[i * 100: (i + 1) * 100].sum()), range(12)))
    assert all(pid != parent for pid, _ in out)
    assert [s for _, s in out] == [big[i * 100: (i + 1) * 100].sum() for i in range(12)]


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
