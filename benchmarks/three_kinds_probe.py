"""A noisy, a low-res and a blurred photo of one scene restored together (sixty-ninth session).

The defaults refine a joint fit of a noisy photo beside a low-res view (``grouped-project``) or
beside a blurred photo (``grouped-pair``), and a fit of all three kinds not at all: a new user's
three photos came back 31.02 dB, under either pair (32.02, 31.67; sixty-eighth session). Candidate:
``grouped-pair`` for the three (the noisy and the blurred photo's refinement from the joint fit of
all three; the low-res view informs the fit, the pilot, only), through ``linr.refine._pair``
relaxed to let observations of another size beside the pair (``grouped-project``, the low-res
view's, left the fit within 0.02 dB on set5 bird's 96-px crop, 34.67 against 34.65, under the
noisy + blurred pair's 36.13: not pursued). Scenes ``DIR+NAME/SIGMA``: the centre 64-px RGB crop of a shared
image; a noisy copy at SIGMA/255, a x4 low-res copy (PIL Lanczos, as the paper makes its low-res
inputs) and a copy blurred by a 13-px Gaussian of sigma 1.6 (mirrored edges) with 2/255 of noise,
each rounded to 8 bits, their seeds from the key's CRC-32. PSNR (standard convention, data range 1)
against the crop of:

- ``three``: the three restored together with ``refine="none"`` (the defaults before the sixty-ninth
  session, which refined nothing; the rows were made by the defaults then);
- ``three_pair``: the same with ``refine="grouped-pair"`` (the relaxed ``_pair``; the default since);
- ``noisy_lowres`` / ``noisy_blurred``: each pair with its defaults;
- ``noisy``: the noisy photo alone with its defaults.

One torch thread; resumable rows.

    python benchmarks/three_kinds_probe.py ROWS.jsonl set5+bird/25,...
    python benchmarks/three_kinds_probe.py ROWS.jsonl --table
"""
from __future__ import annotations

import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from linr.bench.common import keyed_probe, split_spans  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TUNE = ("set5+baby", "set5+bird", "set5+butterfly", "set5+head", "set5+woman", "inpaint+kate")
VARIANTS = ("three", "three_pair", "noisy_lowres", "noisy_blurred", "noisy")
SIDE = 64


def scene(key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(clean (SIDE, SIDE, 3), noisy, low-res (x4 smaller), blurred, kernel) of ``DIR+NAME/SIGMA``."""
    from PIL import Image

    from linr import gaussian_kernel
    from linr.simulate import add_gaussian_noise, blur_image, lanczos_downscale

    name, sigma = key.split("/")
    img = np.asarray(Image.open(DATA / (name.replace("+", "/") + ".png")).convert("RGB"), np.float32) / 255
    n = SIDE
    y, x = (img.shape[0] - n) // 2, (img.shape[1] - n) // 2
    clean = img[y:y + n, x:x + n]
    seed = zlib.crc32(key.encode())
    eight = lambda a: (np.round(np.clip(a, 0, 1) * 255) / 255).astype(np.float32)  # noqa: E731
    noisy = eight(add_gaussian_noise(clean, float(sigma), seed=seed))
    low = eight(lanczos_downscale(clean, 4))
    kernel = gaussian_kernel(13, 1.6)
    blurred = eight(blur_image(clean, kernel, noise_sigma=2.0, seed=seed + 1, boundary="reflect"))
    return clean, noisy, low, blurred, kernel


def row(key: str) -> dict:
    import linr
    from skimage.metrics import peak_signal_noise_ratio as psnr

    torch.set_num_threads(1)
    clean, noisy, low, blurred, kernel = scene(key)
    n, lo, b = linr.noisy(noisy), linr.lowres(low, 4), linr.blurred(blurred, kernel)
    t = time.time()
    runs = {"three": ([n, lo, b], {"refine": "none"}), "three_pair": ([n, lo, b], {"refine": "grouped-pair"}),
            "noisy_lowres": ([n, lo], {}), "noisy_blurred": ([n, b], {}), "noisy": ([n], {})}
    out: dict = {"key": key, "split": "tune" if key.split("/")[0] in TUNE else "report"}
    for name, (observations, options) in runs.items():
        started = time.time()
        r = _with_relaxed_pair(lambda: linr.restore(observations, progress=False, **options))
        out[name] = float(psnr(clean, np.clip(np.asarray(r.image, np.float64), 0, 1), data_range=1))
        out[name + "_s"] = round(time.time() - started, 1)
        if name == "three_pair":
            out["three_pair_refine"] = r.settings.get("refine")
    out["seconds"] = round(time.time() - t, 1)
    return out


def _with_relaxed_pair(call):
    """``call()`` with ``linr.refine._pair`` taking the pair among observations of other sizes too
    (unless the library already does)."""
    import linr.refine as refine
    from linr.deconvolution import deblurrable
    from linr.operators import Identity
    from linr.problem import noise_level_known

    plain = refine._pair

    def relaxed(observations, shape, spec):
        sized = [o for o in observations if tuple(o.shape) == tuple(shape)]
        blurred = [o for o in sized if deblurrable(o)]
        noisy = [o for o in sized if noise_level_known(o) and isinstance(o.operator, Identity)]
        if len(sized) != 2 or len(blurred) != 1 or len(noisy) != 1:
            return plain(observations, shape, spec)
        return blurred[0], noisy[0]

    refine._pair = relaxed
    try:
        return call()
    finally:
        refine._pair = plain


def table(rows: dict) -> str:
    lines = ["| scene | set | " + " | ".join(VARIANTS) + " | three_pair - three | three_pair - best pair |",
             "|---|---|" + "---:|" * (len(VARIANTS) + 2)]
    for key in sorted(rows, key=lambda k: (rows[k]["split"] != "tune", k)):
        r = rows[key]
        best = max(r["noisy_lowres"], r["noisy_blurred"])
        lines.append(f"| {key} | {r['split']} | " + " | ".join(f"{r[v]:.2f}" for v in VARIANTS)
                     + f" | {r['three_pair'] - r['three']:+.2f} | {r['three_pair'] - best:+.2f} |")
    lines += split_spans(rows, {"three_pair - three": lambda r: r["three_pair"] - r["three"],
                                "three_pair - best pair": lambda r: r["three_pair"] - max(r["noisy_lowres"],
                                                                                          r["noisy_blurred"])})
    return "\n".join(lines)


if __name__ == "__main__":
    keyed_probe(sys.argv[1:], row, table)
