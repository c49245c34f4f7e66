"""Run the paper's tables: corrupt (seeded), restore with every method, measure, write rows.

Every fit is a *job* identified by everything that determines its result (image and crop,
corruption and seeds, method, model, steps, profile settings). A job runs once per bench run and
is shared by every table that needs it (the joint-vs-single tables reuse the single-task and
joint fits); finished jobs are appended to ``jobs.jsonl`` at once, so an interrupted run resumes
where it stopped. Rows (one per table, image and method) go to ``results.jsonl`` as they are made.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from .common import centre_crop, commit_id, corruption_seed, cpu_name, restore_seconds
from .spec import LINR_DEFAULT, Corruption, Method, Profile, Table

__all__ = ["Scene", "BenchRun", "ROW_FIELDS", "find_real_pairs"]

ROW_FIELDS = (
    "table", "table_number", "image", "method", "method_kind", "profile", "device", "threads",
    "seed", "corruption", "corruption_seeds", "image_size", "crop", "steps", "stop_step", "fit_s",
    "total_s", "made_on", "psnr_standard", "ssim_standard", "psnr_paper", "ssim_paper", "psnr_y_standard",
    "peak_psnr", "peak_step",
    "paper_psnr", "paper_ssim", "diff_psnr", "job", "first_table", "resumed", "image_path",
    "status", "note",
)
"""Keys of every row; metrics are None where a method did not run (status says why)."""

LINR_KINDS = ("linr", "linr_default", "linr_fast")
ITERATIVE = LINR_KINDS + ("dip", "dip_recipe")


def find_real_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """``(name, real, mean)`` for every ``NAME_real.*`` with a ``NAME_mean.*`` in ``folder`` or
    ``folder/polyu``."""
    pairs = []
    for d in (folder, folder / "polyu", folder / "PolyU"):
        if not d.is_dir():
            continue
        for real in sorted(d.glob("*_real.*")):
            name = real.name[: real.name.rindex("_real.")]
            means = sorted(d.glob(f"{name}_mean.*"))
            if means:
                pairs.append((name, real, means[0]))
    return pairs


@dataclass
class Scene:
    """A clean image, cropped as the profile and table say, with its observations."""

    name: str
    source: str
    clean: np.ndarray
    """(H, W, 3) float32 on [0, 1]."""
    crop: str
    """How the clean image was cut from the file, for the report."""
    real: np.ndarray | None = None
    """The measured noisy photo (Table 14 only), cropped like ``clean``."""








def _with_last_iterate(result: Any, clean: np.ndarray) -> tuple[list[float] | None, list[int] | None]:
    """A fit's PSNR curve (``history['psnr']``: entry ``i`` the output step ``i + 1`` started from, so
    after ``i`` updates; ``psnr_step`` the update counts where not every step was measured) with,
    where a fixed budget returned its last iterate, that iterate's PSNR (after all the updates: the
    curve had stopped one update short, and its peak could lie under the image returned, as a
    researcher's trial found: 20.71 against 21.04 dB)."""
    curve, steps = result.history.get("psnr"), result.history.get("psnr_step")
    last_iterate = (result.settings.get("stop") or {}).get("name") == "fixed" and "tiling" not in result.settings
    if not curve or not last_iterate:
        return curve, steps
    from ..metrics import psnr

    fitted = result.image if result.fitted_image is None else result.fitted_image
    value = psnr(np.asarray(clean, np.float64), np.asarray(fitted, np.float64))  # RGB, unclipped, as the curve's
    return list(curve) + [value], None if steps is None else list(steps) + [result.steps_run]


def _peak(curve: list[float] | None, steps: list[int] | None = None) -> dict[str, Any]:
    """Best PSNR of a per-step curve and the step it came at (an oracle: it needs the clean image).

    ``curve[i]`` is the PSNR (RGB, unclipped) of the output after ``steps[i]`` updates (``i`` when
    ``steps`` is None: a curve of every step); steps count from 1 as in the plots and the stop
    rules' lines: step ``k`` is the output step ``k`` started from, after ``k - 1`` updates (a fixed
    budget's last iterate, :func:`_with_last_iterate`, is step ``N + 1``).
    """
    if not curve:
        return {"peak_psnr": None, "peak_step": None}
    i = int(np.nanargmax(curve))
    return {"peak_psnr": float(curve[i]), "peak_step": (steps[i] if steps else i) + 1}




