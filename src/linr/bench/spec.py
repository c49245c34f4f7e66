"""Declarative descriptions of the paper's tables and of the benchmark profiles.

A table is: which images, how each is corrupted (seeded), which methods run on it, and which
metric the paper printed. Methods that use a different corruption than the table's own (the
joint-vs-single tables 8-10) carry their own; identical (image, corruption, method, steps)
fits are run once per bench run and shared between tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

__all__ = [
    "Corruption",
    "Method",
    "Table",
    "DIPRecipe",
    "Profile",
    "PROFILES",
    "TABLES",
    "TASK_OF",
    "find_tables",
    "variant_label",
    "with_variants",
]

SIGMA = 25.0
"""Gaussian noise level of the paper's denoising experiments (0-255 scale)."""
KEEP = 0.1
"""Fraction of pixels the paper's random masks keep."""
BLUR = (25, 1.6)
"""Gaussian blur kernel of the deblurring table: width 25, sigma 1.6."""


@dataclass(frozen=True)
class Corruption:
    """How the observations are made from a clean image.

    ``kinds`` lists the observations of one scene: noisy, lowres, masked, blurred, real (a
    measured noisy photo); more than one kind is a joint fit.
    """

    kinds: tuple[str, ...]
    sigma: float = SIGMA
    factor: int = 4
    keep: float = KEEP

    @property
    def params(self) -> dict:
        """The settings each kind's simulation reads (:class:`linr.kinds.Simulation`)."""
        return {"sigma": self.sigma, "factor": self.factor, "keep": self.keep, "blur": BLUR}

    def describe(self) -> str:
        from ..kinds import KINDS

        return " + ".join("real noise" if kind == "real" else KINDS[kind].simulation.describe(self.params)
                          for kind in self.kinds)

    @property
    def task(self) -> str:
        """The step-budget class of the fit: denoise, sr, inpaint, deblur, real or joint."""
        if len(self.kinds) > 1:
            return "joint"
        return _tasks()[self.kinds[0]]


def _tasks() -> dict[str, str]:
    from ..kinds import KINDS  # light: no torch

    return {**{name: kind.task for name, kind in KINDS.items()}, "real": "real"}


TASK_OF = _tasks()
"""Step-budget class of each kind (the registry's task; 'real' is the measured noisy photo of
Table 14, a bench-only kind)."""


@dataclass(frozen=True)
class Method:
    """One column of a table.

    ``label`` is the paper's column name where the paper has one; ``kind`` is what runs: linr,
    dip, dip_recipe, bicubic, nearest, tv, nlm, bm3d, biharmonic, wiener, rl, input.
    """

    label: str
    kind: str
    corruption: Corruption | None = None
    """Overrides the table's corruption (joint-vs-single tables)."""
    model: str = "siren"
    """Image model of a linr fit (the activation ablation)."""
    variant: str = ""
    """Settings that change the defaults of a ``linr_default`` column, joined by commas (``linr bench
    --variants``; :func:`linr.bench.common.restore_options`), such as ``refine=none``."""


@dataclass(frozen=True)
class Table:
    """One of the paper's tables."""

    key: str
    """Key in paper_results.json."""
    number: int
    title: str
    images: tuple[str, ...]
    """Paths relative to the data folder; Table 14 finds its pairs at run time instead."""
    corruption: Corruption
    methods: tuple[Method, ...]
    multiple: int = 1
    """Clean images are centre-cropped to a multiple of this (the SR factor) before corrupting."""
    metric_task: str | None = None
    """'deblur' selects the paper's Y-channel PSNR in the paper convention."""
    ssim_printed: bool = True
    """False where the paper printed PSNR only."""


@dataclass(frozen=True)
class DIPRecipe:
    """Deep Image Prior's own settings for one task (its paper), beside the truncated budget."""

    steps: int
    reg_noise_std: float
    average: float | None


