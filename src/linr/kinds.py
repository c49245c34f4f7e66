"""Observation kinds: how each kind of corrupted view is built, and the registry every command
iterates over.

A kind is one :class:`Kind` entry in :data:`KINDS`: its name (the CLI flag ``--NAME`` and the
Observation's ``kind``), its help line, the CLI options that belong to it, how an observation is
built from a file and those options, which task it is for metrics and step budgets, whether it
carries noise (automatic stopping, the joint noisy weight, the discrepancy rule read that from the
observation), and how the benchmarks simulate it from a clean image. ``linr restore``,
``linr batch``, :func:`linr.scene.load_scene` and ``linr bench`` read the registry, so a new kind
is one entry here (tests/test_kinds.py adds a toy kind and runs it from restore, batch and the
bench's simulation). Presets may override a kind's step count by its name.

The Python constructors (:func:`noisy`, :func:`lowres`, :func:`masked`, :func:`blurred`) live here
too and are re-exported by :mod:`linr.tasks` and :mod:`linr`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .argtypes import is_real, nonneg_float, positive_float, positive_int
from .errors import InputError
from .images import ImageInfo, as_float_image, check_photo, is_jpeg, quarter_turned, read_mask

if TYPE_CHECKING:  # the registry imports no torch, so that building the CLI's parser stays quick
    from .problem import Observation

__all__ = ["Kind", "KindOption", "Simulation", "KINDS", "kind_of", "noisy", "lowres", "masked", "blurred", "left_out_where_transparent", "transparent_holes",
           "parse_kernel", "NOISE_MODELS", "noise_term"]

NOISE_MODELS = ("gaussian", "poisson", "poisson-gaussian")
"""Noise models of a noisy observation (``--noise``), each a data term of :mod:`linr.fidelity`."""
PHOTON_METHOD_CHOICES = ("anscombe", "likelihood")
""":data:`linr.fidelity.PHOTON_METHODS`, here so that building the CLI's parser imports no torch."""


def noisy(image: np.ndarray, *, weight: float | None = None, noise: Any = "gaussian",
          peak: float | None = None, read_noise: float | None = None,
          photon_method: str | None = None) -> Observation:
    """A noisy photo of the scene (identity operator).

    ``noise``: 'gaussian' (the paper's squared error), 'poisson' (photon counts) or
    'poisson-gaussian' (photon counts plus read noise), or a data term object
    (:mod:`linr.fidelity`). ``peak`` (photons of a white pixel) and ``read_noise`` (std on the
    0-255 scale) are estimated from the image when not given (see :func:`noise_term`).
    ``photon_method``: how :func:`linr.restore` restores photon noise, 'anscombe' or 'likelihood'
    (:data:`linr.fidelity.PHOTON_METHODS`; None: the Anscombe transform for noisy photos alone,
    one or an aligned burst, else the likelihood: :mod:`linr.stabilise`).
    """
    from .operators import Identity
    from .problem import Observation

    check_photo(as_float_image(image, "noisy image"), "noisy image")
    if isinstance(noise, str):
        term, _ = noise_term(as_float_image(image, "noisy image"), noise, peak=peak, read_noise=read_noise,
                             photon_method=photon_method)
    else:
        if peak is not None or read_noise is not None or photon_method is not None:
            raise InputError("peak, read_noise and photon_method apply to a noise model named by string, not to "
                             "a data term object")
        term = noise
    return Observation(image, Identity(), weight, "noisy", fidelity=term, carries_noise=True)


def noise_term(image: np.ndarray, noise: str, *, peak: float | None = None,
               read_noise: float | None = None, photon_method: str | None = None) -> tuple[Any, str | None]:
    """The data term of a noisy image under a noise model (one of :data:`NOISE_MODELS`), and a
    line saying what was estimated from the image (None when nothing was).

    ``peak``: expected photon count of a white pixel (the image is counts / peak); ``read_noise``:
    std of the read noise on the 0-255 scale (poisson-gaussian only). Those not given are
    estimated (:func:`linr.photon.estimate_photon_noise`); an image too small or too clipped
    to estimate them from is an error that asks for them. ``photon_method``: the photon terms'
    ``method`` (:class:`linr.fidelity.Poisson`).
    """
    from .fidelity import PHOTON_METHODS, Poisson, PoissonGaussian, SquaredError

    if noise not in NOISE_MODELS:
        raise InputError(f"unknown noise model {noise!r}; choose from {', '.join(NOISE_MODELS)}")
    if peak is not None and not (is_real(peak) and peak > 0):
        raise InputError(f"peak must be a finite number of photons > 0, got {peak!r}")
    if read_noise is not None and not (is_real(read_noise) and read_noise >= 0):
        raise InputError(f"read noise must be a finite number >= 0 (0-255 scale), got {read_noise!r}")
    if photon_method is not None and photon_method not in PHOTON_METHODS:
        raise InputError(f"unknown photon method {photon_method!r}; choose from {', '.join(PHOTON_METHODS)}")
    if noise == "gaussian":
        if photon_method is not None:
            raise InputError("a photon method (--photon-method) needs noise 'poisson' or 'poisson-gaussian' (--noise)")
        if peak is not None:
            raise InputError("peak (--peak) needs noise 'poisson' or 'poisson-gaussian' (--noise)")
        if read_noise is not None:
            raise InputError("read noise (--read-noise) needs noise 'poisson-gaussian' (--noise)")
        return SquaredError(), None
    if noise == "poisson" and read_noise is not None:
        raise InputError("read noise (--read-noise) needs noise 'poisson-gaussian' (--noise)")
    with_read = noise == "poisson-gaussian"
    estimated = None
    if peak is None or (with_read and read_noise is None):
        from .photon import estimate_photon_noise

        try:
            found = estimate_photon_noise(np.asarray(image, dtype=np.float64), read_noise=with_read,
                                          peak=peak, read_sigma=None if read_noise is None
                                          else read_noise / 255.0)
        except ValueError as exc:
            wanted = "--peak" + (" and --read-noise" if with_read else "")
            raise InputError(f"cannot estimate the photon noise: {exc}; give {wanted}") from None
        parts = []
        if peak is None:
            peak = found.peak
            parts.append(f"peak {peak:.3g} photons at white")
        if with_read and read_noise is None:
            read_noise = found.read_sigma * 255.0
            parts.append(f"read noise {read_noise:.3g}/255")
        estimated = f"{noise} noise estimated from the image: {', '.join(parts)} (rough; give " \
                    "--peak / --read-noise when known)"
    saturated = is_saturated(image)
    if with_read:
        return PoissonGaussian(peak=float(peak), read_sigma=float(read_noise) / 255.0,
                               saturated=saturated, method=photon_method), estimated
    return Poisson(peak=float(peak), saturated=saturated, method=photon_method), estimated