def _minutes(seconds: float) -> str:
    """A duration for a progress line: '40 s', '12 min', '2 h 05 min'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _read_jobs(path: Path) -> list[dict[str, Any]]:
    """The finished fits recorded in ``path`` (one JSON object with a ``key`` per line; a line cut
    short by a crash is skipped); an InputError for a file that is not one, such as a results.jsonl
    or a CSV, before anything is appended to it."""
    from ..errors import InputError

    jobs, unreadable = [], 0
    for line in path.read_text().splitlines():
        try:
            job = json.loads(line)
        except json.JSONDecodeError:
            unreadable += 1  # a line cut short by a crash
            continue
        if not isinstance(job, dict) or "key" not in job:
            raise InputError(f"{path}: not a file of finished fits (a line without a job 'key'; "
                             "results.jsonl rows are not jobs): give another --jobs file")
        jobs.append(job)
    if unreadable and not jobs:
        raise InputError(f"{path}: not a file of finished fits (no line is a JSON job record): give another --jobs file")
    return jobs


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class BenchRun:
    """One bench run over some tables, writing under ``out``.

    ``log`` receives a progress line before each fit (its place in the table, time spent and
    an estimate of the time left) and one line per finished job. ``resume`` reuses jobs recorded in
    ``out/jobs.jsonl`` by an earlier run with the same settings.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        data: Path,
        out: Path,
        device: str = "auto",
        methods: list[str] | None = None,
        exclude: list[str] | None = None,
        resume: bool = True,
        plots: bool = True,
        log: Callable[[str], None] = print,
        command: str = "",
        jobs: Path | None = None,
    ):
        from ..fit import resolve_device
        import torch

        self.profile = profile
        self.data = Path(data)
        self.out = Path(out)
        self.device = str(resolve_device(device))
        self.methods = [m.lower() for m in methods] if methods else None
        self.exclude = {m.lower() for m in exclude} if exclude else set()
        self.plots = plots
        self.log = log
        self.command = command
        self.threads = torch.get_num_threads()
        self.paper = json.loads((self.data / "paper_results.json").read_text())["tables"] \
            if (self.data / "paper_results.json").exists() else {}
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "images").mkdir(exist_ok=True)
        # Finished fits: OUT/jobs.jsonl, or a file of their own (e.g. one committed to the
        # repository, so that a later run on another machine resumes instead of refitting).
        self.jobs_path = Path(jobs) if jobs is not None else self.out / "jobs.jsonl"
        self.jobs_path.parent.mkdir(parents=True, exist_ok=True)
        self.provenance = {"commit": commit_id(), "processor": cpu_name(), "device": self.device,
                           "threads": torch.get_num_threads(), "torch": torch.__version__}
        self.rows_path = self.out / "results.jsonl"
        self.jobs: dict[str, dict[str, Any]] = {}
        self.resumed: set[str] = set()
        # read where they are resumed or appended to (an explicit --jobs file, kept with --fresh); the
        # default OUT/jobs.jsonl that --fresh removes is not read
        finished = _read_jobs(self.jobs_path) if self.jobs_path.exists() and (resume or jobs is not None) else []
        if resume:
            for job in finished:
                self.jobs[job["key"]] = job
                self.resumed.add(job["key"])
        elif self.jobs_path.exists() and jobs is None:
            self.jobs_path.unlink()  # --fresh with an explicit --jobs file: ignored, kept, appended to
        self.rows_path.write_text("")
        self.rows: list[dict[str, Any]] = []
        self.skipped: list[str] = []
        self.fit_seconds: dict[str, list[float]] = {}
        """Wall seconds of this run's fits per method label (progress estimates)."""
        self.started = _now()

    # --- scenes and observations ---------------------------------------------------------------

    def _wanted(self, path: str) -> bool:
        subset = self.profile.images
        if subset is None:
            return True
        name = Path(path).stem
        if "*" in subset:
            return name in subset["*"]
        folder = path.split("/")[0]
        return folder not in subset or name in subset[folder]

    def scenes(self, table: Table) -> list[Scene]:
        from ..images import read_image
        from ..simulate import crop_to_multiple

        if table.number == 14:
            return self._real_scenes(table)
        paths = [p for p in table.images if self._wanted(p)]
        if table.number == 11 and self.profile.ablation_images is not None:
            paths = [p for p in table.images if Path(p).stem in self.profile.ablation_images]
        scenes = []
        for rel in paths:
            path = self.data / rel
            if not path.exists():
                self.skipped.append(f"Table {table.number}: {rel} not found under {self.data}")
                continue
            image = read_image(path)[0]
            h, w = image.shape[:2]
            clean, (top, left) = centre_crop(image, self.profile.crop)
            cropped = crop_to_multiple(clean, table.multiple)
            top += (clean.shape[0] - cropped.shape[0]) // 2
            left += (clean.shape[1] - cropped.shape[1]) // 2
            ch, cw = cropped.shape[:2]
            how = "full" if (ch, cw) == (h, w) else f"centre {ch}x{cw} at ({top}, {left}) of {h}x{w}"
            scenes.append(Scene(Path(rel).stem, rel, np.ascontiguousarray(cropped), how))
        return scenes

    def _real_scenes(self, table: Table) -> list[Scene]:
        from ..images import read_image

        pairs = find_real_pairs(self.data)
        if not pairs:
            self.skipped.append(f"Table 14: no *_real / *_mean pairs in {self.data} (real-noise "
                                "data such as PolyU is not shipped; point --data at a folder of pairs)")
        scenes = []
        for name, real_path, mean_path in pairs:
            real, mean = read_image(real_path)[0], read_image(mean_path)[0]
            if real.shape != mean.shape:
                raise InputError(f"{real_path} and {mean_path} differ in size")
            clean, _ = centre_crop(mean, self.profile.crop)
            noisy, _ = centre_crop(real, self.profile.crop)
            h, w = mean.shape[:2]
            how = "full" if clean.shape[:2] == (h, w) else f"centre {clean.shape[0]}x{clean.shape[1]} of {h}x{w}"
            scenes.append(Scene(name, str(real_path), np.ascontiguousarray(clean), how,
                                np.ascontiguousarray(noisy)))
        return scenes

    def corrupt(self, scene: Scene, corruption: Corruption) -> tuple[dict[str, Any], dict[str, int]]:
        """The observed arrays of ``scene`` (seeded per image and kind) and the seeds used."""
        from ..kinds import KINDS

        base = self.profile.seed
        arrays: dict[str, Any] = {}
        seeds: dict[str, int] = {}
        for kind in corruption.kinds:
            if kind == "real":  # the measured noisy photo (Table 14)
                arrays[kind] = scene.real
                continue
            if kind not in KINDS or KINDS[kind].simulation is None:
                raise ValueError(f"unknown corruption kind {kind!r}")
            simulation = KINDS[kind].simulation
            seed = None
            if simulation.seeded:
                seed = seeds[kind] = corruption_seed(base, kind, scene.name)
            made = simulation.make(scene.clean, corruption.params, seed)
            arrays[kind] = made.pop("image")
            arrays.update(made)  # the mask, the kernel
        return arrays, seeds

    @staticmethod
    def observations(arrays: dict[str, Any], corruption: Corruption) -> list[Any]:
        from ..kinds import KINDS

        obs = []
        for kind in corruption.kinds:
            if kind == "real":  # a measured noisy photo is a noisy observation
                obs.append(KINDS["noisy"].simulation.observe(arrays, arrays[kind], corruption.params))
            else:
                obs.append(KINDS[kind].simulation.observe(arrays, arrays[kind], corruption.params))
        return obs

    # --- jobs ----------------------------------------------------------------------------------

    def _linr_options(self, method: Method, corruption: Corruption) -> dict[str, Any]:
        """:func:`linr.tasks.restore` options of a LINR column."""
        from ..models import ModelConfig

        if method.kind == "linr":  # the paper's settings and the profile's step count
            return dict(preset="paper", stop="fixed", steps=self.profile.steps[corruption.task],
                        model=ModelConfig(name=method.model))
        # linr as a user runs it: no preset (the defaults) or `fast`, with their own stop rule
        options: dict[str, Any] = dict(preset=None if method.kind == "linr_default" else "fast")
        if method.variant:  # a variant of the defaults (linr bench --variants): its own settings
            from .common import restore_options

            options.update(restore_options(method.variant))
        if self.profile.budget is not None:  # a smoke run: its step budget wins (as in linr bench denoise),
            options.update(steps=self.profile.budget)  # the stop rule kept: a variant's, else the automatic one
            options.setdefault("stop", "auto")
        return options

    def _linr_settings(self, method: Method, arrays: dict[str, Any], corruption: Corruption) -> Any:
        """The fit settings, stop rule, tiles and refinement :func:`linr.tasks.restore` resolves for
        a LINR column (:func:`linr.tasks.plan_restore`; the stop rule as the fit runs it, such as the
        SURE pick of a small noisy photo), and the route its photos take (:mod:`linr.stabilise`)."""
        from .. import tasks

        options = self._linr_options(method, corruption)
        plan = tasks.plan_restore(self.observations(arrays, corruption), seed=self.profile.fits_seed,
                                  device=self.device, progress=False, **options)
        return plan.config, plan.rule, plan.grid, plan.refine, plan.route, plan

    def job_key(self, scene: Scene, corruption: Corruption, method: Method, seeds: dict[str, int],
                arrays: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything that determines a job's result (and nothing that does not)."""
        from ..models import ModelConfig

        key: dict[str, Any] = {
            "source": scene.source, "crop": scene.crop, "corruption": dataclasses.asdict(corruption),
            "seeds": seeds, "kind": method.kind, "profile_seed": self.profile.seed,
            **({} if self.profile.fit_seed is None else {"fit_seed": self.profile.fit_seed}),
        }
        if method.kind in LINR_KINDS:
            # Keyed on the resolved fit settings and stop rule, not the column: the paper preset,
            # the defaults and `fast` share one fit wherever they resolve to the same one
            # (the defaults' fits that nothing refines), and the paper column keeps its earlier keys.
            from ..errors import InputError

            try:
                config, stop, grid, refine, route, plan = self._linr_settings(method, arrays, corruption)
            except InputError as exc:  # a variant this table's observations cannot take: skipped, said why
                if not method.variant:
                    raise
                key.update(variant=method.variant, not_applicable=str(exc))
                return key
            if grid is None and refine is None and (method.kind == "linr" or (
                    stop is None and config.model == ModelConfig() and config.lr == 1e-4
                    and config.precision == "float32" and config.schedule == "constant"
                    and config.batch_pixels is None and config.prior is None)):
                key.update(kind="linr", model=method.model if method.kind == "linr" else "siren",
                           steps=config.steps)
                if config.model.name == "relu_pe":  # its octaves (set from the image since the
                    # thirty-seventh session; 10 before, whose rows carry no such field)
                    from ..problem import clean_shape

                    shape = clean_shape(self.observations(arrays, corruption))
                    key.update(pe_frequencies=config.model.for_image(*shape).pe_frequencies)
            else:
                key.update(fit={f: v for f, v in dataclasses.asdict(config).items()
                                if f not in ("progress", "device", "eval_every")
                                and not (f == "retry_lr" and v is None)},  # keys from before it
                           stop=None if stop is None else stop.describe())
                from ..stopping import SurePick

                if isinstance(stop, SurePick):  # what the pick does after the fit (since the forty-third session)
                    from ..sure import pick_settings

                    key.update(sure=pick_settings())
                if grid is not None:  # the defaults restore large images in tiles
                    key.update(tiles=grid.describe())
                if refine is not None:  # the defaults refine a noisy or masked photo after the fit
                    key.update(refine=refine)
            if route is not None and route.record_key == "clipping":  # since the fifty-fifth session
                key.update(clipping=route.describe())
            # a blurred photo fitted on another scale than its own (since the sixty-sixth session: a photo
            # of point sources; the sixty-seventh: a defect its maximum) or with defects left out (the
            # sixty-seventh): rows from before, of photos with neither, keep their keys
            if plan.headroom != 1.0:
                key.update(headroom=plan.headroom, saturated_left_out=plan.saturated)
            if plan.defects.count:
                key.update(defects=plan.defects.count, defect_scale=plan.defect_scale)
            if self.profile.eval_every != 1:
                key.update(eval_every=self.profile.eval_every)
        elif method.kind in ("dip", "dip_recipe"):
            key.update(dip=dataclasses.asdict(self._dip_config(method.kind, corruption)))
        if method.kind in LINR_KINDS + ("dip", "dip_recipe") and method.kind != "linr":
            # the defaults, `fast` and DIP fit a blur by its own boundary rule since the simulation says
            # it (circular); before, by the reflecting one: those fits are not these (the paper
            # column's always was circular)
            boundaries = [getattr(o.operator, "boundary", None) for o in self.observations(arrays, corruption)]
            if any(boundaries):
                key.update(blur_boundary=boundaries)
        return key

    def _dip_config(self, kind: str, corruption: Corruption) -> Any:
        from ..baselines.dip import DIPConfig

        task = corruption.task
        recipe = self.profile.dip_recipe.get("denoise" if task in ("denoise", "real") else "sr"
                                             if task == "sr" else task)
        noisy_task = task in ("denoise", "real") or "noisy" in corruption.kinds
        reg_noise = 1.0 / 30.0 if noisy_task else 0.03
        average = 0.99 if noisy_task else None
        steps = (self.profile.dip_steps or self.profile.steps)[task]
        if kind == "dip_recipe":
            if recipe is None:
                raise ValueError(f"no DIP recipe for task {task!r} in profile {self.profile.name!r}")
            steps, reg_noise, average = recipe.steps, recipe.reg_noise_std, recipe.average
        return DIPConfig(steps=steps, reg_noise_std=reg_noise, average=average,
                         channels=self.profile.dip_channels, seed=self.profile.fits_seed,
                         device=self.device)

    def run_job(self, scene: Scene, arrays: dict[str, Any], corruption: Corruption,
                method: Method, task: str | None) -> dict[str, Any]:
        """Restore with one method and measure it; returns the job record (without its key)."""
        from ..baselines import classical
        from .. import tasks

        record: dict[str, Any] = {"steps": None, "stop_step": None, "curve": None, "settings": {}}
        kinds = corruption.kinds
        k = method.kind
        if k in LINR_KINDS:
            options = self._linr_options(method, corruption)
            result = tasks.restore(
                self.observations(arrays, corruption), seed=self.profile.fits_seed, device=self.device,
                reference=scene.clean, progress=False, eval_every=self.profile.eval_every, threads=None, **options,
            )
            image, fit_s = result.image, result.timings["fit_s"]
            record["total_s"] = result.timings.get("total_s")  # the refinement after the fit too
            curve, curve_steps = _with_last_iterate(result, scene.clean)
            record.update(steps=result.steps_run, stop_step=result.stop_step,
                          curve=curve, curve_steps=curve_steps,
                          settings={"lr": result.settings["lr"], "model": result.settings["model"],
                                    "preset": result.settings.get("preset"),
                                    "stop_reason": result.stop_reason,
                                    "stop": (result.settings.get("stop") or {}).get("name")
                                    if isinstance(result.settings.get("stop"), dict) else result.settings.get("stop"),
                                    "engine": result.settings.get("engine_used"),
                                    "tiling": result.settings.get("tiling"),
                                    "retried": sum(r is not None for r in tasks.retry_records(result.settings)),
                                    "weights": [o["weight"] for o in result.settings["observations"]],
                                    "refine": result.settings.get("refine")})
        elif k in ("dip", "dip_recipe"):
            from ..baselines.dip import dip_restore

            config = self._dip_config(k, corruption)
            obs, _ = tasks.resolve(self.observations(arrays, corruption))  # joint weights
            res = dip_restore(obs, config, reference=scene.clean)
            image, fit_s = res.image, res.fit_s
            record.update(steps=res.steps_run, stop_step=res.steps_run, curve=res.history.get("psnr"),
                          settings={k2: v for k2, v in res.settings.items() if k2 != "device"})
        elif k == "input":
            image, fit_s = arrays[kinds[0]], 0.0
        else:
            res = self._classical(k, arrays, corruption, classical)
            image, fit_s = res.image, res.fit_s
            record["settings"] = res.settings
        record.update(fit_s=fit_s, **self._measure(scene.clean, image, corruption, task))
        record["image"] = image
        return record

    @staticmethod
    def _classical(kind: str, arrays: dict[str, Any], c: Corruption, classical: Any) -> Any:
        if kind in ("bicubic", "nearest"):
            return classical.upscale(arrays["lowres"], c.factor, method=kind)
        if kind in ("tv", "nlm", "bm3d"):
            fn = {"tv": classical.tv_denoise, "nlm": classical.nlm_denoise, "bm3d": classical.bm3d_denoise}
            if c.kinds == ("real",):
                # Real camera noise has no known level: estimated from the photo itself (wavelet
                # median absolute deviation, as scikit-image's estimate_sigma), and recorded.
                from ..noise import estimate_noise_sigma

                sigma = estimate_noise_sigma(arrays["real"]) * 255.0
                result = fn[kind](arrays["real"], sigma=sigma)
                result.settings["sigma_estimated"] = round(sigma, 3)
                return result
            return fn[kind](arrays["noisy"], sigma=c.sigma)
        if kind == "biharmonic":
            return classical.biharmonic_inpaint(arrays["masked"], arrays["mask"])
        if kind == "wiener":
            return classical.wiener_deblur(arrays["blurred"], arrays["kernel"])
        if kind == "rl":
            return classical.richardson_lucy_deblur(arrays["blurred"], arrays["kernel"])
        raise ValueError(f"unknown method kind {kind!r}")

    @staticmethod
    def _measure(clean: np.ndarray, image: np.ndarray, c: Corruption, task: str | None) -> dict[str, Any]:
        from ..metrics import evaluate, psnr

        std = evaluate(clean, image, convention="standard")
        pap = evaluate(clean, image, convention="paper", task=task)
        out = {"psnr_standard": std["psnr"], "ssim_standard": std["ssim"],
               "psnr_paper": pap["psnr"], "ssim_paper": pap["ssim"], "psnr_y_standard": None}
        if c.kinds == ("lowres",) and min(clean.shape[:2]) > 2 * c.factor + 1:
            # Super-resolution papers' usual metric: Y channel, border of `factor` pixels cut.
            out["psnr_y_standard"] = psnr(clean, np.clip(image, 0.0, 1.0), y_channel=True, crop=c.factor)
        return out

    def _keyed(self, table: Table, scene: Scene, method: Method) -> tuple[dict[str, Any], dict[str, int],
                                                                          dict[str, Any], str]:
        """The observations, seeds, job spec and job key of (scene, method) in ``table``."""
        corruption = method.corruption or table.corruption
        arrays, seeds = self.corrupt(scene, corruption)
        spec = self.job_key(scene, corruption, method, seeds, arrays)
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        return arrays, seeds, spec, key

    def job(self, table: Table, scene: Scene, method: Method) -> tuple[dict[str, Any], bool]:
        """The job for (scene, method) in ``table``: from this run's cache, an earlier run's
        ``jobs.jsonl``, or run now. Returns (job, fresh)."""
        from ..baselines import BaselineUnavailable
        from ..errors import InputError
        from ..images import write_image

        corruption = method.corruption or table.corruption
        arrays, seeds, spec, key = self._keyed(table, scene, method)
        if key in self.jobs:
            return self.jobs[key], False
        job: dict[str, Any] = {"key": key, "spec": spec, "first_table": table.number,
                               "seeds": seeds, "started": _now(), **self.provenance}
        try:
            record = self.run_job(scene, arrays, corruption, method, table.metric_task)
        except BaselineUnavailable as exc:
            job.update(status="skipped", note=str(exc))
        except InputError as exc:  # a variant of the defaults that this table's observations cannot take
            if not method.variant:
                raise
            job.update(status="skipped", note=f"not applicable: {exc}")
        else:
            image = record.pop("image")
            slug = f"{scene.name}_{method.kind}{'' if method.model == 'siren' else '_' + method.model}_{key[:8]}"
            path = self.out / "images" / f"{slug}.png"
            write_image(path, np.clip(image, 0.0, 1.0), force=True)
            job.update(record, status="ok", image_path=str(path.relative_to(self.out)))
            self._save_inputs(scene, arrays)
        with open(self.jobs_path, "a") as f:  # one line per finished job: a crash loses nothing else
            f.write(json.dumps(job) + "\n")
        self.jobs[key] = job
        return job, True

    def _save_inputs(self, scene: Scene, arrays: dict[str, Any]) -> None:
        """Each input as fitted, named by its own size: a float32 TIFF of its values as they are
        (unclipped, unrounded: ``linr restore --range 0:1`` maps it as the bench did) and an 8-bit
        PNG to look at. A researcher restoring the PNG got 29.78 dB where the bench had 29.59."""
        import tifffile

        from ..images import write_image
        from ..kinds import KINDS

        for kind in (*KINDS, "real"):
            if kind in arrays and arrays[kind] is not None:
                values = np.asarray(arrays[kind])
                stem = self.out / "images" / "inputs" / f"{scene.name}_{kind}_{values.shape[1]}x{values.shape[0]}"
                if not stem.with_suffix(".tif").exists():
                    stem.parent.mkdir(parents=True, exist_ok=True)
                    write_image(stem.with_suffix(".png"), np.clip(values, 0.0, 1.0), force=True)
                    tifffile.imwrite(stem.with_suffix(".tif"), values.astype(np.float32),
                                     photometric="rgb" if values.ndim == 3 and values.shape[2] == 3 else "minisblack")

    def wants(self, method: Method) -> bool:
        """Whether ``method``'s column runs: named by ``methods`` (label or kind; a variant of the
        defaults also when its ``LINR (default)`` column is) and not by ``exclude`` (nor, for a
        variant, its ``LINR (default)`` column)."""
        names = {method.label.lower(), method.kind} | ({LINR_DEFAULT.label.lower()} if method.variant else set())
        if method.label.lower() in self.exclude or method.kind in self.exclude or (
                method.variant and LINR_DEFAULT.label.lower() in self.exclude):  # nothing to compare with
            return False
        return self.methods is None or bool(names & set(self.methods))

    def run_table(self, table: Table) -> list[dict[str, Any]]:
        """Run every (image, method) of ``table``; rows are appended to results.jsonl as made."""
        rows = []
        paper = self.paper.get(table.key, {}).get("images", {})
        pairs = [(scene, method) for scene in self.scenes(table) for method in table.methods
                 if self.wants(method)]
        # Which pairs need a fit (not in jobs.jsonl, nor shared with an earlier pair), for the
        # progress lines: 'fitting (3/25 of this table, ...)'.
        keys = [self._keyed(table, scene, method)[3] for scene, method in pairs]
        to_fit = [i for i, key in enumerate(keys) if key not in self.jobs and key not in keys[:i]
                  and pairs[i][1].kind != "input"]  # the corrupted input itself: nothing to fit
        started = time.perf_counter()
        for i, (scene, method) in enumerate(pairs):
            if i in to_fit:
                self._announce(table, pairs, to_fit, i, started)
            t0 = time.perf_counter()
            job, fresh = self.job(table, scene, method)
            if fresh:
                self.fit_seconds.setdefault(method.label, []).append(time.perf_counter() - t0)
            row = self._row(table, scene, method, job, paper.get(scene.name, {}).get(method.label, {}))
            if fresh:
                self.log(f"{_now()[11:19]} table {table.number:>2} {scene.name:<10} {method.label:<14} "
                         + (f"PSNR {row['psnr_paper']:6.2f} (paper conv.) {row['fit_s']:7.1f} s"
                            if row["status"] == "ok" else f"skipped: {row['note']}"))
            with open(self.rows_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
        self.rows.extend(rows)
        return rows

    def _announce(self, table: Table, pairs: list[tuple[Scene, Method]], to_fit: list[int], i: int,
                  started: float) -> None:
        """Log the fit about to start: its place among this table's fits, time spent on the table,
        and the time left, estimated from the fits finished so far in this run (per method where
        that method has finished fits, else their overall mean)."""
        scene, method = pairs[i]
        n = to_fit.index(i) + 1
        what = f"{n}/{len(to_fit)} of this table"
        elapsed = time.perf_counter() - started
        if n > 1:
            what += f", {_minutes(elapsed)} elapsed"
        finished = [t for times in self.fit_seconds.values() for t in times]
        if finished:
            mean = sum(finished) / len(finished)

            def estimate(label: str) -> float:
                times = self.fit_seconds.get(label)
                return sum(times) / len(times) if times else mean

            left = sum(estimate(pairs[j][1].label) for j in to_fit[n - 1:])
            what += f", ~{_minutes(left)} left"
        self.log(f"{_now()[11:19]} table {table.number} {scene.name} {method.label}: fitting ({what})")

    def _row(self, table: Table, scene: Scene, method: Method, job: dict[str, Any],
             paper: dict[str, float]) -> dict[str, Any]:
        corruption = method.corruption or table.corruption
        ok = job.get("status") == "ok"
        row = {
            "table": table.key, "table_number": table.number, "image": scene.name,
            "method": method.label, "method_kind": method.kind if method.model == "siren"
            else f"{method.kind}:{method.model}",
            "profile": self.profile.name, "device": self.device, "threads": self.threads,
            "seed": self.profile.fits_seed, "corruption": corruption.describe(),
            "corruption_seeds": job.get("seeds", {}), "image_size": list(scene.clean.shape[:2]),
            "crop": scene.crop, "steps": job.get("steps"), "stop_step": job.get("stop_step"),
            "fit_s": job.get("fit_s"), "total_s": job.get("total_s"),
            "made_on": ", ".join(str(job.get(k)) for k in ("processor", "device", "threads", "torch")),
            **{m: job.get(m) for m in ("psnr_standard", "ssim_standard", "psnr_paper",
                                        "ssim_paper", "psnr_y_standard")},
            **_peak(job.get("curve"), job.get("curve_steps")),
            "paper_psnr": paper.get("psnr"), "paper_ssim": paper.get("ssim"),
            "diff_psnr": (job["psnr_paper"] - paper["psnr"]) if ok and "psnr" in paper else None,
            "job": job["key"], "first_table": job["first_table"],
            "resumed": job["key"] in self.resumed, "image_path": job.get("image_path"),
            "status": job.get("status"), "note": job.get("note", ""),
        }
        assert tuple(row) == ROW_FIELDS
        return row

    def curves(self, table: Table) -> dict[str, dict[str, Any]]:
        """Per image, per method label: the PSNR-per-step curve of iterative methods."""
        out: dict[str, dict[str, list[float]]] = {}
        for row in self.rows:
            if row["table"] != table.key:
                continue
            job = self.jobs[row["job"]]
            curve, steps = job.get("curve"), job.get("curve_steps")
            if curve:
                out.setdefault(row["image"], {})[row["method"]] = \
                    ([s + 1 for s in steps], curve) if steps else curve
        return out

    def machine(self) -> dict[str, Any]:
        import torch

        from .. import __version__

        used = [self.jobs[k] for k in {r["job"] for r in self.rows}]
        return {"platform": platform.platform(), "processor": cpu_name(),
                "cpus": os.cpu_count(), "threads": self.threads, "device": self.device,
                "torch": torch.__version__, "linr": __version__, "started": self.started,
                "finished": _now(),
                # Fits may come from earlier (resumed) runs: when they were made and what they cost.
                "first_fit": min((j["started"] for j in used), default=None),
                "last_fit": max((j["started"] for j in used), default=None),
                "fit_s_total": sum(j.get("fit_s") or 0.0 for j in used),
                "time_s_total": sum(restore_seconds(j) or 0.0 for j in used)}
