"""``linr bench speed``: the plain reference loop against the fast engine, in one process.

For each task (denoise, SR x4, inpainting 10%) on a crop of a test image, it runs

1. **reference**: the loop as the paper's code writes it (SIREN with ``sin(omega_0 * (Wx+b))``,
   autograd through everything including the coordinates, full batch, float32, the whole image
   rendered every step; its PSNR comes from that render at no extra cost);
2. **engine**: the paper preset on the fast engine (same mathematics);
3. **engine at reduced precision**: the paper preset with the hidden layers' matmuls in bf16
   (``--precisions``; by default bf16 where this PyTorch offers it), which is not the same
   mathematics and is judged by its PSNR like a preset;
4. **fast presets**: each named preset, e.g. ``fast``;
5. with ``--stack K``: K observations of the image (noise and mask seeds 0..K-1) fitted with the
   paper preset one after the other and as one stack (:func:`linr.fit.fit_many`), per image and
   step; what stacking buys depends on the device (a GPU left idle by one small image).

and prints per-step time, PSNR after the run, time to reach the reference's final PSNR, peak
memory (RSS growth on a CPU, CUDA memory allocated with ``--device cuda``) and the ratios.
Timings exclude the PSNR evaluation renders the engine does only for the benchmark
(``timings['eval_s']``). Runs alternate (reference, engine, presets) and repeat ``--repeats``
times on the per-step timing, so a shared machine slows both sides alike.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..cli_common import positive_int

__all__ = ["register", "make_case", "reference_fit", "TASKS"]

TASKS = {
    "denoise": "set9/house.png",
    "sr": "set5/butterfly.png",
    "inpaint": "inpaint/kate.png",
}


def register(sub: Any) -> None:
    p = sub.add_parser("speed", help="reference loop vs fast engine: per-step time, time to PSNR",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_image_options(p)
    p.add_argument("--images", default=None,
                   help="task=relative/path.png,... overriding the default image per task")
    p.add_argument("--steps", type=positive_int, default=500, help="steps of the reference (default 500)")
    p.add_argument("--presets", default="fast", help="comma-separated fast presets to time")
    p.add_argument("--preset-steps", type=positive_int, default=None,
                   help="override the presets' step counts (quick checks only)")
    p.add_argument("--precisions", default=None,
                   help="comma-separated reduced matmul precisions to time with the paper preset "
                   "(bf16, tf32; default: bf16 where available; '' for none)")
    p.add_argument("--repeats", type=positive_int, default=3, help="interleaved timing repeats (default 3)")
    p.add_argument("--stack", type=positive_int, default=None, metavar="K",
                   help="also time K images fitted one by one against stacked (paper preset)")
    p.add_argument("--stop-cost", metavar="SIZES", default=None,
                   help="instead: time a denoising step with the default automatic stop "
                   "(hold-out) against a fixed-step fit at each size of SIZES (comma-separated, "
                   "e.g. 400,1024; an image smaller than a size is enlarged with PIL bicubic), "
                   "--steps steps each (give a few), interleaved --repeats times")
    add_run_options(p)
    p.set_defaults(func=cmd_speed)


def add_image_options(p: Any) -> None:
    """Options shared by the speed and presets benchmarks: data folder, tasks, crop size."""
    p.add_argument("--data", default=None, help="test data folder (default: $LINR_DATA, else ../shared/data)")
    p.add_argument("--tasks", default="denoise,sr,inpaint", help="comma-separated: denoise,sr,inpaint")
    p.add_argument("--size", type=positive_int, default=128, help="square centre crop (default 128)")


def add_run_options(p: Any) -> None:
    """Options shared by the speed and presets benchmarks: threads, device, JSON output."""
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--json", default=None, help="also write the results here")


def describe_machine(device: str) -> str:
    """Processor, torch and threads, load average (and the GPU's name with a CUDA device)."""
    import os
    import platform

    import torch

    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
               f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
               f"load average {os.getloadavg()[0]:.1f} at start")
    if torch.device(device).type == "cuda":
        machine = f"{torch.cuda.get_device_name(torch.device(device))} ({device}); host {machine}"
    return machine


def default_data(option: str | None = None) -> Path:
    """The test-image folder (:func:`linr.bench.data_dir`: option, $LINR_DATA, ../shared/data)."""
    from . import data_dir

    return data_dir(option)


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