def is_saturated(image: np.ndarray) -> bool:
    """Whether an image of counts / peak was clipped at white: some values exactly 1 and none
    above (a float image that keeps counts above the peak is not)."""
    image = np.asarray(image)
    top = float(np.max(image)) if image.size else 0.0
    return top == 1.0


def lowres(
    image: np.ndarray, factor: int = 4, *, kernel: str = "lanczos2", weight: float | None = None,
    alpha: np.ndarray | None = None,
) -> Observation:
    """A low-resolution photo, ``factor`` times smaller than the restored image. ``alpha``: its
    transparency (:func:`left_out_where_transparent`), as ``linr restore`` reads an RGBA photo's."""
    from .operators import Downsample
    from .problem import Observation

    try:
        op = Downsample(factor, kernel)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    check_photo(as_float_image(image, "lowres image"), "lowres image")
    return left_out_where_transparent(Observation(image, op, weight, "lowres"), alpha)


def left_out_where_transparent(observation: Observation, alpha: np.ndarray | None) -> Observation:
    """``observation`` with the pixels where ``alpha`` ((h, w) on [0, 1], 1 opaque; None: none) is
    below one half filled from the opaque ones (:func:`linr.transparent.mirrored_fill`) and left
    out of its data term (:class:`~linr.operators.LeftOut`), as :func:`linr.scene.load_scene`
    does for a low-res or blurred photo with transparent pixels; unchanged where every pixel is
    opaque, or none is (then its values are fitted as they are)."""
    if alpha is None:
        return observation
    import dataclasses

    from .operators import LeftOut
    from .transparent import mirrored_fill

    alpha = np.asarray(alpha, np.float64)
    if alpha.shape != tuple(observation.shape):
        raise InputError(f"{observation.kind} alpha of shape {alpha.shape}: the photo is {observation.shape[0]}x"
                         f"{observation.shape[1]} (height x width)")
    kept = alpha >= 0.5
    if kept.all() or not kept.any():
        return observation
    return dataclasses.replace(observation, image=mirrored_fill(observation.image, ~kept),
                               operator=LeftOut(observation.operator, kept))


def left_out_also(observation: Observation, pixels: np.ndarray) -> Observation:
    """``observation`` with ``pixels`` (H, W bool) left out of its data term beside those it leaves out
    already (a photo's transparent ones), their values filled from the pixels kept
    (:func:`left_out_where_transparent`): a saturated star's plateau (:mod:`linr.headroom`), a hot pixel
    (:mod:`linr.defects`)."""
    import dataclasses

    from .operators import LeftOut

    kept = ~np.asarray(pixels, bool)
    if isinstance(observation.operator, LeftOut):  # its transparent pixels already left out: both now
        kept = kept & observation.operator.kept
        observation = dataclasses.replace(observation, operator=observation.operator.inner)
    return left_out_where_transparent(observation, kept.astype(np.float32))


def masked(image: np.ndarray, mask: np.ndarray, *, weight: float | None = None) -> Observation:
    """A photo with missing pixels; ``mask`` (H, W) is True / 1 where the pixel was observed:
    values above 0.5 are observed, the rest missing (as :class:`~linr.operators.Mask` reads it; an
    8-bit mask's 255 is observed). An (H, W, C) mask is taken as its least channel (observed where
    every channel is), as ``linr restore --mask`` reads a colour mask image."""
    from .operators import Mask
    from .problem import Observation

    if mask is None:
        raise InputError("masked needs a mask: an (H, W) array of the photo's size, True / 1 where the pixel "
                         "was observed")
    mask = np.asarray(mask)
    image = np.asarray(image)
    if mask.ndim == 3 and (np.issubdtype(mask.dtype, np.number) or mask.dtype == np.bool_) \
            and not np.iscomplexobj(mask):
        mask = mask[..., 0] if mask.shape[2] == 1 else mask.astype(np.float64).min(axis=2)
    if mask.shape != image.shape[:2]:
        size = f"{mask.shape[1]}x{mask.shape[0]}" if mask.ndim == 2 else f"of shape {mask.shape}"
        photo = f"{image.shape[1]}x{image.shape[0]}" if image.ndim >= 2 else f"of shape {image.shape}"
        raise InputError(f"mask is {size} but the image is {photo} (width x height): "
                         "give one flag per pixel of the photo")
    if not (np.issubdtype(mask.dtype, np.number) or mask.dtype == np.bool_) or np.iscomplexobj(mask):
        raise InputError(f"mask must hold numbers or booleans, got {mask.dtype} values")
    if not np.isfinite(mask.astype(np.float64)).all():
        raise InputError("mask contains non-finite values (NaN or inf)")
    if not (mask.astype(np.float64) > 0.5).any():
        raise InputError("mask keeps no pixels (values above 0.5 are observed: 1 / True / white)")
    check_photo(as_float_image(image, "masked image"), "masked image", mask.astype(np.float64) > 0.5)
    return Observation(image, Mask(mask.astype(np.float32)), weight, "masked")


def blurred(
    image: np.ndarray,
    kernel: np.ndarray | str,
    *,
    boundary: str | None = None,
    weight: float | None = None,
    alpha: np.ndarray | None = None,
) -> Observation:
    """A blurred photo; ``kernel`` is a 2-D array or a spec string (see :func:`parse_kernel`).
    ``alpha``: its transparency (:func:`left_out_where_transparent`).

    ``boundary``: 'free', 'reflect' or 'circular' (see :class:`~linr.operators.Blur`); None leaves
    it to the preset: by default free edges for a photo restored alone, whole or in tiles (real
    photos, whose scene went on past the frame; the fit renders the frame, or each tile's window,
    grown by the kernel's reach) or beside one noisy photo of it (a short exposure), reflect in other
    joint fits; circular with the paper preset (the paper blurred its images circularly).
    See :func:`linr.tasks.open_blur_boundary`.
    """
    from .operators import Blur
    from .problem import Observation

    if isinstance(kernel, (str, os.PathLike)):
        kernel = parse_kernel(kernel)
    try:
        op = Blur(kernel, boundary=boundary)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    photo = as_float_image(image, "blurred image")
    check_photo(photo, "blurred image")
    if kernel_covers_photo(kernel, photo.shape):  # linr restore --kernel refuses it first, with its hints
        kh, kw = trim_zero_border(np.asarray(kernel, np.float64), NEGLIGIBLE_KERNEL).shape
        h, w = photo.shape[:2]
        raise InputError(f"blurred: the kernel ({kw}x{kh}) is as large as the blurred photo ({w}x{h}) or larger; "
                         "the kernel is the blur's PSF, a small image of one blurred point")
    return left_out_where_transparent(Observation(image, op, weight, "blurred"), alpha)


