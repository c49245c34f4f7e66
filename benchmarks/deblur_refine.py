"""#15 deblurring: the ``grouped-deblur`` refinement (plug-and-play: grouped filtering and the data
step of the blurred photo, at a falling level) after the default fit, against the fit alone, and
the same refinement started from Wiener deconvolution instead of the fit (what the fit adds).

For each image: Table 4's observation (the image, ``--crop N``: a centre crop of N px first,
blurred circularly by the 25 x 25 Gaussian kernel of sigma 1.6 with noise of std sqrt(2)/255,
noise seed 0, :func:`linr.simulate.blur_image`), the default fit of that one blurred photo (the
paper's network and 4000 steps; the blur's boundary circular, as the photo was made), then
``grouped-deblur`` at each ``--schedule PASSES:START:END`` (the refiner's default first) from the
fit's image and from scikit-image's Wiener deconvolution (:func:`linr.baselines.classical.wiener_deblur`):
PSNR in the paper's convention (Y channel of 8-bit-rounded RGB) and the standard one (RGB,
clipped), and wall seconds (one thread); and the default refinement of the same fit's image at
steps 250, 500, 1000, 2000 and 3000 (``earlier``). ``--cache DIR`` keeps each fit (.npz, with those
images) so that a rerun refines again without refitting. One row per image appended to ROWS
(resumable).

    .venv/bin/python benchmarks/deblur_refine.py set9/house set9/kodim01 --crop 128 \\
        --rows benchmarks/deblur_refine_tune.jsonl --cache /tmp/deblur_cache

``--scene``: the photo of a real camera instead, whose borders were blurred with what lay outside
the frame: the whole image blurred (Table 4's kernel and noise), then its centre ``--crop``; the
default fit of a real photo (its blur reflecting, as no rule is known), then ``grouped-deblur``
with each data step of :data:`linr.deconvolution.EDGES` (the operator's mirrored borders, or free
edges) from the fit's image and from its images at 1000 and 2000 steps: PSNR (paper convention) of
the whole crop and of its interior (the kernel's reach, 12 px, left out of each side); its own rows
and table. ``--scene --interior``: the fit's data term only on the photo's pixels whose blur reads
no pixel beyond the frame (its interior: a mask after the reflecting blur, as a tile's), so that
no boundary rule is fitted. ``--scene --extended``: the fit renders the photo's frame extended by
the kernel's reach on every side and blurs it without padding (a valid convolution,
:class:`ValidBlur`), so that every photo pixel is in the data term and nothing is assumed beyond
the frame; its image (and each snapshot) cropped to the frame.

``--device DEV`` fits there (cuda: the GPU script); ``--steps N`` fits N steps (a dry run).
``--scene --stop SPEC``: the fit stops by the stop rule SPEC (``discrepancy:1``: when the photo is
explained to its estimated noise level), the photo marked as carrying noise so that the rule reads
it; the row records the step returned. ``--scene --lr-schedule cosine``: the fit's learning rate
falls to zero over its steps (:func:`linr.config.lr_factor`) instead of the paper's constant one.
``--table ROWS`` prints a rows file as a markdown table (BENCHMARKS.md's). ``--from-wiener``: no
fit, only the default refinement started from Wiener deconvolution (its own rows and table; the
whole Table 4 images, whose 4000-step fits take hours here).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

SCHEDULES: list[tuple[int, float, float]] = []
"""Extra (passes, start, end) schedules of ``grouped-deblur``, from ``--schedule``."""

FIT = {"device": "cpu", "steps": None, "interior": False, "extended": False, "stop": None,
       "lr_schedule": None}
"""The fit's device (``--device``, e.g. cuda for the GPU script) and step count (``--steps``: a dry
run's few; None: the default's 4000)."""


def scene(spec: str, crop: int | None, data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The clean image, its blurred photo, the kernel and the name of its fit in a cache folder."""
    from linr.bench.common import centre_crop
    from linr.bench.spec import BLUR
    from linr.images import read_image
    from linr.operators import gaussian_kernel
    from linr.simulate import blur_image

    folder, name = spec.split("/")
    clean = read_image(data / folder / f"{name}.png")[0][..., :3].astype(np.float32)
    clean = np.ascontiguousarray(centre_crop(clean, crop)[0])
    kernel = gaussian_kernel(*BLUR)
    return clean, blur_image(clean, kernel, seed=0), kernel, f"{spec.replace('/', '_')}_{crop or 'full'}_deblur.npz"