def load_crop(path: Path, size: int | None) -> np.ndarray:
    """Centre crop ``size`` x ``size`` (RGB, [0, 1]) of an image file; None: the whole image."""
    from ..errors import InputError
    from ..images import read_image

    if not path.exists():
        raise InputError(f"test image {path} not found (use --data)")
    image = read_image(path)[0]
    if size is None:
        return np.ascontiguousarray(image[..., :3])
    h, w = image.shape[:2]
    if min(h, w) < size:
        raise InputError(f"{path} is {w}x{h}, smaller than --size {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size, :3])


def reference_fit(observations: list[Any], clean: np.ndarray, *, steps: int, lr: float = 1e-4,
                  seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """The paper code's loop: returns per-step PSNR (RGB, data range 1, unclipped) and times."""
    import torch

    from ..fit import build_problem
    from ..models import ModelConfig, build_model, coordinate_grid

    problem = build_problem(observations, device, clean)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(), out_channels=problem.channels).to(problem.device)
    h, w, c = problem.height, problem.width, problem.channels
    grid = coordinate_grid(h, w, device=problem.device)
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
        final = model(grid).view(h, w, c).cpu().numpy()
    return {"psnr": psnrs, "time": times, "final_psnr": _psnr(clean, (final + 1) / 2)}


def _psnr(clean: np.ndarray, image: np.ndarray) -> float:
    mse = float(np.mean((image.astype(np.float64) - clean) ** 2))
    return -10 * math.log10(mse)


def peak_memory(device: str) -> "PeakRSS | PeakCUDA":
    """Peak memory of a ``with`` block: RSS growth on the CPU, allocated memory on a GPU."""
    import torch

    return PeakCUDA(torch.device(device)) if torch.device(device).type == "cuda" else PeakRSS()


class PeakCUDA:
    """Peak CUDA memory allocated by PyTorch during a ``with`` block (bytes, above the start)."""

    def __init__(self, device: Any) -> None:
        self.device, self.peak = device, 0

    def __enter__(self) -> "PeakCUDA":
        import torch

        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.base = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.cuda.synchronize(self.device)
        self.peak = torch.cuda.max_memory_allocated(self.device) - self.base


class PeakRSS:
    """Peak resident memory growth (bytes) of this process during a ``with`` block.

    Samples /proc/self/statm every few milliseconds from a thread; freed heap memory is first
    handed back to the OS (``malloc_trim``) so that one run's leftovers do not hide the next
    run's growth. Works on Linux; elsewhere ``peak`` stays 0.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval, self.peak, self._stop = interval, 0, False

    @staticmethod
    def rss() -> int:
        import os

        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def __enter__(self) -> "PeakRSS":
        import ctypes
        import gc
        import threading

        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        self.base = self.rss()
        self._stop = False

        def sample() -> None:
            while not self._stop:
                self.peak = max(self.peak, self.rss() - self.base)
                time.sleep(self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, self.rss() - self.base)


def _engine_run(observations: list[Any], clean: np.ndarray, *, preset: str, steps: int | None,
                eval_every: int, precision: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """A fit with a preset on the fast engine, stopped as the preset stops it; PSNR curve and time.

    The time excludes the renders made only to record PSNR for the benchmark, but includes the
    ones a stop rule needs (they are part of the method's cost).
    """
    import dataclasses

    from ..fit import fit
    from ..tasks import resolve, resolve_stop

    obs, config = resolve(observations, preset=preset, steps=steps, device=device, progress=False,
                          precision=precision)
    config = dataclasses.replace(config, eval_every=eval_every)
    rule = resolve_stop(obs, preset=preset, steps=steps)
    with peak_memory(device) as mem:
        r = fit(obs, config, reference=clean, stop=rule)
    psnr = r.history["psnr"]
    seconds = r.timings["train_s"] + (r.timings["eval_s"] if rule is not None else 0.0)
    return {
        "steps": r.steps_run, "train_s": seconds, "eval_s": r.timings["eval_s"],
        "per_step_s": seconds / r.steps_run, "final_psnr": _psnr(clean, r.image),
        "returned_step": r.stop_step, "stop": r.settings["stop"],
        "psnr": psnr, "psnr_step": r.history.get("psnr_step", list(range(len(psnr)))),
        "peak_rss": mem.peak, "settings": {k: r.settings[k] for k in ("lr", "schedule", "model",
                                                                     "batch_pixels", "precision",
                                                                     "engine_used")},
    }


def _first_reach(psnr: list[float], steps: list[int], target: float, per_step: float) -> float | None:
    """Seconds (per-step time x steps) until the PSNR curve first reaches ``target``."""
    for value, step in zip(psnr, steps):
        if value >= target - 1e-9:
            return (step + 1) * per_step
    return None


def _interleaved_per_step(observations: list[Any], clean: np.ndarray, *, steps: int,
                          repeats: int, precisions: tuple[str, ...] = (),
                          device: str = "cpu") -> dict[str, list[float]]:
    """Per-step seconds of the reference and the engine (paper preset, float32 and each reduced
    precision), alternating runs."""
    out: dict[str, list[float]] = {"reference": [], "engine": []}
    out.update({f"engine {p}": [] for p in precisions})
    for _ in range(repeats):
        ref = reference_fit(observations, clean, steps=steps + 1, device=device)
        out["reference"].append((ref["time"][-1] - ref["time"][0]) / steps)  # first step: warm-up
        for precision in ("float32", *precisions):
            run = _engine_run(observations, clean, preset="paper", steps=steps + 1, eval_every=10**9,
                              precision=precision, device=device)
            out["engine" if precision == "float32" else f"engine {precision}"].append(
                run["train_s"] / (steps + 1))
    return out


def default_precisions(device: str = "cpu") -> tuple[str, ...]:
    """The reduced precisions to time by default: bf16 on a CPU where PyTorch has it; tf32 and
    bf16 on a GPU."""
    import torch

    from ..engine import check_precision

    candidates = ("tf32", "bf16") if torch.device(device).type == "cuda" else ("bf16",)
    out = []
    for precision in candidates:
        try:
            check_precision(precision, torch.device(device))
        except ValueError:
            continue
        out.append(precision)
    return tuple(out)


def stack_per_step(task: str, clean: np.ndarray, *, stack: int, steps: int, repeats: int,
                   device: str = "cpu") -> dict[str, Any]:
    """Per image and step: ``stack`` observations (seeds 0..K-1) fitted one by one with the paper
    preset, and the same fitted as one stack; alternating, ``repeats`` times."""
    from ..tasks import restore_many

    scenes = [make_case(task, clean, seed=k) for k in range(stack)]
    alone: list[float] = []
    stacked: list[float] = []
    for _ in range(repeats):
        total = sum(_engine_run(obs, clean, preset="paper", steps=steps, eval_every=10**9,
                                device=device)["train_s"] for obs in scenes)
        alone.append(total / (stack * steps))
        results = restore_many(scenes, preset="paper", steps=steps, device=device, progress=False, threads=None)
        loop = max(r.timings["train_s"] + r.timings["eval_s"] for r in results)
        stacked.append(loop / (stack * steps))
    ratio = float(np.median(alone)) / float(np.median(stacked))
    return {"k": stack, "steps": steps, "one_by_one_s": alone, "stacked_s": stacked, "ratio": ratio}


def run_task(task: str, clean: np.ndarray, *, steps: int, presets: list[str], repeats: int,
             preset_steps: int | None = None, precisions: tuple[str, ...] = (),
             device: str = "cpu", stack: int | None = None, log: Any = print) -> dict[str, Any]:
    """All measurements of one task; see the module docstring."""
    observations = make_case(task, clean)
    eval_every = 5 if task == "inpaint" else 1  # inpainting renders the whole image only for PSNR
    timing = _interleaved_per_step(observations, clean, steps=5, repeats=repeats,
                                   precisions=precisions, device=device)
    log(f"  [{task}] interleaved per-step s: " + ", ".join(f"{k} {_fmt(v)}" for k, v in timing.items()))
    stacking = None
    if stack is not None and stack > 1:
        stacking = stack_per_step(task, clean, stack=stack, steps=5, repeats=repeats, device=device)
        log(f"  [{task}] {stack} images, per image and step: one by one "
            f"{_fmt(stacking['one_by_one_s'])} s, stacked {_fmt(stacking['stacked_s'])} s")
    with peak_memory(device) as mem:
        ref = reference_fit(observations, clean, steps=steps, device=device)
    ref.update(train_s=ref["time"][-1], peak_rss=mem.peak, per_step_s=ref["time"][-1] / steps)
    target = ref["final_psnr"]
    log(f"  [{task}] reference: {steps} steps in {ref['train_s']:.1f} s, final PSNR {target:.2f} dB")
    runs = {"engine (paper preset)": _engine_run(observations, clean, preset="paper", steps=steps,
                                                 eval_every=eval_every, device=device)}
    for precision in precisions:
        runs[f"engine {precision} (paper preset)"] = _engine_run(
            observations, clean, preset="paper", steps=steps, eval_every=eval_every,
            precision=precision, device=device)
    for name in presets:
        runs[f"preset {name}"] = _engine_run(observations, clean, preset=name, steps=preset_steps,
                                             eval_every=eval_every, device=device)
    ref_first = _first_reach(ref["psnr"], list(range(steps)), target, ref["per_step_s"])
    rows = [_row("reference loop", ref, target, ref_first, ref)]
    for name, run in runs.items():
        first = _first_reach(run["psnr"], run["psnr_step"], target, run["per_step_s"])
        rows.append(_row(name, run, target, first, ref))
        log(f"  [{task}] {name}: {run['steps']} steps in {run['train_s']:.1f} s, "
            f"final PSNR {run['final_psnr']:.2f} dB")
    med = {k: float(np.median(v)) for k, v in timing.items()}
    return {"task": task, "target_psnr": target, "rows": rows, "interleaved": timing, "stack": stacking,
            "per_step_ratio": med["reference"] / med["engine"],
            "per_step_ratios": {k: med["reference"] / v for k, v in med.items() if k != "reference"}}


def _row(name: str, run: dict[str, Any], target: float, first: float | None,
         ref: dict[str, Any]) -> dict[str, Any]:
    reaches = run["final_psnr"] >= target - 0.005  # 0.005 dB: PSNR printed to 2 decimals
    return {
        "method": name, "steps": run.get("steps", len(run["psnr"])), "per_step_s": run["per_step_s"],
        "returned_step": run.get("returned_step"), "stop": run.get("stop", {"name": "fixed"}).get("name"),
        "train_s": run["train_s"], "final_psnr": run["final_psnr"], "reaches_target": reaches,
        "first_reach_s": first, "peak_rss_mib": run["peak_rss"] / 2**20,
        "speedup_to_result": ref["train_s"] / run["train_s"] if reaches else None,
    }


def _fmt(values: list[float]) -> str:
    return "/".join(f"{v:.3f}" for v in values)


def stop_cost(clean: np.ndarray, *, steps: int, repeats: int, device: str = "cpu") -> dict[str, Any]:
    """Seconds per step of a denoising fit (paper network, fast engine, sigma 25) with the
    default automatic stop and with a fixed step count, interleaved ``repeats`` times; the
    medians and their ratio, both without the default's prior and refinement (so both fit the
    paper's network, not the refined default's pilot: the stop's cost alone). Everything
    the loop does counts (no reference, no PSNR renders);
    ``steps`` is below the rule's patience, so both run every step."""
    from ..simulate import add_gaussian_noise
    from ..tasks import noisy, restore

    obs = [noisy(add_gaussian_noise(clean, 25, seed=0))]
    times: dict[str, list[float]] = {"automatic": [], "fixed": []}
    engines: dict[str, Any] = {}
    for _ in range(repeats):
        for name in times:
            r = restore(obs, steps=steps, stop="auto" if name == "automatic" else "fixed",
                        device=device, progress=False, prior="none", refine="none", threads=None)  # unrefined: both the paper network, not the pilot
            assert r.steps_run == steps, (name, r.stop_reason)
            times[name].append(r.timings["fit_s"] / r.steps_run)
            engines[name] = {**r.settings["engine_used"], "stop": r.settings["stop"]["name"],
                             "width": r.settings["model"]["width"], "lr": r.settings["lr"]}
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"size": list(clean.shape[:2]), "steps": steps, "per_step_s": times, "median_s": med,
            "ratio": med["automatic"] / med["fixed"], "engine_used": engines}


def _square(path: Path, size: int) -> np.ndarray:
    """A ``size`` x ``size`` centre crop, enlarged first (PIL bicubic) if the image is smaller."""
    from PIL import Image

    from ..images import read_image
    from ..simulate import pil_resize

    image = read_image(path)[0]
    if size is None:
        return np.ascontiguousarray(image[..., :3])
    h, w = image.shape[:2]
    if min(h, w) < size:
        scale = size / min(h, w)
        image = np.clip(pil_resize(image, (math.ceil(h * scale), math.ceil(w * scale)), Image.BICUBIC), 0, 1)
        h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top:top + size, left:left + size])


