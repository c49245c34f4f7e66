"""#15 SR x4: another kind of image model (FINER, WIRE) in the default's fit, then refined by
``grouped-views`` as the default refines it; a probe beside ``sr_views.py``'s rows of the default
(the paper's SIREN 7x256, Adam 1e-4 constant, 500 steps), on the same observations
(``sr_views.scene``).

``--variant NAME[:KEY=VALUE...]``: NAME a registered model (``linr.models.MODEL_FAMILIES``);
keys ``omega`` (omega_0 of siren / finer, the Gabor omega of wire), ``scale`` (the Gabor scale of
wire), ``width``, ``depth``, ``lr``, ``steps``, ``schedule`` (constant / cosine); unnamed ones keep
the default's. PSNR in the paper's convention (RGB, unclipped, data range 1) of the fit and of its
refinement; wall seconds on one thread. One row per image appended to ROWS (resumable by image,
crop and variant); ``--table ROWS --against ROWS`` prints them beside ``sr_views.py``'s rows.

    nice .venv/bin/python benchmarks/sr_model_probe.py set9/baboon set9/house --crop 128 \\
        --variant finer --rows benchmarks/sr_model_tune.jsonl
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe_common import FIT_KEYS, with_model_variant  # noqa: E402
from sr_schedule_probe import cli, fit_and_refine  # noqa: E402  (the same command line and table: fit / refined beside the default)


def run(spec: str, crop: int | None, variant: str, data: Path) -> dict:
    config, row = fit_and_refine(spec, crop, data, lambda c: with_model_variant(variant, c, tuple(FIT_KEYS)))
    return {"image": spec, "crop": crop, "variant": variant, "model": dataclasses.asdict(config.model),
            "steps": config.steps, "schedule": config.schedule, "lr": config.lr, **row}


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__.split("\n\n")[0], run, "finer", "NAME[:KEY=VALUE...]")


if __name__ == "__main__":
    raise SystemExit(main())