SNAPSHOTS = (250, 500, 1000, 2000, 3000)
"""Steps at which the fit's image is kept too (the forward pass of that step: with the fixed step
count and constant rate of the default deblurring fit, the image a fit of that many steps ends
near), to see what the refinement makes of a shorter fit."""


def fitted(obs: list, saved: Path | None) -> tuple[np.ndarray, float, dict[int, np.ndarray]]:
    """The default fit of ``obs`` (the fit alone, one thread): its image, wall seconds and images
    at :data:`SNAPSHOTS`, read from ``saved`` (.npz) when it exists, else fitted and kept there."""
    from linr.tasks import restore

    if saved is not None and saved.exists():
        z = np.load(saved)
        return z["fit"], float(z["seconds"]), {int(k[4:]): z[k] for k in z.files if k[:4] == "step" and k[4:].isdigit()}
    snapshots: dict[int, np.ndarray] = {}

    def keep(step: int, output, loss: float, tile: int | None) -> None:
        if step in SNAPSHOTS:
            snapshots[step] = (output[0].permute(1, 2, 0).numpy() * 0.5 + 0.5).astype(np.float32)
            print(f"  step {step}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    stop = {} if FIT["stop"] is None else {"stop": FIT["stop"]}
    if FIT["lr_schedule"]:  # the defaults with another learning-rate schedule (this process only)
        import dataclasses

        from linr import tasks

        tasks.PRESETS[tasks.DEFAULT_PRESET] = dataclasses.replace(tasks.PRESETS[tasks.DEFAULT_PRESET],
                                                                  schedule=FIT["lr_schedule"])
    result = restore(obs, refine="none", device=FIT["device"], steps=FIT["steps"], progress=False, on_step=keep, **stop)
    seconds = time.perf_counter() - t0
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        np.savez(saved, fit=result.image, seconds=seconds, steps=result.steps_run, stop_step=result.stop_step or 0,
                 **{f"step{k}": v for k, v in snapshots.items()})
    return result.image, seconds, snapshots


def run(spec: str, crop: int | None, data: Path, cache: Path | None) -> dict:
    from linr.baselines.classical import wiener_deblur
    from linr.kinds import blurred
    from linr.metrics import evaluate
    from linr.refine import GroupedDeblur, refine_image

    clean, photo, kernel, cached = scene(spec, crop, data)
    obs = [blurred(photo, kernel, boundary="circular")]
    if FIT["steps"]:  # a dry run's short fit is not the default's
        cached = cached.replace(".npz", f"_steps{FIT['steps']}.npz")
    saved = cache / cached if cache else None
    fit, fit_s, snapshots = fitted(obs, saved)

    def scores(image: np.ndarray) -> dict:
        return {"paper": round(evaluate(clean, image, convention="paper", task="deblur")["psnr"], 4),
                "standard": round(evaluate(clean, image, convention="standard")["psnr"], 4)}

    wiener = wiener_deblur(photo, kernel).image
    row = {"image": spec, "size": list(clean.shape[:2]), "crop": crop, "noise_seed": 0,
           **({"fit_device": FIT["device"]} if FIT["device"] != "cpu" else {}),
           **({"fit_steps": FIT["steps"]} if FIT["steps"] else {}),
           "fit_seconds": round(fit_s, 1), "fit": scores(fit), "wiener": scores(wiener)}
    t0 = time.perf_counter()
    image, done = refine_image("grouped-deblur", fit, obs)
    row["grouped-deblur"] = {**scores(image), "seconds": round(time.perf_counter() - t0, 1), "report": done}
    sigma = done["sigma"] / 255.0
    default = GroupedDeblur()
    for passes, start, end in [(default.passes, default.start, default.end), *SCHEDULES]:
        key = f"{passes}:{start:g}:{end:g}"
        refiner = GroupedDeblur(passes, start, end)
        out = {}
        for name, begin in (("fit", fit), ("wiener", wiener)):
            if name == "fit" and key == _default_key(row):  # the refinement above
                out[name] = {k: row["grouped-deblur"][k] for k in ("paper", "standard", "seconds")}
                continue
            t0 = time.perf_counter()
            refined = refiner(begin, photo, obs[0].operator, sigma)
            out[name] = {**scores(refined), "seconds": round(time.perf_counter() - t0, 1)}
        row.setdefault("schedules", {})[key] = out
    for step, image in snapshots.items():  # the same fit stopped earlier, refined by the default
        refined, _ = refine_image("grouped-deblur", image, obs)
        row.setdefault("earlier", {})[step] = {"fit": scores(image), "grouped-deblur": scores(refined)}
    return row


def valid_blur(kernel: np.ndarray):
    """A blur whose input is the image extended by the kernel's reach (``kh - 1`` rows and
    ``kw - 1`` columns in all, ``kh - 1 - kh // 2`` before, as the reflecting blur reads them) and
    whose output is the photo: the reflecting blur's sum without padding (a valid convolution)."""
    import torch
    import torch.nn.functional as F

    from linr.operators import Blur

    class ValidBlur(Blur):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, c, h, w = x.shape
            kh, kw = self.kernel.shape
            weight = torch.flip(self.kernel, dims=(0, 1)).to(device=x.device, dtype=x.dtype)
            return F.conv2d(x.reshape(b * c, 1, h, w), weight[None, None]).reshape(b, c, h - kh + 1, w - kw + 1)

        def adjoint(self, y: torch.Tensor, input_shape=None) -> torch.Tensor:
            return super(Blur, self).adjoint(y, input_shape)

        def output_shape(self, shape):
            kh, kw = self.kernel.shape
            return (shape[0] - kh + 1, shape[1] - kw + 1)

        def input_shape(self, shape):
            kh, kw = self.kernel.shape
            return (shape[0] + kh - 1, shape[1] + kw - 1)

        def describe(self) -> dict:
            return {**super().describe(), "boundary": "valid"}

    return ValidBlur(kernel, boundary="reflect")


def run_scene(spec: str, crop: int | None, data: Path, cache: Path | None) -> dict:
    """``--scene``'s row (module docstring)."""
    from linr.bench.common import centre_crop
    from linr.deconvolution import EDGES
    from linr.kinds import blurred
    from linr.metrics import evaluate
    from linr.noise import floored_noise_sigma
    from linr.refine import GroupedDeblur, refine_input

    if not crop:
        raise SystemExit("--scene needs --crop N (a crop of the blurred whole image)")
    whole, blurred_whole, kernel, _ = scene(spec, None, data)
    if crop > min(whole.shape[:2]) - (kernel.shape[0] - 1):  # the circular blur's wrap stays outside
        raise SystemExit(f"--crop {crop}: at most {min(whole.shape[:2]) - kernel.shape[0] + 1} px of {spec}")
    clean = np.ascontiguousarray(centre_crop(whole, crop)[0])
    photo = np.ascontiguousarray(centre_crop(blurred_whole, crop)[0])
    obs = [blurred(photo, kernel)]  # the defaults' blur of a real photo: reflecting
    reach = kernel.shape[0] // 2
    fitting = obs
    if FIT["interior"]:  # the fit's data term on the photo's pixels its frame explains fully
        import dataclasses

        from linr.operators import Blur, Compose, Mask

        inside_mask = np.zeros(photo.shape[:2], np.float32)
        inside_mask[reach:-reach, reach:-reach] = 1.0
        fitting = [dataclasses.replace(obs[0], operator=Compose([Blur(kernel, boundary="reflect"), Mask(inside_mask)]))]
    if FIT["extended"]:  # every photo pixel explained by the extended image, nothing assumed beyond
        import dataclasses

        fitting = [dataclasses.replace(obs[0], operator=valid_blur(kernel))]
    if FIT["stop"]:  # a stop rule that reads the photo's noise: the photo marked as carrying it
        import dataclasses

        fitting = [dataclasses.replace(o, carries_noise=True) for o in fitting]
    mode = "_interior" if FIT["interior"] else "_extended" if FIT["extended"] else ""
    mode += f"_stop-{FIT['stop'].replace(':', '-').replace(',', '+')}" if FIT["stop"] else ""
    mode += f"_lr-{FIT['lr_schedule']}" if FIT["lr_schedule"] else ""
    name = f"{spec.replace('/', '_')}_{crop}_scene{mode}"
    saved = cache / f"{name}{'_steps' + str(FIT['steps']) if FIT['steps'] else ''}.npz" if cache else None
    fit, fit_s, snapshots = fitted(fitting, saved)
    if FIT["extended"]:  # the photo's frame of the extended image
        kh, kw = kernel.shape
        frame = np.s_[kh - 1 - kh // 2:kh - 1 - kh // 2 + crop, kw - 1 - kw // 2:kw - 1 - kw // 2 + crop]
        fit, snapshots = fit[frame], {k: v[frame] for k, v in snapshots.items()}
    inside = np.s_[reach:-reach, reach:-reach]

    def scores(image: np.ndarray) -> dict:
        return {"whole": round(evaluate(clean, image, convention="paper", task="deblur")["psnr"], 4),
                "interior": round(evaluate(clean[inside], image[inside], convention="paper", task="deblur")["psnr"], 4)}

    refine_input(obs, photo.shape[:2], "grouped-deblur")  # the same checks as a restore
    sigma = floored_noise_sigma(photo)  # as refine_image measures it
    row = {"image": spec, "size": list(whole.shape[:2]), "crop": crop, "noise_seed": 0, "scene": True,
           **({"fit_data": "interior"} if FIT["interior"] else {"fit_data": "extended"} if FIT["extended"] else {}),
           **({"fit_device": FIT["device"]} if FIT["device"] != "cpu" else {}),
           **({"fit_steps": FIT["steps"]} if FIT["steps"] else {}),
           **({"fit_stop": FIT["stop"], "fit_stop_step": _stop_step(saved)} if FIT["stop"] else {}),
           **({"fit_lr_schedule": FIT["lr_schedule"]} if FIT["lr_schedule"] else {}),
           "fit_seconds": round(fit_s, 1), "sigma": round(sigma * 255, 3), "fit": scores(fit), "refined": {}}
    starts = {"fit": fit, **{str(k): v for k, v in snapshots.items() if k >= 1000}}
    for name, begin in starts.items():
        row["refined"][name] = {"fit": scores(begin)}
        for edges in EDGES:
            refiner = GroupedDeblur(edges=edges)
            t0 = time.perf_counter()
            image = refiner(begin, photo, obs[0].operator, sigma)
            row["refined"][name][edges] = {**scores(image), "seconds": round(time.perf_counter() - t0, 1),
                                           "solved": refiner.describe()["solved"]}
    return row


def _stop_step(saved: Path | None) -> int | None:
    """The step whose iterate a ``--stop`` fit returned (read back from its cache file)."""
    if saved is None or not saved.exists():
        return None
    z = np.load(saved)
    return int(z["stop_step"]) if "stop_step" in z.files else None


def scene_table(rows: list[dict]) -> str:
    """``--scene``'s rows as a markdown table: for each start (the fit, its images at 1000 and
    2000 steps), the start and ``grouped-deblur`` with each data step, whole crop / interior."""
    from linr.deconvolution import EDGES

    starts = [k for k in ("fit", "1000", "2000") if all(k in r["refined"] for r in rows)]
    head = ["image", "crop"] + [f"{'fit' if k == 'fit' else 'fit at ' + k + ' steps'}{'' if e == 'fit' else ', ' + e + ' edges'}"
                                for k in starts for e in ("fit", *EDGES)]
    out = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    cells = {r["image"]: [r["refined"][k][e] for k in starts for e in ("fit", *EDGES)] for r in rows}
    for r in rows:
        out.append(f"| {r['image']} | {r['crop']} | "
                   + " | ".join(f"{c['whole']:.2f} / {c['interior']:.2f}" for c in cells[r["image"]]) + " |")
    if rows:
        columns = list(zip(*cells.values()))
        out.append(f"| mean ({len(rows)}) | | " + " | ".join(
            f"{np.mean([c['whole'] for c in col]):.2f} / {np.mean([c['interior'] for c in col]):.2f}" for col in columns) + " |")
    return "\n".join(out)


def table(rows: list[dict]) -> str:
    """The rows as BENCHMARKS.md's table (paper convention): Wiener, the fit, the default
    refinement from the fit and from Wiener, the other schedules from the fit, the default
    refinement of the fit's image at 1000 and 2000 steps."""
    extra = sorted({k for r in rows for k in r.get("schedules", {}) if k != _default_key(r)},
                   key=lambda k: tuple(float(v) for v in k.split(":")))
    steps = sorted({int(k) for r in rows for k in r.get("earlier", {}) if int(k) >= 1000})
    out = ["| image | size | Wiener | fit (the default, 4000 steps) | grouped-deblur from the fit (the default) | "
           "difference to the fit | the same from Wiener | "
           + "".join(f"{k} from the fit | " for k in extra)
           + "".join(f"fit at {n} steps, refined | " for n in steps) + "seconds (wall, one thread): fit, refinement |",
           "|---|---|" + "---:|" * (5 + len(extra) + len(steps)) + "---|"]

    def cells(r: dict) -> list[float | None]:
        schedules = r.get("schedules", {})
        values = [r["wiener"]["paper"], r["fit"]["paper"], r["grouped-deblur"]["paper"],
                  r["grouped-deblur"]["paper"] - r["fit"]["paper"], schedules[_default_key(r)]["wiener"]["paper"]]
        values += [schedules[k]["fit"]["paper"] if k in schedules else None for k in extra]
        values += [r["earlier"][str(n)]["grouped-deblur"]["paper"] if str(n) in r.get("earlier", {}) else None
                   for n in steps]
        return values

    def show(values: list[float | None]) -> str:
        return " | ".join("-" if v is None else (f"{v:+.2f}" if i == 3 else f"{v:.2f}") for i, v in enumerate(values))

    for r in rows:
        out.append(f"| {r['image']} | {r['size'][0]}x{r['size'][1]} | {show(cells(r))} | "
                   f"{r['fit_seconds']:.0f}, {r['grouped-deblur']['seconds']:.0f} |")
    if rows:
        columns = list(zip(*(cells(r) for r in rows)))
        means = [None if any(v is None for v in c) else float(np.mean(c)) for c in columns]
        out.append(f"| mean ({len(rows)}) | | {show(means)} | |")
    return "\n".join(out)


def _default_key(row: dict) -> str:
    report = row["grouped-deblur"]["report"]
    return f"{report['passes']}:{report['sigmas'][0]:g}:{report['sigmas'][1]:g}"


def from_wiener(spec: str, crop: int | None, data: Path, cache: Path | None) -> dict:
    """``--from-wiener``'s row: no fit, the default refinement started from Wiener deconvolution
    (what the refinement makes without the fit, where the fit is too long to run)."""
    from linr.baselines.classical import wiener_deblur
    from linr.kinds import blurred
    from linr.metrics import evaluate
    from linr.refine import refine_image

    clean, photo, kernel, _ = scene(spec, crop, data)
    wiener = wiener_deblur(photo, kernel).image
    t0 = time.perf_counter()
    refined, done = refine_image("grouped-deblur", wiener, [blurred(photo, kernel, boundary="circular")])
    scores = lambda image: {"paper": round(evaluate(clean, image, convention="paper", task="deblur")["psnr"], 4),
                            "standard": round(evaluate(clean, image, convention="standard")["psnr"], 4)}
    return {"image": spec, "size": list(clean.shape[:2]), "crop": crop, "noise_seed": 0, "wiener": scores(wiener),
            "grouped-deblur from wiener": {**scores(refined), "seconds": round(time.perf_counter() - t0, 1),
                                           "report": done}}


def wiener_table(rows: list[dict]) -> str:
    out = ["| image | size | Wiener | grouped-deblur from Wiener (no fit) |", "|---|---|---:|---:|"]
    out += [f"| {r['image']} | {r['size'][0]}x{r['size'][1]} | {r['wiener']['paper']:.2f} | "
            f"{r['grouped-deblur from wiener']['paper']:.2f} |" for r in rows]
    if rows:
        out.append(f"| mean ({len(rows)}) | | {np.mean([r['wiener']['paper'] for r in rows]):.2f} | "
                   f"{np.mean([r['grouped-deblur from wiener']['paper'] for r in rows]):.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from linr.bench.common import refine_probe_main

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--scene" in argv:  # a crop of a blurred scene: the data step's edges
        argv.remove("--scene")
        for mode in ("interior", "extended"):
            if f"--{mode}" in argv:
                argv.remove(f"--{mode}")
                FIT[mode] = True
        if FIT["interior"] and FIT["extended"]:
            raise SystemExit("--interior and --extended do not go together")
        run_fn, table_fn = run_scene, scene_table
    elif "--stop" in argv or "--lr-schedule" in argv:
        raise SystemExit("--stop and --lr-schedule go with --scene")
    else:
        run_fn, table_fn = run, table
    if "--from-wiener" in argv and run_fn is run_scene:
        raise SystemExit("--from-wiener and --scene do not go together")
    if "--from-wiener" in argv:  # no fit: the refinement from Wiener deconvolution alone
        argv.remove("--from-wiener")
        return refine_probe_main(argv, __doc__, "FOLDER/NAME of the shared data", from_wiener, wiener_table)
    for option, cast in (("--device", str), ("--steps", int), ("--stop", str), ("--lr-schedule", str)):
        if option in argv:
            at = argv.index(option)
            FIT[option[2:].replace("-", "_")] = cast(argv[at + 1])
            del argv[at:at + 2]
    while "--schedule" in argv:
        at = argv.index("--schedule")
        passes, start, end = argv[at + 1].split(":")
        SCHEDULES.append((int(passes), float(start), float(end)))
        del argv[at:at + 2]
    return refine_probe_main(argv, __doc__, "FOLDER/NAME of the shared data (set9/house, deblur/parrots)", run_fn, table_fn)


if __name__ == "__main__":
    sys.exit(main())
