"""``linr demo``: the paper's headline experiment on a bundled photo, in about a minute on a CPU.

A 96x96 crop of scikit-image's astronaut is corrupted twice (Gaussian noise sigma 25, and x4
Lanczos downscaling), then restored jointly from both with the paper preset; the fit is then
refined with the defaults' refinement of such a joint fit (``grouped-project``: the noisy photo
filtered with the fit as the pilot, then made to reproduce the low-res view exactly; not in the
paper). The paper preset's fit holds no pixels out, so the demo's refinement is not blended with
the fit's image as the defaults' own fit would be (:class:`linr.refine.GroupedProjected`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEMO_SIZE = 96
DEMO_STEPS = 500
DEMO_FILES = ("clean.png", "noisy.png", "lowres.png", "bicubic.png", "restored.png", "refined.png")
"""What the demo writes into its folder."""


def demo_image() -> np.ndarray:
    """The bundled clean image: a 96x96 crop (the face) of scikit-image's astronaut, [0, 1]."""
    from skimage import data

    return data.astronaut()[30:126, 196:292].astype(np.float32) / 255.0


def run_demo(out_dir: Path, *, steps: int | None = None, device: str = "auto") -> dict[str, float]:
    from PIL import Image

    from . import tasks
    from .images import write_image
    from .metrics import psnr
    from .refine import refine_image
    from .simulate import add_gaussian_noise, lanczos_downscale, pil_resize

    clean = demo_image()
    noisy = add_gaussian_noise(clean, 25, seed=0)
    low = lanczos_downscale(clean, 4)
    bicubic = pil_resize(low, clean.shape[:2], Image.BICUBIC)
    steps = steps or DEMO_STEPS
    print(f"linr demo: {DEMO_SIZE}x{DEMO_SIZE} astronaut crop, noisy (sigma 25) + low-res (x4) "
          f"observations, joint restoration, paper preset, {steps} steps")
    observations = [tasks.noisy(noisy), tasks.lowres(low, 4)]
    result = tasks.restore(observations, preset="paper", steps=steps, device=device, threads=None)
    restored = np.clip(result.image, 0, 1)
    joint, _ = tasks.resolve(observations, device="cpu")  # the weights the fit used
    refined = np.clip(refine_image(tasks.DEFAULT_JOINT_REFINE, result.image, joint)[0], 0, 1)
    files = {"clean": clean, "noisy": noisy, "lowres": low, "bicubic": bicubic, "restored": restored,
             "refined": refined}
    for name, img in files.items():
        write_image(out_dir / f"{name}.png", img, force=True)
    scores = {
        "noisy input": psnr(clean, noisy),
        "low-res input, bicubic x4": psnr(clean, bicubic),
        "linr joint restoration": psnr(clean, restored),
        "  refined (grouped-project)": psnr(clean, refined),
    }
    print("PSNR against the clean crop (RGB, data range 1, output clipped):")
    for name, value in scores.items():
        print(f"  {name:<28s} {value:6.2f} dB")
    per_step = result.timings.get("per_step_s")  # None for a restore in tiles
    print(f"fitting took {result.timings['fit_s']:.1f} s on {result.settings['device']}"
          + ("" if per_step is None else f" ({per_step * 1000:.0f} ms/step)"))
    print(f"images written to {out_dir}/ ({', '.join(f + '.png' for f in files)})")
    return scores
