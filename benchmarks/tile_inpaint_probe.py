"""#14 probe: why inpainting in tiles loses inside the tiles (kate at full size: 31.61 against
32.11 whole, no seam). Hypothesis: each tile spans the SIREN's whole coordinate range, so a tile
of T px gets (N / T) times the frequency per pixel of the whole N-px image, which interpolates
sparse samples (10% kept) worse. A centre crop (``--crop``, Table 3's mask drawn by
``benchmarks/inpaint_fill.py``'s rule: seed 7 on crops) restored by the default whole, in tiles
of ``--tile``, and in those tiles with the SIREN's omega_0 scaled by tile / image (about the
whole image's frequency per pixel), and the whole image with that omega_0 too. PSNR in the paper's convention of the default's result (all
refined by ``grouped-fill``) and of the fit's own image; wall seconds on one thread. One row per
variant appended to ROWS (resumable).

    .venv/bin/python benchmarks/tile_inpaint_probe.py inpaint/kate --crop 256 --tile 128:32 \\
        --rows benchmarks/tile_inpaint_probe.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--crop", type=int, required=True)
    parser.add_argument("--tile", default="128:32")
    parser.add_argument("--rows", required=True)
    args = parser.parse_args(argv)
    import torch
    from inpaint_fill import scene

    import linr
    from linr.bench import data_dir
    from linr.metrics import evaluate
    from linr.models import ModelConfig

    torch.set_num_threads(1)
    clean, mask, seed = scene(args.image, args.crop, data_dir())
    obs = linr.masked(clean * mask[..., None], mask)
    tile_px = int(args.tile.split(":")[0])
    omega = 30.0 * tile_px / args.crop
    variants = {"whole": {}, f"tiles {args.tile}": {"tile": args.tile},
                f"tiles {args.tile}, omega_0 {omega:g}": {"tile": args.tile, "model": ModelConfig(omega_0=omega)},
                f"whole, omega_0 {omega:g}": {"model": ModelConfig(omega_0=omega)}}
    rows = Path(args.rows)
    done = {json.loads(line)["variant"] for line in rows.read_text().splitlines()} if rows.exists() else set()
    for name, options in variants.items():
        if name in done:
            continue
        t0 = time.perf_counter()
        result = linr.restore(obs, device="cpu", progress=False, tile=options.get("tile", "off"),
                              model=options.get("model", ModelConfig()))  # omega_0 30 unless said (these rows')
        seconds = time.perf_counter() - t0
        psnr = lambda image: round(evaluate(clean, image, convention="paper")["psnr"], 4)
        row = {"image": args.image, "crop": args.crop, "mask_seed": seed, "variant": name,
               "restored": psnr(result.image), "fit": psnr(result.fitted_image), "seconds": round(seconds, 1),
               "refine": {k: v for k, v in result.settings["refine"].items() if k != "name"}}
        with rows.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{name}: fit {row['fit']:.2f}, restored {row['restored']:.2f} ({row['seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