def parse_kernel(spec: str | os.PathLike) -> np.ndarray:
    """``gaussian:WIDTH:SIGMA`` or a path to a .npy array or a greyscale image (normalised later)."""
    text = str(spec)
    if text.startswith("gaussian:") or text.startswith("gauss:"):
        parts = text.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            width, sigma = int(parts[1]), float(parts[2])
            from .operators import gaussian_kernel

            return gaussian_kernel(width, sigma)
        except ValueError:
            raise InputError(
                f"bad kernel spec {text!r}: use gaussian:WIDTH:SIGMA with an integer width >= 1 "
                "and sigma > 0, e.g. gaussian:25:1.6"
            ) from None
    path = Path(text)
    if not path.exists():
        raise InputError(f"bad kernel spec {text!r}: not gaussian:WIDTH:SIGMA and no such file")
    if path.suffix.lower() == ".npy":
        try:
            k = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"{path}: not a readable .npy kernel ({exc.__class__.__name__})") from None
    else:
        from .images import read_image

        pixels, _ = read_image(path)
        k = pixels.mean(axis=2)
    if not (np.issubdtype(k.dtype, np.number) or k.dtype == np.bool_) or np.iscomplexobj(k):
        raise InputError(f"{path}: kernel must hold real numbers, got {k.dtype} values")
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise InputError(f"{path}: kernel must be a non-empty 2-D array, got shape {k.shape}")
    if not np.isfinite(k).all():
        raise InputError(f"{path}: kernel contains non-finite values")
    if not k.sum() > 1e-12:
        raise InputError(f"{path}: kernel must have a positive sum")
    return k


def kernel_covers_photo(kernel: np.ndarray, photo_shape: Sequence[int]) -> bool:
    """Whether a blur ``kernel`` (its border of zeros and negligible values trimmed: :data:`NEGLIGIBLE_KERNEL`) is as large as a photo of
    ``photo_shape`` (H, W, ...) or larger on both sides: a photo given as the kernel, refused."""
    kh, kw = trim_zero_border(np.asarray(kernel, np.float64), NEGLIGIBLE_KERNEL).shape
    return kh >= photo_shape[0] and kw >= photo_shape[1]


NEGLIGIBLE_KERNEL = 1e-6
"""A kernel's border values at most this fraction of its peak (in magnitude) are trimmed as if zero
(:func:`trim_zero_border`): a new user's 81 x 81 Gaussian of sigma 2, whose wings fell to 1e-87, was
refused as larger than a 64-px photo, though it reaches about 10 px."""


def trim_zero_border(kernel: np.ndarray, below: float = 0.0) -> np.ndarray:
    """``kernel`` without the rows and columns of zeros it has on both sides of an axis, as many
    taken from each side (so that its centre, row ``h // 2`` and column ``w // 2``, stays the same
    pixel): the same blur (a PSF saved on a larger canvas), read over a smaller reach. ``below``:
    values at most this fraction of the peak's magnitude count as zeros too."""
    k = np.asarray(kernel)
    floor = below * float(np.max(np.abs(k))) if k.size else 0.0
    for axis in (0, 1):
        nonzero = np.flatnonzero(np.any(np.abs(k) > floor, axis=1 - axis))
        if nonzero.size == 0:
            return k
        cut = min(int(nonzero[0]), k.shape[axis] - 1 - int(nonzero[-1]))
        if cut:
            k = np.take(k, np.arange(cut, k.shape[axis] - cut), axis=axis)
    return k


NEGATIVE_LOBE = 0.1
"""A kernel's most negative value beyond this fraction of its peak is a negative lobe (a
sharpening kernel), not the noise of a measured PSF's background (a percent or two of the peak)."""


def negative_kernel_note(kernel: np.ndarray) -> str | None:
    """A note when a blur kernel has negative lobes (:data:`NEGATIVE_LOBE`): a blur's PSF is never
    negative, so such a kernel is likely not the blur (a sharpening kernel, or a measured PSF whose
    background was subtracted too far); it is taken as given."""
    k = np.asarray(kernel, dtype=np.float64)
    peak, low = float(k.max()), float(k.min())
    if peak <= 0 or -low <= NEGATIVE_LOBE * peak:
        return None
    return (f"the kernel has negative values down to {low / peak:.0%} of its peak: a blur's PSF is never negative "
            "(a sharpening kernel is not a blur; a measured PSF's background below zero is usually set to 0); "
            "taken as given")


KERNEL_OFF_CENTRE_PX = 1.0
"""How far (px) a blur kernel's centre of mass may lie from its array's centre (row ``h // 2``,
column ``w // 2``) before a note says the result will be shifted: a measured PSF is usually
centred on its array (a new user's, 3 rows off, came back shifted at 12.81 dB, under the blurred
photo's 19.87, with no word of why). Half a pixel is an even side's own offset."""

KERNEL_FLOOR_PEAK = 0.05
"""A kernel whose border is nearly flat above zero but under this share of its peak..."""

KERNEL_FLOOR_SUM = 0.2
"""...and whose floor at that level carries at least this share of its sum has a floor: a measured
PSF's background left in (a new user's 41x41 PSF with a floor of 3/255, 45% of its sum, gave 16.80
dB where the blurred photo was at 19.87, with no word of it). A Gaussian truncated tightly (9 px at
sigma 3: its border a third of its peak) is a blur, not a floor, and says nothing."""