@dataclass(frozen=True)
class Profile:
    """A named set of sizes and budgets for the whole bench run."""

    name: str
    description: str
    crop: int | None
    """Side of the centre crop taken from every image (None: full images)."""
    steps: dict[str, int]
    """LINR steps per task: denoise, sr, inpaint, deblur, joint, real."""
    dip_recipe: dict[str, DIPRecipe]
    """DIP's own recipe per task (the 'DIP (recipe)' column); the 'DIP' column uses the same
    settings truncated to LINR's step budget, as the paper ran it."""
    dip_steps: dict[str, int] | None = None
    """Steps of the 'DIP' column per task (None: LINR's steps, the paper's truncated budget)."""
    dip_channels: int = 128
    images: dict[str, tuple[str, ...]] | None = None
    """Per data folder, the image names to run (None: every image of the table)."""
    ablation_images: tuple[str, ...] | None = None
    """Images of the activation ablation (None: the table's images after ``images``)."""
    seed: int = 0
    """The corruptions' seed base, and the fits' seed unless :attr:`fit_seed` is set."""
    fit_seed: int | None = None
    """The fits' seed where ``linr bench --seed`` sets it (their spread over seeds on the same inputs)."""
    budget: int | None = None
    """Smoke runs (``--steps``): the step budget of the default and ``fast`` columns too."""
    eval_every: int = 1
    """Steps between the oracle PSNR evaluations of a LINR fit where the fit would render the
    whole image only for them (observed-pixel training); dense fits are measured every step."""
    deviations: tuple[str, ...] = field(default_factory=tuple)
    """Every way this profile departs from the paper's protocol, for the report."""

    @property
    def fits_seed(self) -> int:
        """The seed every fit takes (:attr:`fit_seed`, else :attr:`seed`)."""
        return self.seed if self.fit_seed is None else self.fit_seed

    def with_overrides(self, *, crop: int | None = None, steps: int | None = None,
                       images: tuple[str, ...] | None = None) -> "Profile":
        """A copy with a smaller crop, one step count everywhere, or chosen images (smoke runs)."""
        p = self
        notes = list(p.deviations)

        def replacing(*said: str) -> None:  # the profile's own lines on what an option replaces
            notes[:] = [n for n in notes if not n.startswith(said)]

        if crop is not None:
            p = replace(p, crop=crop)
            replacing(CROP_SAID)
            notes.append(f"--crop {crop}: every image centre-cropped to {crop}x{crop} (the paper: full images; on a "
                         "crop the coordinate grid spans the crop, so it fits, and overfits noise, in fewer steps)")
        if steps is not None:
            p = replace(p, steps={k: steps for k in p.steps}, dip_steps=None, budget=steps,
                        dip_recipe={k: replace(r, steps=steps) for k, r in p.dip_recipe.items()})
            replacing(*STEPS_SAID)
            notes.append(f"--steps {steps}: every iterative method runs {steps} steps (the paper: 500; 4000 for "
                         "deblurring), DIP at its recipe too")
        if images is not None:
            p = replace(p, images={"*": tuple(images)}, ablation_images=tuple(images))
            replacing(IMAGES_SAID)
            notes.append(f"--images: only {', '.join(images)}")
        if notes != list(self.deviations):  # the profile's own description no longer holds as it says
            p = replace(p, description=f"{p.description} (this run's options change it: see the "
                                       "deviations, and the crop and steps below)")
        return replace(p, deviations=tuple(notes))


CROP_SAID = "images: "
"""How a profile's deviation on its crop begins: ``--crop`` replaces it (the report said both)."""
STEPS_SAID = ("LINR steps: ", "DIP column: ")
"""How a profile's deviations on its step counts begin: ``--steps`` replaces them."""
IMAGES_SAID = "image subsets: "
"""How a profile's deviation on its images begins: ``--images`` replaces it."""

_DIP_PAPER = {
    "denoise": DIPRecipe(3000, 1.0 / 30.0, 0.99),
    "sr": DIPRecipe(2000, 0.03, None),
}