def _cmd_stop_cost(args: argparse.Namespace, data: Path, device: str) -> int:
    import os

    from ..errors import InputError

    try:
        sizes = [int(v) for v in args.stop_cost.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--stop-cost: expected comma-separated sizes, got {args.stop_cost!r}") from None
    if not sizes or min(sizes) < 8:
        raise InputError("--stop-cost: give sizes of at least 8 pixels")
    path = data / TASKS["denoise"]
    print(f"linr bench speed --stop-cost: {describe_machine(device)}; {TASKS['denoise']}, noise "
          f"sigma 25, paper network on the fast engine, {args.steps} steps, {args.repeats} repeats")
    print("| size | automatic stop s/step | fixed s/step | ratio | pixel path (auto/fixed) | "
          "rendered pixels (auto/fixed) |")
    print("|---|---|---|---|---|---|")
    results = []
    for size in sizes:
        res = stop_cost(_square(path, size), steps=args.steps, repeats=args.repeats, device=device)
        e = res["engine_used"]
        print(f"| {size}x{size} | {_fmt(res['per_step_s']['automatic'])} | "
              f"{_fmt(res['per_step_s']['fixed'])} | {res['ratio']:.3f} | "
              f"{e['automatic'].get('pixel_wise')}/{e['fixed'].get('pixel_wise')} | "
              f"{e['automatic'].get('rendered_pixels')}/{e['fixed'].get('rendered_pixels')} |", flush=True)
        results.append(res)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": describe_machine(device), "device": device,
                                               "results": results}, indent=1))
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    import os

    import torch

    from ..errors import InputError

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stop_cost is not None:
        from ..fit import resolve_device

        data = default_data(args.data)
        return _cmd_stop_cost(args, data, str(resolve_device(args.device)))
    data = default_data(args.data)
    chosen = [t.strip() for t in args.tasks.split(",") if t.strip()]
    images = dict(TASKS)
    if args.images:
        for item in args.images.split(","):
            task, _, rel = item.partition("=")
            if task not in TASKS or not rel:
                raise InputError(f"bad --images entry {item!r}: use task=relative/path.png")
            images[task] = rel
    for task in chosen:
        if task not in TASKS:
            raise InputError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    from ..tasks import PRESETS

    for name in presets:
        if name not in PRESETS:
            raise InputError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    from ..fit import resolve_device

    device = str(resolve_device(args.device))
    if args.precisions is None:
        precisions = default_precisions(device)
    else:
        precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
        from ..engine import check_precision

        for precision in precisions:
            if precision == "float32":
                raise InputError("--precisions lists reduced precisions; float32 is always timed")
            try:
                check_precision(precision, torch.device(device))
            except ValueError as exc:
                raise InputError(str(exc)) from None
    machine = describe_machine(device)
    print(f"linr bench speed: {machine}")
    results = []
    for task in chosen:
        clean = load_crop(data / images[task], args.size)
        print(f"{task}: {images[task]} centre {args.size}x{args.size}")
        res = run_task(task, clean, steps=args.steps, presets=presets, repeats=args.repeats,
                       preset_steps=args.preset_steps, precisions=precisions, device=device,
                       stack=args.stack)
        res["image"] = images[task]
        results.append(res)
        print(format_table(res))
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "device": device, "size": args.size,
                                               "results": results}, indent=1))
    return 0


