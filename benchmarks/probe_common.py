"""What the denoising-stop probes (``stop_refined_pick_probe.py``, ``stop_sure_probe.py``) share:
their command line (rows file, crop names and settings, resume, ``--table``), the default restore's
held-out minimum, and the default's pilot fit run again with its average kept every 5 steps."""
from __future__ import annotations

import argparse
import dataclasses
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from linr import tasks
from linr.bench.common import append_row, read_rows
from linr.fit import fit, output_image
from linr.stopping import FixedSteps, holdout_rule


FIT_KEYS = {"lr": float, "steps": int, "schedule": str}
"""Fit settings a model variant may change (``with_model_variant``'s ``fit_keys``)."""


def with_model_variant(variant: str, config: Any, fit_keys: tuple[str, ...] = ("lr",)) -> Any:
    """``config`` (a :class:`linr.fit.FitConfig`) with the variant ``NAME[:KEY=VALUE...]``: NAME a
    registered model; keys ``omega`` (omega_0 of siren / finer, the Gabor omega of wire), ``scale``
    (the Gabor scale of wire), ``width``, ``depth``, and those of ``fit_keys`` (:data:`FIT_KEYS`);
    unnamed ones keep ``config``'s."""
    name, *pairs = variant.split(":")
    model: dict[str, Any] = {"name": name}
    changes: dict[str, Any] = {}
    for key, value in (pair.split("=", 1) for pair in pairs):
        if key == "omega":
            model["gabor_omega" if name == "wire" else "omega_0"] = float(value)
        elif key == "scale":
            model["gabor_scale"] = float(value)
        elif key in ("width", "depth"):
            model[key] = int(value)
        elif key in fit_keys:
            changes[key] = FIT_KEYS[key](value)
        else:
            raise SystemExit(f"unknown variant key {key!r} in {variant!r}")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **model), **changes)


def crop_parser(description: str, size: int) -> argparse.ArgumentParser:
    """ROWS NAME ... with --size, --sigma, --colour and --table."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("rows", type=Path)
    p.add_argument("names", nargs="*")
    p.add_argument("--size", type=int, default=size)
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--colour", choices=("rgb", "grey"), default="grey")
    p.add_argument("--table", action="store_true")
    return p


def grid_run(rows: Path, table: Callable[[dict], str], show: bool,
             cases: "list[tuple[str, Callable[[], dict]]]") -> None:
    """Print the table of the rows file (``show``), or record each case's row (``(key, make)``)
    not yet in it, saying each (:func:`linr.bench.common.emit_row`)."""
    from linr.bench.common import emit_row

    done = read_rows(rows)
    if show:
        print(table(done))
        return
    for key, make in cases:
        if key not in done:
            emit_row(make(), rows)


def run(args: argparse.Namespace, key: Callable[[str], str], row: Callable[[str], dict],
        say: Callable[[str, dict], str], table: Callable[[dict], str]) -> None:
    """Print the table of the rows file (``--table``), or record a row per name not yet in it
    (one torch thread), saying each."""
    done = read_rows(args.rows)
    if args.table:
        print(table(done))
        return
    torch.set_num_threads(1)
    for name in args.names:
        if key(name) in done:
            continue
        made = row(name)
        append_row(args.rows, made)
        print(say(name, made), flush=True)


def default_restore(name: str, args: argparse.Namespace) -> tuple[np.ndarray, list, Any]:
    """The clean crop of ``name`` (set9 name or FOLDER/NAME), its noisy photo's observations
    (Gaussian noise of ``args.sigma``, seed 0) and the default restore of it."""
    import linr
    from linr.bench import data_dir
    from linr.bench.averaging import clean_crop, observations_for

    folder, _, image = name.rpartition("/")
    clean = clean_crop(data_dir(None), folder or "set9", image, args.colour, args.size)
    obs = observations_for("denoise", clean, sigma=args.sigma, seed=0)
    return clean, obs, linr.restore(obs, seed=0, device="cpu", progress=False, reference=clean)


def held_out_minimum(default: Any) -> int:
    """The step of the held-out minimum the default restore's stop started from (its returned step
    unless a later choice moved it: ``at``'s ``minimum_step``, the SURE pick's ``held_out_step``)."""
    stop = default.settings["stop"]
    return int(stop.get("minimum_step") or (stop.get("sure") or {}).get("held_out_step") or default.stop_step)


def pilot_averages(obs: list, refine: str, steps: int, *, lr: float | None = None) -> tuple[dict[int, np.ndarray], Any]:
    """The default's pilot fit (same held-out pixels; the pilot's rate, or ``lr``) for ``steps``
    steps: its 40-iterate average every 5 steps ((H, W, C) on [0, 1]), and its hold-out rule."""
    resolved, config = tasks.resolve(obs, seed=0, device="cpu")
    held = holdout_rule(tasks.resolve_stop(resolved, preset=None, steps=None, stop="holdout:0.05:40:window40",
                                           refine=refine))
    resolved = held.prepare(resolved)
    window: deque = deque(maxlen=40)
    averages: dict[int, np.ndarray] = {}

    def keep(step: int, output: torch.Tensor, loss: float) -> None:
        window.append(output_image(output))
        if (step + 1) % 5 == 0:
            averages[step + 1] = np.mean(window, axis=0)

    fit(resolved, dataclasses.replace(config, steps=steps, lr=config.lr if lr is None else lr, retry_lr=None),
        stop=FixedSteps(steps), callback=keep)
    return averages, held