PROFILES: dict[str, Profile] = {
    "paper": Profile(
        name="paper",
        description="full-size images and the paper's steps (500; 4000 for deblurring; 1000 on real "
        "noise); DIP also at its own recipe (3000 steps + averaging for denoising, 2000 for SR). "
        "Meant for a GPU.",
        crop=None,
        steps={"denoise": 500, "sr": 500, "inpaint": 500, "deblur": 4000, "joint": 500, "real": 1000},
        dip_recipe=_DIP_PAPER,
        eval_every=10,
        deviations=(
            "peak column: where a LINR fit trains on observed pixels only (inpainting), the oracle "
            "PSNR is evaluated every 10 steps, not every step (a whole-image render every step "
            "would cost as much as the fit); dense fits are evaluated every step",
        ),
    ),
    "quick": Profile(
        name="quick",
        description="64x64 centre crops, fewer steps and a subset of the images, so that every "
        "table runs on a 2-core CPU in well under an hour.",
        crop=64,
        steps={"denoise": 50, "sr": 100, "inpaint": 100, "deblur": 300, "joint": 100, "real": 100},
        dip_steps={"denoise": 200, "sr": 200, "inpaint": 200, "deblur": 300, "joint": 200,
                   "real": 200},
        dip_recipe={"denoise": DIPRecipe(800, 1.0 / 30.0, 0.99), "sr": DIPRecipe(600, 0.03, None)},
        dip_channels=64,
        images={"set9": ("f16", "house", "kodim03"), "set5": ("bird", "butterfly"),
                "inpaint": ("kate",), "deblur": ("butterfly", "parrots")},
        ablation_images=("butterfly",),
        deviations=(
            "images: 64x64 centre crops (the paper: full images, 228x344 to 768x512); on a crop "
            "the coordinate grid spans the crop, so the image holds fewer details per unit of "
            "the SIREN's bandwidth and fits (and overfits noise) in fewer steps",
            "LINR steps: denoise 50, SR 100, inpaint 100, joint 100, deblur 300 (paper: 500, 500, "
            "500, 500, 4000). On 64-px crops LINR's denoising PSNR peaks after about 40 steps and "
            "has collapsed by 100 (measured on the f16 and house crops before choosing), while SR "
            "and inpainting have levelled off by 100 steps; 50 denoising steps are just past "
            "that peak (the fit has begun to take in noise, as the paper's fixed 500 steps "
            "have on house)",
            "DIP column: 200 steps (300 for deblurring; the paper: 500, the same as LINR) rather "
            "than LINR's quick budget, since a convolutional prior's progress per step does not "
            "speed up on crops the way the SIREN's does; DIP recipe column: 800 steps with "
            "averaging for denoising, 600 for SR x4 (DIP's paper: 3000 and 2000)",
            "DIP width 64 channels instead of 128 (CPU time)",
            "image subsets: Set9 f16, house, kodim03; Set5 bird, butterfly; deblur butterfly, "
            "parrots; kate; the activation ablation on butterfly only",
        ),
    ),
}


def _set9() -> tuple[str, ...]:
    return tuple(f"set9/{n}.png" for n in
                 ("baboon", "f16", "house", "peppers", "kodim01", "kodim02", "kodim03", "kodim12"))


def _set5() -> tuple[str, ...]:
    return tuple(f"set5/{n}.png" for n in ("baby", "bird", "butterfly", "head", "woman"))


NOISY = Corruption(("noisy",))
SR4 = Corruption(("lowres",), factor=4)
MASK = Corruption(("masked",))
LINR = Method("LINR", "linr")
LINR_DEFAULT = Method("LINR (default)", "linr_default")
"""linr's default settings (no preset named: :func:`linr.tasks.resolve`'s choices, such as automatic
stopping for noisy input, the denoising pilot and the inpainting network, and the refinements)."""
LINR_FAST = Method("LINR (fast)", "linr_fast")
"""linr's ``fast`` preset."""
DIP = Method("DIP", "dip")


def _sr_table(key: str, number: int, factor: int) -> Table:
    return Table(key, number, f"Super-resolution x{factor}, Set5", _set5(),
                 Corruption(("lowres",), factor=factor),
                 (LINR, LINR_DEFAULT, LINR_FAST, DIP, Method("Bicubic", "bicubic"),
                  Method("Nearest", "nearest")),
                 multiple=factor, ssim_printed=False)