def format_table(res: dict[str, Any]) -> str:
    """One task's results as a Markdown table (PSNR: RGB, data range 1, unclipped = paper)."""
    ratios = res["per_step_ratios"]
    lines = [
        f"target = reference final PSNR {res['target_psnr']:.2f} dB; interleaved per-step ratio "
        "reference/" + ", reference/".join(f"{k} = {v:.2f}x" for k, v in ratios.items()),
        "| method | steps | s/step | train s | final PSNR | reaches | first reach s | peak MiB | "
        "speedup to result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    stack = res.get("stack")
    if stack:
        lines.insert(1, f"{stack['k']} images stacked: {stack['ratio']:.2f}x the per-image throughput "
                     f"of fitting them one by one (paper preset, median per image and step "
                     f"{np.median(stack['one_by_one_s']):.4f} s alone, "
                     f"{np.median(stack['stacked_s']):.4f} s stacked)")
    for r in res["rows"]:
        first = "-" if r["first_reach_s"] is None else f"{r['first_reach_s']:.1f}"
        speed = "-" if r["speedup_to_result"] is None else f"{r['speedup_to_result']:.1f}x"
        steps = str(r["steps"])
        if r.get("stop") not in (None, "fixed"):
            steps += f" ({r['stop']}, returned {r['returned_step']})"
        lines.append(
            f"| {r['method']} | {steps} | {r['per_step_s']:.3f} | {r['train_s']:.1f} | "
            f"{r['final_psnr']:.2f} | {'yes' if r['reaches_target'] else 'no'} | {first} | "
            f"{r['peak_rss_mib']:.0f} | {speed} |"
        )
    return "\n".join(lines)