def kernel_offset_note(kernel: np.ndarray) -> str | None:
    """A note where a blur kernel's centre of mass (of its positive values, above its border's
    median: a measured PSF's background floor would pull the centre toward the array's, and a
    microscopist's PSF both off centre and on a floor got only the floor's note, its result shifted
    2 px) lies more than :data:`KERNEL_OFF_CENTRE_PX` from its array's centre: the restored image is
    shifted by as much."""
    k = np.asarray(kernel, np.float64)
    if min(k.shape) >= 3:
        k = k - max(0.0, float(np.median(_border(k))))
    k = np.clip(k, 0.0, None)
    if not k.sum() > 0:
        return None
    rows, cols = np.indices(k.shape)
    row, col = float((rows * k).sum() / k.sum()), float((cols * k).sum() / k.sum())
    centre = (k.shape[0] // 2, k.shape[1] // 2)
    off = float(np.hypot(row - centre[0], col - centre[1]))
    if off <= KERNEL_OFF_CENTRE_PX:
        return None
    return (f"the kernel's centre of mass is at row {row:.1f}, column {col:.1f} (0-based), {off:.1f} px from its "
            f"centre (row {centre[0]}, column {centre[1]}): the restored image is shifted by as much (a PSF is "
            "usually centred on its array: crop it around its centre of mass)")


def _border(k: np.ndarray) -> np.ndarray:
    """The values on a 2-D array's outer ring (each once)."""
    return np.concatenate([k[0], k[-1], k[1:-1, 0], k[1:-1, -1]])


def kernel_floor_note(kernel: np.ndarray) -> str | None:
    """A note where a blur kernel has a floor (:data:`KERNEL_FLOOR_PEAK`, :data:`KERNEL_FLOOR_SUM`):
    its border nearly flat above zero, faint against its peak, yet carrying much of its sum."""
    k = np.asarray(kernel, np.float64)
    if min(k.shape) < 5 or not k.sum() > 0:
        return None
    border = _border(k)
    floor = float(np.median(border))
    if not 0 < floor < KERNEL_FLOOR_PEAK * float(k.max()):
        return None
    if float(np.std(border)) > 0.5 * floor or floor * k.size < KERNEL_FLOOR_SUM * float(k.sum()):
        return None
    return (f"the kernel has a floor: its border is about {floor / k.max():.1%} of its peak, nearly flat, and that "
            f"level over the whole kernel is {floor * k.size / k.sum():.0%} of its sum (a measured PSF's background "
            "left in?); it blurs the photo as a wide haze: subtract the background and clip at zero before giving it")


@dataclass(frozen=True)
class KindOption:
    """A command-line option that belongs to one kind (``--factor`` to ``--lowres``)."""

    flag: str
    """e.g. '--factor'; its value reaches :attr:`Kind.build` under ``dest``."""
    dest: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    default: Any = None
    """The value when the option is not given (the CLI keeps None to tell 'not given')."""
    path: bool = False
    """The value names an input file (never overwritten; batch may pair a folder of them)."""


@dataclass(frozen=True)
class Simulation:
    """How experiments make one kind from a clean image (``linr bench``), seeded per image.

    ``params`` holds the corruption's settings: ``sigma`` (noise, 0-255 scale), ``factor``,
    ``keep`` (mask fraction), ``blur`` ((width, sigma) of a Gaussian kernel)."""

    make: Callable[[np.ndarray, dict[str, Any], int | None], dict[str, Any]]
    """``make(clean, params, seed)`` -> ``{"image": observed, ...extras such as "mask", "kernel"}``."""
    observe: Callable[[dict[str, Any], np.ndarray, dict[str, Any]], "Observation"]
    """``observe(extras, image, params)`` -> the observation of that image."""
    describe: Callable[[dict[str, Any]], str]
    seeded: bool = True
    """Whether ``make`` draws random numbers (noise, masks): then it gets a seed per image."""


TRANSPARENT = ("filled", "left-out", "holes")
"""What a kind makes of a photo's transparent pixels (:attr:`Kind.transparent`)."""


@dataclass(frozen=True)
class Kind:
    """One kind of observation."""

    name: str
    help: str
    task: str
    """denoise, sr, inpaint, deblur: the metric convention's task and the bench's step class."""
    carries_noise: bool
    build: Callable[[np.ndarray, ImageInfo, dict[str, Any], list[str]], tuple[Observation, list[str]]]
    """``build(image, info, options, notes)`` -> (observation, input files it read besides the
    image); ``options`` maps each option's ``dest`` to its value (default filled in); it may
    change ``info`` (e.g. drop an alpha that marked holes) and append lines for the user to
    ``notes``. Raises :class:`~linr.errors.InputError` for a bad input."""
    options: tuple[KindOption, ...] = field(default_factory=tuple)
    simulation: Simulation | None = None
    """How the benchmarks make it from a clean image (None: not simulated)."""
    frame_notes: Callable[[list["Observation"], list[ImageInfo], dict[str, Any]], list[str]] | None = None
    """``frame_notes(observations, infos, options)`` -> lines for the user about all the frames
    of this kind at once (one line for a burst, not one per frame), or None: no such lines."""
    transparent: str = "filled"
    """What a photo's transparent pixels are (:data:`TRANSPARENT`): ``filled`` from the opaque ones
    before it is built (:func:`linr.scene.filled_transparent`: a noisy photo's, whose noise level
    is then measured on its opaque pixels' values); ``left-out``: filled so too once it is built
    (:func:`left_out_where_transparent`: what reads the photo as an image, a refinement's filter,
    sees no dark band), and left out of every data term (its operator a
    :class:`~linr.operators.LeftOut` of the opaque pixels); ``holes``: the
    builder takes them as missing pixels (it consumes the alpha)."""
    on_dim_integers: Callable[[dict[str, Any], float, float], tuple[dict[str, Any], str] | None] | None = None
    """``on_dim_integers(options, white, top)`` -> where this kind's data term under ``options``
    needs integer photos that use little of their type's range (:data:`DIM_INTEGERS_BELOW`) mapped
    0..``top`` (the few low bits they fill) instead of 0..``white`` (the type's): the options
    converted to that range and a line saying why and what was converted; None (or no hook): the
    type's range serves."""

    def __post_init__(self) -> None:
        if self.transparent not in TRANSPARENT:
            raise ValueError(f"kind {self.name}: transparent {self.transparent!r}, expected one of {TRANSPARENT}")


GAIN_KEYWORDS = ("GAIN", "EGAIN", "CCDGAIN")
"""FITS header keywords of a detector's gain (electrons, i.e. photons detected, per stored unit)."""
READ_NOISE_KEYWORDS = ("RDNOISE", "READNOIS", "RON")
"""FITS header keywords of a detector's read noise (electrons)."""


def header_photon_levels(info: ImageInfo, noise: str) -> tuple[float | None, float | None]:
    """The photon level (photons at the value range's high) and read noise (0-255 scale) a FITS
    input's header gives for ``noise`` 'poisson' or 'poisson-gaussian': ``GAIN`` (electrons per
    stored unit) times the range mapped to [0, 1], and ``RDNOISE`` (electrons) over the gain, in
    that range; (None, None) for other inputs, other noise, no gain card, or a range that does not
    start at 0 stored units (0 must be no photons: a bias-subtracted frame)."""
    if info.fits is None or noise not in ("poisson", "poisson-gaussian") or info.value_range is None:
        return None, None
    gain = info.fits.number(*GAIN_KEYWORDS)
    low, high = info.value_range.low, info.value_range.high
    if gain is None or not gain > 0 or low != 0 or not high > 0:
        return None, None
    read = info.fits.number(*READ_NOISE_KEYWORDS) if noise == "poisson-gaussian" else None
    return gain * high, None if read is None or read < 0 else read / gain / high * 255.0


def _build_noisy(image, info, options, notes):
    peak, read_noise = options.get("peak"), options.get("read_noise")
    from_header = header_photon_levels(info, options["noise"])
    said = []
    if peak is None and from_header[0] is not None:
        peak = from_header[0]
        said.append(f"peak {peak:.6g} photons at white (GAIN x {info.value_range.high:.6g})")
    if read_noise is None and from_header[1] is not None:
        read_noise = from_header[1]
        said.append(f"read noise {read_noise:.3g}/255 (RDNOISE / GAIN)")
    if said:
        line = (f"{info.path}: {', '.join(said)} from its header, taken as a bias-subtracted frame (0 stored "
                "units = no photons); --peak / --read-noise set them instead")
        if line not in notes:
            notes.append(line)
    elif options["noise"] != "gaussian" and info.fits is not None and info.fits.number(*GAIN_KEYWORDS) is not None \
            and (peak is None or (options["noise"] == "poisson-gaussian" and read_noise is None)) \
            and info.value_range is not None and info.value_range.low != 0:
        line = (f"{info.path}: its header's gain is not used: its values run from {info.value_range.low:.6g}, not 0 "
                "(not a bias-subtracted frame, whose 0 is no photons), so the photon levels are estimated from the "
                "image (--peak / --read-noise set them)")
        if line not in notes:
            notes.append(line)
    if is_jpeg(info.path) and not any(JPEG_NOTE in n for n in notes):  # by its bytes: not a PNG named .jpg
        notes.append(f"{info.path}: {JPEG_NOTE}")
    from .noise import MIN_SIDE  # the wavelet's length: the least side whose noise is measured

    if options["noise"] == "gaussian" and min(image.shape[:2]) < MIN_SIDE:
        line = (f"{info.path}: {image.shape[1]}x{image.shape[0]} (width x height): under {MIN_SIDE} px a side "
                "its noise cannot be measured, which the defaults for a noisy photo need (their narrow network, "
                "prior and refinement): none of them is taken")
        if line not in notes:
            notes.append(line)
    if peak is not None and (line := _photon_level_disagrees(
            image, info, options["noise"], peak, read_noise, "--peak" if options.get("peak") is not None
            else "its header")) and line not in notes:
        notes.append(line)
    term, _ = noise_term(image, options["noise"], peak=peak, read_noise=read_noise,
                         photon_method=options.get("photon_method"))
    return noisy(image, noise=term), []  # what was estimated: one line for all frames (below)


PHOTON_LEVEL_SAID_BEYOND = 3.0
"""A given photon level (``--peak``, a FITS header's GAIN) this many times above or below the one
the photo's noise says gets :func:`_photon_level_disagrees`' note (the estimate is within about 10%
on 128-px crops at 10 to 100 photons; a 48-px one within a few tens of per cent)."""
PHOTON_LEVEL_CHECKED_UP_TO = 1024
"""The side (px) of the centre crop the given level is checked on (the estimate's 2 x 2 blocks of a
whole 8192-px photo would take gigabytes)."""


def _photon_level_disagrees(image: np.ndarray, info: ImageInfo, noise: str, peak: float,
                            read_noise: float | None, given: str) -> str | None:
    """A note where a given photon level is far from the one the photo's noise says: a
    microscopist's --peak 127 on counts up to 78 (0.25 photons at white once the type's white was
    meant) came back 41% too bright, and a photo simulated by ``linr degrade`` at 20 photons kept its
    camera's GAIN, whose 846 photons at white made its stars' flux 27% low. None where they agree,
    or the photo is too small or clipped to say."""
    from .photon import estimate_photon_noise

    h, w = image.shape[:2]
    top, left = max(0, (h - PHOTON_LEVEL_CHECKED_UP_TO) // 2), max(0, (w - PHOTON_LEVEL_CHECKED_UP_TO) // 2)
    crop = np.asarray(image[top:top + PHOTON_LEVEL_CHECKED_UP_TO, left:left + PHOTON_LEVEL_CHECKED_UP_TO],
                      dtype=np.float64)
    try:
        found = estimate_photon_noise(crop, read_noise=noise == "poisson-gaussian",
                                      read_sigma=None if read_noise is None else read_noise / 255.0).peak
    except ValueError:
        return None
    ratio = peak / found
    if 1.0 / PHOTON_LEVEL_SAID_BEYOND <= ratio <= PHOTON_LEVEL_SAID_BEYOND:
        return None
    return (f"{info.path}: {given} gives {peak:.3g} photons at white, and its noise says about {found:.3g} "
            f"({ratio:.3g}x): a level {'this low leaves the result too smooth and too bright' if ratio < 1 else 'this high leaves the result noisy'}"
            "; leave it out to use the measured one, or check what white is (the range the values were mapped by)")


DIM_INTEGERS_BELOW = 0.25
"""Integer photos whose values all reach under this share of their type's range are dim: a kind
whose data term needs them on the fit's whole scale (:attr:`Kind.on_dim_integers`) gets them mapped
by the few low bits they fill (:func:`linr.images.dim_integer_range`)."""


def _noisy_on_dim_integers(options: dict[str, Any], white: float, bits_top: float) -> tuple[dict[str, Any], str] | None:
    """A noisy photo's options for dim integers mapped 0..``bits_top`` instead of 0..``white`` (the
    type's), or None under Gaussian noise (its fit of such values holds: a 48-px crop of counts up
    to 308 of 65535, 37.9 dB as mapped by the type, 36.4 by its bits). The photon likelihood's fit
    of values this dim (a few ten-thousandths of white) came back 3-6x too bright or 0.3x too dark
    on 48-px crops of counts up to 57 (a microscopist's burst of counts up to 43: 10-20x); on the
    fit's whole scale the same likelihood (photons unchanged) gave 31.5 dB. ``--peak`` stays photons
    at the type's white (converted to the new top), ``--read-noise`` its 0-255 scale of that white."""
    if options["noise"] == "gaussian":
        return None
    ratio = bits_top / white
    converted, said = dict(options), []
    if options.get("peak") is not None:
        converted["peak"] = options["peak"] * ratio
        said.append(f"--peak {options['peak']:g} (photons at {white:g}, the type's white) is {converted['peak']:.3g} "
                    f"at {bits_top:g}" + ("" if options["peak"] == white else
                                          f"; if the values are photon counts, --peak {white:g} says so"))
    if options.get("read_noise") is not None:
        converted["read_noise"] = options["read_noise"] / ratio
        said.append(f"--read-noise {options['read_noise']:g} (of {white:g} as 255) is {converted['read_noise']:.3g} "
                    f"of {bits_top:g} as 255")
    return converted, "; ".join(["the photon noise's fit needs them on its whole scale (the likelihood's fit of "
                                 "values this dim came back far too bright; --range LO:HI maps them otherwise)"] + said)


def _blurred_on_dim_integers(options: dict[str, Any], white: float, bits_top: float) -> tuple[dict[str, Any], str]:
    """A blurred photo's dim integers are always mapped 0..``bits_top``: the deblurring reads its noise
    and its refinement's levels on the fit's whole scale (a new user's 64-px crop of photon counts up to
    58 of 65535, mapped by the type, measured 0.5/255 of noise, so no early stop, and came back 2.3 dB
    under the blurred photo after 2000 steps; ``--range 0:63``: 2.7 dB above it, sixty-fifth session)."""
    return dict(options), ("the deblurring measures their noise and refines on the fit's whole scale (by the "
                           "type's range a dim photo's noise reads as almost none; --range LO:HI maps them otherwise)")


JPEG_NOTE = ("a JPEG: its compression smoothed part of the noise and left 8 x 8 block artefacts, which are not the "
             "white noise --noisy models; it is measured and restored as if it were (a camera's raw, PNG or TIFF "
             "output is restored as modelled)")
"""The note on a noisy JPEG, after its path (said once for a burst of them)."""


def _noisy_frame_notes(observations, infos, options):
    """What was estimated of the photon noise: for one frame as :func:`noise_term` says it, for
    a burst one line with the range over its frames."""
    noise = options["noise"]
    if noise == "gaussian" or not observations:
        return []
    with_read = noise == "poisson-gaussian"
    parts = []
    headers = [header_photon_levels(info, noise) for info in infos]
    for k, (given, field_name, unit, scale) in enumerate((("peak", "peak", " photons at white", 1.0),
                                                          ("read_noise", "read_sigma", "/255", 255.0))):
        if options.get(given) is not None or (given == "read_noise" and not with_read) or \
                all(levels[k] is not None for levels in headers):  # said from the header instead
            continue
        values = [getattr(o.fidelity, field_name) * scale for o in observations]
        span = f"{min(values):.3g}" if len(set(f"{v:.3g}" for v in values)) == 1 \
            else f"{min(values):.3g}-{max(values):.3g}"
        parts.append(f"{given.replace('_', ' ')} {span}{unit}")
    if not parts:
        return []
    where = (f"{infos[0].path}: {noise} noise estimated from the image" if len(observations) == 1
             else f"--noisy: {noise} noise estimated from each of {len(observations)} frames")
    return [f"{where}: {', '.join(parts)} (rough; give --peak / --read-noise when known)"]


MAX_FACTOR = 64
"""Largest super-resolution factor from the command line (the paper's largest is 8)."""


DEFAULT_FACTOR = 4
"""The super-resolution factor when none is given (the paper's main SR task, Table 2)."""


def _build_lowres(image, info, options, notes):
    if options.get("factor") is None:  # not given: said, since the output's size depends on it
        options = {**options, "factor": DEFAULT_FACTOR}
        note = (f"--factor not given: the low-res image ({image.shape[1]}x{image.shape[0]}) is taken as x{DEFAULT_FACTOR}, "
                f"restored at {image.shape[1] * DEFAULT_FACTOR}x{image.shape[0] * DEFAULT_FACTOR}")
        if note not in notes:  # once for a burst's frames
            notes.append(note)
    if options["factor"] > MAX_FACTOR:
        raise InputError(f"--factor {options['factor']}: at most {MAX_FACTOR} (the restored image "
                         f"would be {image.shape[1] * options['factor']}x"
                         f"{image.shape[0] * options['factor']})")
    if info.fits is not None and options["factor"] > 1:
        f = options["factor"]
        line = (f"{info.path}: each pixel's value is kept as it is (a surface brightness), so the output's pixels "
                f"sum to {f * f} times the input's (x{f}): divide the output by {f * f} for counts per pixel, as "
                "aperture photometry of counts needs")
        if line not in notes:
            notes.append(line)
    return lowres(image, options["factor"], kernel=options["downsampler"]), []


ONE_VALUE = 2 / 255
"""The spread (largest minus least, per channel, 0-1 scale) within which the pixels a mask keeps count
as one value: where they do and the others do not, a note asks whether the mask is inverted (they
are then the scratches' or the blotches' colour; a new user's inverted mask ran silently and came
back at 6.8 dB, where black kept pixels had been the only case noted)."""


def transparent_holes(info: Any) -> bool:
    """Whether an image read with ``info`` (:class:`linr.images.ImageInfo`) has holes of its own:
    pixels below half opacity (a FITS file's undefined ones read as such), which ``--masked`` takes
    as the missing pixels without a mask."""
    return info.alpha is not None and bool((info.alpha < 0.5).any())


def _build_masked(image, info, options, notes):
    """The keep-mask from ``--mask``, from the image's alpha (transparent = missing), or both."""
    mask_path = options.get("mask")
    holes = transparent_holes(info)
    whole_frame = info.fits is not None and info.alpha is not None and not holes  # a FITS series' frame without holes
    if not mask_path and not holes and not whole_frame:
        opaque = f"{info.path} has an alpha channel, but no pixel is transparent; " if info.alpha is not None else ""
        raise InputError(f"{opaque}--masked needs --mask MASK (white = observed), or an image whose "
                         "alpha channel marks the holes (transparent = missing; in FITS, undefined pixels: "
                         "NaN or BLANK)")
    white = options.get("mask_white") or "observed"
    if options.get("mask_white") and not mask_path:
        raise InputError(f"--mask-white {white} says what a mask file's white marks: it needs --mask MASK (the "
                         "photo's own transparent pixels are always the missing ones)")
    try:
        mask = read_mask(mask_path, image.shape[:2], notes=notes, white=white) if mask_path else None
    except InputError as exc:
        if (turned := quarter_turned(info.path)) and f"is {image.shape[0]}x{image.shape[1]} but" in str(exc):
            raise InputError(f"{exc}: the photo is read upright by its EXIF orientation {turned} (stored "
                             f"{image.shape[0]}x{image.shape[1]}, as the mask is): turn the mask as the photo shows, "
                             "or draw it on the photo as a viewer shows it") from None
        raise
    if whole_frame:  # all observed (but for a given mask's black pixels); the output has no holes
        mask, info.alpha = np.ones(image.shape[:2], bool) if mask is None else mask, None
    if holes:
        by_alpha = info.alpha >= 0.5
        mask = by_alpha if mask is None else mask & by_alpha
        if not mask.any():
            raise InputError(f"{info.path}: mask and alpha together keep no pixels")
        both = f", and so are the mask's black pixels: {mask.mean():.1%} of the pixels observed" if mask_path else ""
        what = "undefined pixels (NaN or BLANK)" if info.fits is not None else "transparent pixels"
        notes.append(f"{info.path}: {what} ({1 - by_alpha.mean():.1%}) taken as missing{both}; "
                     f"the output {'defines every pixel' if info.fits is not None else 'is opaque'}")
        info.alpha = None
    if np.asarray(mask).all():
        notes.append(f"{info.path}: every pixel is observed, so there is nothing to fill in: with the default "
                     "refinement the image itself is the result, with no fit (--refine none fits a network that "
                     "reproduces it)")
    keep = np.asarray(mask, bool)
    _said_if_noisy(np.asarray(image), keep, info.path, notes)
    if mask_path:
        if not _said_if_inverted(np.asarray(image), keep, info.path, mask_path, notes, white):
            _said_if_mostly_missing(keep, mask_path, notes, white)
    return masked(image, np.asarray(mask)), [mask_path] if mask_path else []


MASKED_NOISE_SAID_FROM = 12.0
"""Noise (std, 0-255 scale) measured on a photo with missing pixels from which a note says that
inpainting keeps its observed pixels as they are, noise included (:func:`_said_if_noisy`): above
what the measure gives on the 20 shared test photos without noise (up to 10.1, baboon's fur; 5.4
peppers; most 1-3), below what it gives them at sigma 15 (13.6 to 19.4, clipped at black and white)."""


def observed_noise_sigma(image: np.ndarray, keep: np.ndarray) -> tuple[float, int]:
    """Gaussian noise std (0-255 scale) of an (H, W, C) image on [0, 1] measured on its observed
    pixels alone (``keep``): median(|d|) / 0.6745 of the diagonal Haar detail ``d`` of each 2 x 2
    block of which every pixel is observed (its std is the noise's), per channel, averaged; and the
    count of such blocks. (:func:`linr.noise.estimate_noise_sigma`'s db2 reaches 4 x 4 pixels and
    has no mask; on the shared photos the two agree within 0.8 of 255.)"""
    h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    x, k = image[:h, :w].astype(np.float32), keep[:h, :w]
    whole = k[0::2, 0::2] & k[1::2, 0::2] & k[0::2, 1::2] & k[1::2, 1::2]
    count = int(whole.sum())
    if not count:
        return 0.0, 0
    d = (x[0::2, 0::2] - x[1::2, 0::2] - x[0::2, 1::2] + x[1::2, 1::2])[whole] / 2
    return float(255 * np.median(np.abs(d), axis=0).mean() / 0.6745), count


def _said_if_noisy(image: np.ndarray, keep: np.ndarray, path: Any, notes: list[str]) -> None:
    """A note where a photo with missing pixels carries noise (:data:`MASKED_NOISE_SAID_FROM`,
    :func:`observed_noise_sigma`, from 256 whole blocks): the inpainting keeps the observed pixels,
    noise and all, and a second restoration as a noisy photo removes it (a new user's grainy,
    scratched scan came back with its grain and no word)."""
    if keep.all():
        return
    sigma, blocks = observed_noise_sigma(image, keep)
    if blocks >= 256 and sigma >= MASKED_NOISE_SAID_FROM:
        notes.append(f"{path}: noise of about {sigma:.0f} of 255 measured on its observed pixels: inpainting keeps "
                     "them as they are, noise and all; to remove it, restore the result as a noisy photo after "
                     "(linr restore --noisy RESULT)")


MOSTLY_MISSING_REACH = 4
"""Pixels (px) beyond which a missing pixel is far from every observed one (:func:`_said_if_mostly_missing`)."""


def _said_if_mostly_missing(keep: np.ndarray, mask_path: str, notes: list[str], white: str) -> None:
    """A note where the mask marks most of the photo missing, mostly in regions more than
    :data:`MOSTLY_MISSING_REACH` px from any observed pixel: what a mask drawn the other way round
    (damage in white, as many inpainting tools draw it) gives, and little can be restored from it.
    Random masks (the paper's keep 10% of the pixels, each missing pixel a pixel or two from an
    observed one) say nothing. A new user's inverted scratch mask ran silently and came back at 6.3 dB."""
    from scipy.ndimage import distance_transform_edt

    missing = 1 - keep.mean()
    if missing <= 0.5:
        return
    far = float((distance_transform_edt(~keep) > MOSTLY_MISSING_REACH).mean()) / missing
    if far <= 0.5:
        return
    other = "missing" if white == "observed" else "observed"
    notes.append(f"{mask_path}: marks {missing:.0%} of the pixels missing, most of them more than "
                 f"{MOSTLY_MISSING_REACH} px from any observed one (white = {white}): if the mask marks the damage "
                 f"in {'white' if white == 'observed' else 'black'}, pass --mask-white {other}")


def _said_if_inverted(image: np.ndarray, keep: np.ndarray, path: Any, mask_path: str, notes: list[str],
                      white: str = "observed") -> bool:
    """A note where every pixel the mask keeps is black, or of nearly one value (:data:`ONE_VALUE`)
    while the others vary: the mask is likely inverted. The missing pixels are read only then.
    Whether it was said."""
    kept = image[keep]
    if not kept.size or keep.all():
        return False
    black = not kept.any()
    if not black and np.ptp(kept, axis=0).max() > ONE_VALUE:
        return False
    rest = image[~keep]
    if not (rest.any() if black else np.ptp(rest, axis=0).max() > ONE_VALUE):  # the damage's colour
        return False
    value = "black" if black else "of nearly one value (" + ", ".join(
        f"{v * 255:.0f}" for v in np.atleast_1d(kept.reshape(kept.shape[0], -1)[0])) + " of 255)"
    other = "missing" if white == "observed" else "observed"
    notes.append(f"{path}: every pixel the mask keeps is {value} while others are not: is the mask inverted? "
                 f"({mask_path}: white = {white}; --mask-white {other} reads it the other way round)")
    return True


def _build_blurred(image, info, options, notes):
    spec = options.get("kernel")
    if not spec:
        raise InputError("--blurred needs --kernel SPEC (gaussian:WIDTH:SIGMA or a file)")
    kernel = parse_kernel(spec)
    extra = [spec] if Path(spec).exists() else []
    given = kernel.shape
    trimmed = trim_zero_border(kernel, NEGLIGIBLE_KERNEL)
    if trimmed.shape != kernel.shape:
        exact = trimmed.shape == trim_zero_border(kernel).shape
        notes.append(f"{spec}: the kernel's {'all-zero border' if exact else 'border of zeros and values under a millionth of its peak'} "
                     f"trimmed ({kernel.shape[1]}x{kernel.shape[0]} to "
                     f"{trimmed.shape[1]}x{trimmed.shape[0]}, as much on each side): "
                     f"{'the same blur' if exact else 'the same blur but for those values'}, and the fit reads "
                     "no further beyond the frame than the blur reaches")
        kernel = trimmed
    kh, kw = kernel.shape
    h, w = image.shape[:2]
    if kernel_covers_photo(kernel, image.shape):
        cut = "" if given == kernel.shape else f", {given[1]}x{given[0]} less its border under a millionth of its peak"
        raise InputError(f"{spec}: the kernel ({kw}x{kh}{cut}) is as large as the blurred photo ({w}x{h}) or larger"
                         + (": a blur that wide cannot be undone from this photo (or a photo given as the kernel? "
                            "--kernel takes the blur's PSF, a small image of one blurred point)" if extra else
                            "; give a smaller WIDTH (gaussian:WIDTH:SIGMA, WIDTH below the photo's sides)"))
    if 2 * kh > h or 2 * kw > w:
        notes.append(f"{spec}: the kernel ({kw}x{kh}) is more than half the blurred photo's side ({w}x{h}): a blur "
                     "that wide leaves little to restore, and the fit reads far beyond the frame")
    total = float(np.sum(kernel))
    if total > 0 and abs(total - 1.0) > 1e-3 and Path(spec).suffix.lower() in (".npy", ".tif", ".tiff", ".fits", ".fit"):
        # a measured PSF in its units (counts): said, so a user knows it was meant; an image's grey levels go unsaid
        notes.append(f"{spec}: the kernel sums to {total:.4g}: divided by that sum (a blur keeps the photo's flux; "
                     "only its shape matters)")
    for note in (negative_kernel_note(kernel), kernel_offset_note(kernel), kernel_floor_note(kernel)):
        if note:
            notes.append(f"{spec}: {note}")
    if kh % 2 == 0 or kw % 2 == 0:
        notes.append(f"kernel {kw}x{kh} has an even side: its centre is taken at row {kh // 2}, "
                     f"column {kw // 2} (0-based), half a pixel off the middle")
    if extra and Path(spec).suffix.lower() != ".npy":
        from .images import read_image

        if read_image(spec)[1].channels > 1:
            notes.append(f"{spec}: a colour kernel image; its channels are averaged")
    return blurred(image, kernel, boundary=options.get("boundary")), extra


def _simulate_noisy(clean, params, seed):
    from .simulate import add_gaussian_noise

    return {"image": add_gaussian_noise(clean, params["sigma"], seed=seed)}


def _simulate_lowres(clean, params, seed):
    from .simulate import lanczos_downscale

    return {"image": lanczos_downscale(clean, params["factor"])}


def _simulate_masked(clean, params, seed):
    from .simulate import bernoulli_mask

    mask = bernoulli_mask(clean.shape[:2], params["keep"], seed=seed)
    return {"image": (clean * mask[..., None]).astype(np.float32), "mask": mask}


def _simulate_blurred(clean, params, seed):
    from .operators import gaussian_kernel
    from .simulate import blur_image

    kernel = gaussian_kernel(*params["blur"])
    return {"image": blur_image(clean, kernel, seed=seed), "kernel": kernel}


_SIMULATIONS = {
    "noisy": Simulation(_simulate_noisy, lambda extras, image, params: noisy(image),
                        lambda p: f"noise sigma {p['sigma']:g}"),
    "lowres": Simulation(_simulate_lowres, lambda extras, image, params: lowres(image, params["factor"]),
                         lambda p: f"x{p['factor']} lanczos", seeded=False),
    "masked": Simulation(_simulate_masked, lambda extras, image, params: masked(image, extras["mask"]),
                         lambda p: f"random mask {p['keep']:.0%} kept"),
    "blurred": Simulation(_simulate_blurred,
                          # blurred circularly (blur_image's default, as the paper): the observation says so
                          lambda extras, image, params: blurred(image, extras["kernel"], boundary="circular"),
                          lambda p: f"Gaussian blur {p['blur'][0]}x{p['blur'][0]} sigma {p['blur'][1]} "
                                    "+ noise sqrt(2)"),
}


KINDS: dict[str, Kind] = {
    "noisy": Kind("noisy", "a noisy image", "denoise", True, _build_noisy, (
        KindOption("--noise", "noise", "noise model of the noisy images, which picks the data term: "
                   "gaussian (default; squared error), poisson (photon counts) or "
                   "poisson-gaussian (photon counts plus read noise)", choices=NOISE_MODELS,
                   default="gaussian"),
        KindOption("--peak", "peak", "photons a white pixel collected (the image is counts / PEAK; "
                   "with --noise poisson or poisson-gaussian; default: estimated from each image)",
                   type=positive_float, metavar="PHOTONS"),
        KindOption("--read-noise", "read_noise", "read noise std on the 0-255 scale (with --noise "
                   "poisson-gaussian; default: estimated from each image)", type=nonneg_float,
                   metavar="SIGMA"),
        KindOption("--photon-method", "photon_method", "how photon noise (--noise poisson or poisson-gaussian) "
                   "is restored: anscombe (restore the photo's Anscombe transform as a photo with Gaussian "
                   "noise, then invert it; the default for one noisy photo alone, and for an aligned burst, whose "
                   "frames are averaged after the transform) or likelihood (fit the photon likelihood; the default "
                   "for frames to --register and joint fits)",
                   choices=PHOTON_METHOD_CHOICES),
    ), _SIMULATIONS["noisy"], _noisy_frame_notes, on_dim_integers=_noisy_on_dim_integers),
    "lowres": Kind("lowres", "a low-resolution image (use with --factor)", "sr", False, _build_lowres, (
        KindOption("--factor", "factor", "super-resolution factor, any integer >= 1 (default 4, said in a note)",
                   type=positive_int),
        KindOption("--downsampler", "downsampler",
                   "downsampling kernel of the low-res observation (default lanczos2)",
                   choices=("lanczos2", "bicubic", "box"), default="lanczos2"),
    ), _SIMULATIONS["lowres"], transparent="left-out"),
    "masked": Kind("masked", "an image with missing pixels (use with --mask, or give holes as "
                   "transparent pixels of an image with alpha)", "inpaint", False, _build_masked, (
        KindOption("--mask", "mask", "keep-mask image: white = observed (or opaque = observed, "
                   "when the mask file has transparent pixels); a colour pixel is observed only where it is "
                   "white", metavar="MASK", path=True),
        KindOption("--mask-white", "mask_white", "what the mask's white marks: observed (the default) or "
                   "missing (a mask that marks the damage in white, as many inpainting tools draw theirs)",
                   choices=("observed", "missing")),
    ), _SIMULATIONS["masked"], transparent="holes"),
    "blurred": Kind("blurred", "a blurred image (use with --kernel)", "deblur", False, _build_blurred, (
        KindOption("--kernel", "kernel", "blur kernel: gaussian:WIDTH:SIGMA, a .npy array or an image file (.png, .tif, .fits)",
                   metavar="SPEC", path=True),
        KindOption("--boundary", "boundary", "blur boundary: free (the default for a blurred photo alone, "
                   "whole or in tiles, or beside one noisy photo of it: nothing assumed beyond the frame, the fit "
                   "renders the frame, or each tile's window, grown by the kernel's reach; chosen, also beside other "
                   "photos, not measured there), reflect (mirrored borders; the default in other joint fits and with "
                   "--preset fast) or circular (images blurred periodically, as the paper's "
                   "were; the default with --preset paper)",
                   choices=("free", "circular", "reflect")),
    ), _SIMULATIONS["blurred"], transparent="left-out", on_dim_integers=_blurred_on_dim_integers),
}
"""Every observation kind by name: a new kind is one entry (and its builder)."""


def kind_of(observation: Observation) -> Kind | None:
    """The registered kind of an observation, or None (one built by hand with another name)."""
    return KINDS.get(observation.kind)