TABLES: tuple[Table, ...] = (
    Table("table1_denoise_set9", 1, "Denoising, sigma 25, Set9", _set9(), NOISY,
          (LINR, LINR_DEFAULT, LINR_FAST, DIP, Method("DIP (recipe)", "dip_recipe"), Method("TV", "tv"),
           Method("NLM", "nlm"), Method("BM3D", "bm3d"), Method("Noisy input", "input"))),
    Table("table2_sr_x4_set5", 2, "Super-resolution x4, Set5", _set5(), SR4,
          (LINR, LINR_DEFAULT, LINR_FAST, DIP, Method("DIP (recipe)", "dip_recipe"),
           Method("Bicubic", "bicubic"),
           Method("Nearest", "nearest")), multiple=4),
    Table("table3_inpaint_random10", 3, "Inpainting, random mask keeping 10%",
          ("inpaint/kate.png",) + _set5(), MASK,
          (LINR, LINR_DEFAULT, LINR_FAST, DIP, Method("Biharmonic", "biharmonic"))),
    Table("table4_deblur_gauss", 4, "Gaussian deblurring (25x25, sigma 1.6), PSNR on Y",
          tuple(f"deblur/{n}.png" for n in ("leaves", "parrots", "starfish", "butterfly")),
          Corruption(("blurred",)),
          (LINR, LINR_DEFAULT, LINR_FAST, DIP, Method("Wiener", "wiener"), Method("Richardson-Lucy", "rl"),
           Method("Blurred input", "input")),
          metric_task="deblur", ssim_printed=False),
    Table("table5_joint_noise_sr", 5, "Joint: noisy (weight 0.1) + x4 low-res", _set5(),
          Corruption(("noisy", "lowres")), (LINR, LINR_DEFAULT, LINR_FAST, DIP), multiple=4),
    Table("table6_joint_noise_inpaint", 6, "Joint: noisy (weight 0.1) + random mask 10%",
          ("inpaint/kate.png",) + _set9(), Corruption(("noisy", "masked")), (LINR, LINR_DEFAULT, LINR_FAST, DIP)),
    Table("table7_joint_sr_inpaint", 7, "Joint: x4 low-res + random mask 10%", _set5(),
          Corruption(("lowres", "masked")), (LINR, LINR_DEFAULT, LINR_FAST, DIP), multiple=4),
    Table("table8_joint_vs_single_noise_sr", 8, "LINR: denoising, SR x4, together", _set5(),
          Corruption(("noisy", "lowres")),
          (Method("Denoising", "linr", NOISY), Method("SR", "linr", SR4), Method("Together", "linr")),
          multiple=4),
    Table("table9_joint_vs_single_noise_inpaint", 9, "LINR: denoising, inpainting, together",
          ("inpaint/kate.png",) + _set9(), Corruption(("noisy", "masked")),
          (Method("Denoising", "linr", NOISY), Method("Inpainting", "linr", MASK),
           Method("Together", "linr"))),
    Table("table10_joint_vs_single_sr_inpaint", 10, "LINR: inpainting, SR x4, together", _set5(),
          Corruption(("lowres", "masked")),
          (Method("Inpainting", "linr", MASK), Method("SR", "linr", SR4), Method("Together", "linr")),
          multiple=4),
    Table("table11_activation_ablation_sr_x4", 11, "Activation ablation, SR x4, Set5", _set5(), SR4,
          tuple(Method(label, "linr", model=model) for label, model in (
              ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("ReLU", "relu"), ("SeLU", "selu"),
              ("ReLU-PE", "relu_pe"), ("Sine", "siren"))),
          multiple=4),
    _sr_table("table12_sr_x8_set5", 12, 8),
    _sr_table("table13_sr_x2_set5", 13, 2),
    Table("table14_real_noise_polyu", 14, "Real noise (PolyU-style *_real / *_mean pairs)", (),
          Corruption(("real",)),
          (LINR, LINR_DEFAULT, LINR_FAST, DIP, Method("NLM", "nlm"), Method("BM3D", "bm3d"),
           Method("Noisy input", "input"))),
)


def variant_label(variant: str) -> str:
    """The column of a variant of the defaults (:func:`with_variants`)."""
    return f"{LINR_DEFAULT.label[:-1]}, {variant})"


def with_variants(table: Table, variants: Sequence[str]) -> Table:
    """``table`` with a column per variant of the defaults (settings such as ``refine=none``) after
    its ``LINR (default)`` column; a table without one is returned as it is."""
    if not variants or LINR_DEFAULT not in table.methods:
        return table
    at = table.methods.index(LINR_DEFAULT) + 1
    added = tuple(Method(variant_label(v), LINR_DEFAULT.kind, variant=v) for v in variants)
    return replace(table, methods=table.methods[:at] + added + table.methods[at:])


def find_tables(selection: list[str] | None) -> list[Table]:
    """Tables named by number (``8``), key (``table8_...``) or key prefix; all when None."""
    if not selection:
        return list(TABLES)
    chosen = []
    for item in selection:
        text = item.strip().lower()
        match = [t for t in TABLES if text in (str(t.number), f"table{t.number}", t.key)]
        if not match:
            from ..errors import InputError

            raise InputError(f"unknown table {item!r}; choose numbers 1-14 or keys like "
                             f"{TABLES[0].key}")
        chosen.extend(m for m in match if m not in chosen)
    return sorted(chosen, key=lambda t: t.number)
