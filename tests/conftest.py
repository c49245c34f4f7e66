from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def pytest_configure(config) -> None:
    """Under pytest-xdist (``make test`` runs a worker per core, up to 4) each worker process gets
    its share of the cores for torch, so that the workers do not oversubscribe them. The fits
    here use torch's default threads otherwise; a test that compares bits with another process's
    sets the threads it compares at."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1:
        import torch

        from linr.batch import usable_cores  # the cores this process may use (a container's, not the host's)

        torch.set_num_threads(max(1, min(torch.get_num_threads(), usable_cores() // workers)))


@pytest.fixture(autouse=True)
def _prompt_threads(request, monkeypatch):
    """The check for late torch threads (:mod:`linr.cores`) finds them prompt in every test but its
    own: beside the other test workers it would otherwise change a test's threads by the load."""
    if request.module.__name__.endswith("test_cores"):
        return
    from linr import cores

    monkeypatch.setattr(cores, "_late", lambda many_s, one_s: False)


def load(rel: str) -> np.ndarray:
    from linr.images import read_image

    path = DATA / rel
    if not path.exists():
        pytest.skip(f"test data {path} not found")
    return read_image(path)[0]


def crop(image: np.ndarray, size: int, top: int | None = None, left: int | None = None) -> np.ndarray:
    h, w = image.shape[:2]
    top = (h - size) // 2 if top is None else top
    left = (w - size) // 2 if left is None else left
    return np.ascontiguousarray(image[top : top + size, left : left + size])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def run_err(capsys, argv):
    """Run the CLI expecting a user error: exit status 2 and one line on stderr, returned."""
    from linr.cli import main

    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.count("\n") == 0 and err.startswith("linr: error:"), err
    return err


def tiny_noisy_restore(tmp_path: Path) -> list[str]:
    """``linr restore`` arguments (all but the output) of a 24 x 24 noisy photo written to
    ``tmp_path / 'n.png'``, fitted for 2 steps by a tiny network."""
    from PIL import Image

    rng = np.random.default_rng(5)
    Image.fromarray((np.clip(0.5 + 0.1 * rng.normal(size=(24, 24, 3)), 0, 1) * 255).astype(np.uint8)).save(
        tmp_path / "n.png")
    return ["restore", "--noisy", str(tmp_path / "n.png"), "--steps", "2", "--width", "16", "--depth", "2",
            "--device", "cpu", "--quiet"]


def lowres_restore_and_batch(tmp_path: Path, name: str, args: list[str], capsys) -> tuple[str, dict]:
    """``linr restore --lowres`` of ``tmp_path/in/NAME`` with ``args``, then ``linr batch`` of
    ``tmp_path/in`` (task lowres, into ``tmp_path/b``): what the restore printed and the batch's
    last manifest record (both commands asserted to succeed)."""
    import json

    from linr.cli import main

    assert main(["restore", "--lowres", str(tmp_path / "in" / name), *args, "-o", str(tmp_path / "o.png")]) == 0
    out = capsys.readouterr().out
    assert main(["batch", str(tmp_path / "in"), "--task", "lowres", "-o", str(tmp_path / "b"), *args, "--quiet"]) == 0
    return out, json.loads((tmp_path / "b" / "manifest.jsonl").read_text().splitlines()[-1])


def fits_card(key: str, value: str) -> str:
    """One FITS header card: ``KEY     = value`` (the value right-aligned in 20 characters)."""
    return f"{key:<8}= {value:>20}".ljust(80)


def handmade_fits(path: Path, planes: np.ndarray, bitpix: int, extra: tuple[str, ...] = ()) -> Path:
    """A FITS file written from the standard's rules alone: ``planes`` in file order (the first
    row stored first), its axes reversed into NAXIS1 (along a row), NAXIS2, ..."""
    cards = [fits_card("SIMPLE", "T"), fits_card("BITPIX", str(bitpix)), fits_card("NAXIS", str(planes.ndim))]
    cards += [fits_card(f"NAXIS{i + 1}", str(n)) for i, n in enumerate(reversed(planes.shape))]
    cards += [c.ljust(80) for c in extra] + ["END".ljust(80)]
    head = "".join(cards)
    head = head.ljust(-(-len(head) // 2880) * 2880)
    dtype = {8: ">u1", 16: ">i2", 32: ">i4", -32: ">f4", -64: ">f8"}[bitpix]
    body = planes.astype(dtype).tobytes()
    path.write_bytes(head.encode("ascii") + body + b"\0" * (-len(body) % 2880))
    return path
