"""``linr bench speed``: the plain reference loop against the fast engine, in one process.

For each task (denoise, SR x4, inpainting 10%) on a crop of a test image, it runs

1. **reference**: the loop as the paper's code writes it (SIREN with ``sin(omega_0 * (Wx+b))``,
   autograd through everything including the coordinates, full batch, float32, the whole image
   rendered every step; its PSNR comes from that render at no extra cost);
2. **engine**: the paper preset on the fast engine (same mathematics);
3. **fast presets**: each named preset, e.g. ``fast``.

and prints per-step time, PSNR after the run, time to reach the reference's final PSNR, peak
memory (RSS growth) and the ratios. Timings exclude the PSNR evaluation renders the engine does
only for the benchmark (``timings['eval_s']``). Runs alternate (reference, engine, presets) and
repeat ``--repeats`` times on the per-step timing, so a shared machine slows both sides alike.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "make_case", "reference_fit", "TASKS"]

TASKS = {
    "denoise": "set9/house.png",
    "sr": "set5/butterfly.png",
    "inpaint": "inpaint/kate.png",
}


def register(sub: Any) -> None:
    p = sub.add_parser("speed", help="reference loop vs fast engine: per-step time, time to PSNR",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="test data folder (default: ../shared/data)")
    p.add_argument("--tasks", default="denoise,sr,inpaint", help="comma-separated: denoise,sr,inpaint")
    p.add_argument("--images", default=None,
                   help="task=relative/path.png,... overriding the default image per task")
    p.add_argument("--size", type=int, default=128, help="square centre crop (default 128)")
    p.add_argument("--steps", type=int, default=500, help="steps of the reference (default 500)")
    p.add_argument("--presets", default="fast", help="comma-separated fast presets to time")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timing repeats (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=cmd_speed)


def default_data() -> Path:
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def make_case(task: str, clean: np.ndarray, *, seed: int = 0) -> list[Any]:
    """The observations of one benchmark task for a clean image (H, W, 3) in [0, 1]."""
    from .. import tasks
    from ..simulate import add_gaussian_noise, bernoulli_mask, lanczos_downscale

    if task == "denoise":
        return [tasks.noisy(add_gaussian_noise(clean, 25, seed=seed))]
    if task == "sr":
        return [tasks.lowres(lanczos_downscale(clean, 4), 4)]
    if task == "inpaint":
        mask = bernoulli_mask(clean.shape[:2], 0.1, seed=seed)
        return [tasks.masked(clean * mask[..., None], mask)]
    from ..errors import InputError

    raise InputError(f"unknown benchmark task {task!r}; choose from {', '.join(TASKS)}")


def load_crop(path: Path, size: int) -> np.ndarray:
    """Centre crop ``size`` x ``size`` (RGB, [0, 1]) of an image file."""
    from ..errors import InputError
    from ..images import read_image

    if not path.exists():
        raise InputError(f"test image {path} not found (use --data)")
    image = read_image(path)[0]
    h, w = image.shape[:2]
    if min(h, w) < size:
        raise InputError(f"{path} is {h}x{w}, smaller than --size {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size, :3])


def reference_fit(observations: list[Any], clean: np.ndarray, *, steps: int, lr: float = 1e-4,
                  seed: int = 0) -> dict[str, Any]:
    """The paper code's loop: returns per-step PSNR (RGB, data range 1, unclipped) and times."""
    import torch

    from ..fit import FitConfig, _problem
    from ..models import ModelConfig, build_model, coordinate_grid

    problem = _problem(observations, FitConfig(device="cpu"), clean)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(), out_channels=problem.channels)
    h, w, c = problem.height, problem.width, problem.channels
    grid = coordinate_grid(h, w)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    psnrs, times = [], []
    t0 = time.perf_counter()
    for _ in range(steps):
        coords = grid.clone().detach().requires_grad_(True)  # as the SIREN reference code does
        output = model(coords).view(h, w, c).permute(2, 0, 1)[None]
        loss = problem.data_term(output)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        mse = torch.mean(((output.detach() + 1) / 2 - problem.reference) ** 2)
        psnrs.append(float(-10 * torch.log10(mse)))
        times.append(time.perf_counter() - t0)
    with torch.no_grad():
        final = model(grid).view(h, w, c).numpy()
    return {"psnr": psnrs, "time": times, "final_psnr": _psnr(clean, (final + 1) / 2)}


def _psnr(clean: np.ndarray, image: np.ndarray) -> float:
    mse = float(np.mean((image.astype(np.float64) - clean) ** 2))
    return -10 * math.log10(mse)
