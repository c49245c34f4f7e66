"""linr.cores: torch's threads fewer where other work holds the cores, said in a note."""

from __future__ import annotations

import pytest
import torch

from linr import cores

from .conftest import run_err, tiny_noisy_restore


@pytest.fixture
def four_threads(monkeypatch):
    """torch on 4 threads for the test, as it was after; OMP_NUM_THREADS unset."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


def probe(late_above: int):
    """A probe whose operation is late on more than ``late_above`` threads (a held core)."""
    asked = []

    def seconds(threads: int, **_) -> float:
        asked.append(threads)
        return 14e-3 if threads > late_above else 3e-5

    return seconds, asked


def test_the_probe_times_one_operation_and_leaves_the_threads_as_they_were():
    before = torch.get_num_threads()
    seconds = cores.operation_seconds(1, repeats=3)
    assert 0 < seconds < 1 and torch.get_num_threads() == before


def test_late_threads_are_halved_until_they_answer_and_said(monkeypatch, four_threads):
    seconds, asked = probe(late_above=2)
    monkeypatch.setattr(cores, "operation_seconds", seconds)
    chosen = cores.settle_threads()
    assert chosen is not None and (chosen.before, chosen.threads) == (4, 2) and torch.get_num_threads() == 2
    assert asked == [1, 4, 2]
    note = chosen.note()
    assert "14.0 ms on its 4 threads against 0.03 ms on one" in note and "uses 2 threads" in note
    assert note.startswith("torch's threads answered late") and "OMP_NUM_THREADS sets the count" in note


def test_down_to_one_thread_when_every_count_is_late(monkeypatch, four_threads):
    monkeypatch.setattr(cores, "operation_seconds", probe(late_above=1)[0])
    chosen = cores.settle_threads()
    assert chosen is not None and chosen.threads == 1 and torch.get_num_threads() == 1
    assert "uses 1 thread (" in chosen.note()


def test_prompt_threads_or_the_users_choice_are_left_alone(monkeypatch, four_threads):
    seconds, asked = probe(late_above=4)  # idle cores
    monkeypatch.setattr(cores, "operation_seconds", seconds)
    assert cores.settle_threads() is None and torch.get_num_threads() == 4
    monkeypatch.setattr(cores, "operation_seconds", probe(late_above=1)[0])
    monkeypatch.setattr(cores, "LATE_SECONDS", 1.0)  # late by the ratio, but not by a millisecond's wait
    assert cores.settle_threads() is None and torch.get_num_threads() == 4
    monkeypatch.setattr(cores, "LATE_SECONDS", 1e-3)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    seconds, asked = probe(late_above=1)
    monkeypatch.setattr(cores, "operation_seconds", seconds)
    assert cores.settle_threads() is None and asked == [] and torch.get_num_threads() == 4


def test_linr_restore_says_it_when_it_takes_fewer_threads(monkeypatch, four_threads, tmp_path, capsys):
    from linr.cli import main

    monkeypatch.setattr(cores, "operation_seconds", probe(late_above=1)[0])
    args = [a for a in tiny_noisy_restore(tmp_path) if a != "--quiet"]
    assert main([*args, "-o", str(tmp_path / "o.png")]) == 0
    err = capsys.readouterr().err
    assert "linr: note: torch's threads answered late" in err and torch.get_num_threads() == 1
    torch.set_num_threads(4)  # a bad input: its error comes before the probe, which changes nothing
    run_err(capsys, ["restore", "--noisy", str(tmp_path / "missing.png"), "-o", str(tmp_path / "p.png")])
    assert torch.get_num_threads() == 4


def test_linr_batch_gives_its_fits_fewer_threads_when_they_are_late(monkeypatch, four_threads, tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from linr.batch import local_threads
    from linr.cli import main

    monkeypatch.setattr(cores, "operation_seconds", probe(late_above=1)[0])
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(2)
    Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / "in" / "a.png")
    args = ["batch", str(tmp_path / "in"), "--task", "noisy", "--steps", "2", "--width", "16", "--depth", "2",
            "--device", "cpu"]
    assert main([*args, "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "linr: note: torch's threads answered late" in err, err
    record = json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[-1])
    assert record["status"] == "done" and record["run"]["threads"] == 1, record
    if local_threads(None, 1) > 1:  # --threads: the user's count, not probed
        assert main([*args, "-o", str(tmp_path / "out2"), "--threads", "2"]) == 0
        assert "answered late" not in capsys.readouterr().err
        record = json.loads((tmp_path / "out2" / "manifest.jsonl").read_text().splitlines()[-1])
        assert record["run"]["threads"] == 2, record


def test_the_apps_jobs_take_fewer_threads_when_they_are_late_and_all_again_when_not(monkeypatch, four_threads):
    from linr.app.jobs import JobRunner

    runner = JobRunner(device="cpu", preview_every_s=0.0)
    try:
        monkeypatch.setattr(cores, "operation_seconds", probe(late_above=1)[0])
        note = runner._settle_threads()
        assert note is not None and "torch's threads answered late" in note
        assert torch.get_num_threads() == 1 and runner._threads == 4
        monkeypatch.setattr(cores, "operation_seconds", probe(late_above=4)[0])  # the cores free again
        assert runner._settle_threads() is None and torch.get_num_threads() == 4
    finally:
        runner.close()


def _tiny_noisy():
    import numpy as np

    import linr

    return linr.noisy(np.random.default_rng(3).random((16, 16, 3)).astype(np.float32))


def test_the_python_api_takes_fewer_threads_for_the_call_and_says_so(monkeypatch, four_threads, capsys):
    import linr

    seen = []
    monkeypatch.setattr(cores, "operation_seconds", probe(late_above=1)[0])
    result = linr.restore(_tiny_noisy(), steps=2, device="cpu", progress=False, announce=True,
                          on_step=lambda *_: seen.append(torch.get_num_threads()))
    assert set(seen) == {1} and torch.get_num_threads() == 4  # fewer for the call, as they were after it
    assert result.settings["threads"]["torch"] == 4 and result.settings["threads"]["used"] == 1
    note = result.settings["threads"]["note"]
    assert "threads=N sets the count yourself" in note
    assert f"linr: note: {note}" in capsys.readouterr().err
    seen.clear()  # a count given: exactly that many, not probed
    result = linr.restore(_tiny_noisy(), steps=2, device="cpu", progress=False, threads=3,
                          on_step=lambda *_: seen.append(torch.get_num_threads()))
    assert set(seen) == {3} and "threads" not in result.settings and torch.get_num_threads() == 4
    many = linr.restore_many([_tiny_noisy(), _tiny_noisy()], steps=2, device="cpu", progress=False)
    assert [r.settings["threads"]["used"] for r in many] == [1, 1] and torch.get_num_threads() == 4


def test_the_python_api_leaves_prompt_threads_and_the_users_choice_alone(monkeypatch, four_threads):
    import linr

    seconds, asked = probe(late_above=4)  # idle cores
    monkeypatch.setattr(cores, "operation_seconds", seconds)
    seen = []
    result = linr.restore(_tiny_noisy(), steps=2, device="cpu", progress=False,
                          on_step=lambda *_: seen.append(torch.get_num_threads()))
    assert set(seen) == {4} and "threads" not in result.settings and asked
    for left_alone in ({"threads": None}, {}):  # None; or OMP_NUM_THREADS set (no probe either way)
        seconds, asked = probe(late_above=1)
        monkeypatch.setattr(cores, "operation_seconds", seconds)
        if not left_alone:
            monkeypatch.setenv("OMP_NUM_THREADS", "4")
        seen.clear()
        result = linr.restore(_tiny_noisy(), steps=2, device="cpu", progress=False,
                              on_step=lambda *_: seen.append(torch.get_num_threads()), **left_alone)
        assert set(seen) == {4} and asked == [] and "threads" not in result.settings


@pytest.mark.parametrize("threads", [0, -1, 1.5, "two", True])
def test_a_bad_thread_count_is_one_line_before_any_fit(threads, four_threads):
    import linr
    from linr.errors import InputError

    with pytest.raises(InputError, match="threads must be 'auto', None or a positive count"):
        linr.restore(_tiny_noisy(), steps=2, device="cpu", progress=False, threads=threads)
    with pytest.raises(InputError, match="threads must be"):
        linr.restore_cost(_tiny_noisy(), device="cpu", threads=threads)
    assert torch.get_num_threads() == 4


def test_calls_from_two_python_threads_leave_each_threads_count_as_it_was(monkeypatch, four_threads):
    """Two calls overlapping (either ending first): 'auto' starts from the count the first call
    found, not from the other call's (which a new OS thread inherits: torch's count is per thread),
    and each call sets its own thread's count back; None touches nothing."""
    import threading

    monkeypatch.setattr(cores, "operation_seconds", probe(late_above=1)[0])
    for first_to_end in ("a", "b"):
        entered, release = {k: threading.Event() for k in "ab"}, {k: threading.Event() for k in "ab"}
        found, own = {}, {}

        own_start = {}

        def call(key: str, threads) -> None:
            had = own_start[key] = torch.get_num_threads()
            with cores.threads_of_call(threads) as chosen:
                found[key] = (chosen, torch.get_num_threads())
                entered[key].set()
                release[key].wait(5)
            own[key] = (had, torch.get_num_threads())

        a = threading.Thread(target=call, args=("a", 3))
        a.start()
        entered["a"].wait(5)
        b = threading.Thread(target=call, args=("b", "auto"))
        b.start()
        entered["b"].wait(5)
        assert found["a"] == (None, 3)
        # 'auto' from the count the first call found (a new thread's: the last set anywhere), not a's 3
        assert found["b"][0].before == own_start["a"] and found["b"][1] == 1
        assert first_to_end == "b" or own_start["a"] == 4  # the first time: the main thread's 4, not a's 3
        release[first_to_end].set()
        (a if first_to_end == "a" else b).join(5)
        release["b" if first_to_end == "a" else "a"].set()
        a.join(5), b.join(5)
        assert all(had == after for had, after in own.values()), own  # each thread as it was
        assert torch.get_num_threads() == 4
    torch.set_num_threads(3)  # None: as they are, whatever another call does
    with cores.threads_of_call(None) as chosen:
        assert chosen is None and torch.get_num_threads() == 3
    assert torch.get_num_threads() == 3


