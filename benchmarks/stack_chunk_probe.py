"""#14: the time of a stacked tile step with the default chunk against one chunk per step.

A 1024-px noisy photo (the mirror-tiled kodim01 of ``tiles_scale.py``), 16 tiles of 256:32 in one
stack, a 7x16 SIREN (so that the per-operator work, not the products, sets the time, as on a GPU),
fixed steps, no refinement, one thread. Each setting runs 2 and 6 steps; the difference over 4
is the time of a step without the set-up. The chunk is forced through the fit loop's config
(``linr.fastfit.run_fast_many``), since on the CPU the default keeps 2**17 pixels a chunk.

    .venv/bin/python benchmarks/stack_chunk_probe.py
"""
import dataclasses
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiles_scale import noisy_mirrored_photo  # noqa: E402

import linr.fastfit as fastfit  # noqa: E402
from linr.models import ModelConfig  # noqa: E402
from linr.tasks import noisy, restore  # noqa: E402

torch.set_num_threads(1)
original = fastfit.run_fast_many
forced = [None]


def with_chunk(models, problems, config, monitors):
    if forced[0]:
        config = dataclasses.replace(config, chunk_pixels=forced[0])
    return original(models, problems, config, monitors)


fastfit.run_fast_many = with_chunk
_, y = noisy_mirrored_photo(Path("../shared/data"), 1024)
for chunk in (None, 2**21, None, 2**21):
    forced[0] = chunk
    fit_s = {}
    for steps in (2, 6):
        r = restore([noisy(y)], tile="256:32", steps=steps, stop="fixed", device="cpu", progress=False,
                    model=ModelConfig(width=16), tile_stack=16, refine="none")
        fit_s[steps] = r.timings.get("fit_s", 0.0)
    print(json.dumps({"chunk": chunk or 2**17, "fit_s_2": round(fit_s[2], 2), "fit_s_6": round(fit_s[6], 2),
                      "s_per_step": round((fit_s[6] - fit_s[2]) / 4, 3)}), flush=True)