def test_a_batch_fit_takes_fewer_threads_when_other_work_starts_after_the_batch(monkeypatch, four_threads, tmp_path,
                                                                                capsys):
    """The batch's threads were checked once at its start: a new user's batch, started on a quiet
    machine, fitted a 64-px photo in 71 s on two late threads (3.4 s on one). Each fit now checks."""
    import json

    import numpy as np
    from PIL import Image

    import linr.batch
    from linr.cli import main

    calls = []

    def seconds(threads: int, **_) -> float:  # prompt for the batch's own check, late after it
        calls.append(threads)
        return 14e-3 if threads > 1 and len(calls) > 2 else 3e-5

    monkeypatch.setattr(cores, "operation_seconds", seconds)
    monkeypatch.setattr(linr.batch, "usable_cores", lambda: 4)
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(2)
    for name in "ab":
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / "in" / f"{name}.png")
    seen = []
    import linr.tasks

    restore = linr.tasks.restore
    monkeypatch.setattr(linr.tasks, "restore", lambda *a, **k: seen.append(torch.get_num_threads()) or restore(*a, **k))
    assert main(["batch", str(tmp_path / "in"), "--task", "noisy", "--steps", "2", "--width", "16", "--depth", "2",
                 "--device", "cpu", "-o", str(tmp_path / "out")]) == 0
    assert "answered late" not in capsys.readouterr().err  # prompt at the start
    records = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [r["run"]["threads"] for r in records] == [1, 1] and seen == [1, 1]  # late on 4 and 2: one
    assert all("other work held cores" in r["run"]["threads_note"] for r in records)
