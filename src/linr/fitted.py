"""A fitted image model: render it at any size, save it to a small file, load it again.

An INR is a function of coordinates, so the restored image exists at every resolution: rendering
at scale ``s`` evaluates the network on a denser grid over the same extent
(:func:`linr.models.coordinate_axes`); at scale 1 that grid is the fit's own and the render is
the fit's output, value for value. Rendering runs in chunks of pixels whose coordinates are made
chunk by chunk, so the network's memory stays that of one chunk whatever the size (the output
image itself is held whole: ``size`` x channels float32).

    >>> result = linr.restore([linr.noisy(y)])                      # doctest: +SKIP
    >>> big = result.render(scale=2.5)          # (2.5 H, 2.5 W, C) on [0, 1], unclipped
    >>> result.save_model("model.pt")                               # doctest: +SKIP
    >>> model, info = load_model("model.pt"); model.render(size=(1024, 768))   # doctest: +SKIP

The file (``torch.save`` of plain dicts, lists, strings, numbers and tensors, read back with
``weights_only=True``, no pickled classes) holds the model's configuration and parameters, the
restored size and channels, the fit's precision, and how values are stored: the network's
output ``v`` is the image ``(v + 1) / 2`` on [0, 1], mapped to the input's units by its value
range (:class:`linr.images.ValueRange`), written at its bit depth and, for TIFF, with its layout
and metadata. A model fitted to a photo's Anscombe transform (photon noise, :mod:`linr.stabilise`)
keeps the transform and renders through its inverse (files of version 2; version 1 files have
none); one fitted to a clipped photo with Gaussian noise (:mod:`linr.clipping`) renders through
the inverse of its expected clipped value (files of version 3). Parameters of a model the fast
engine runs are stored as the engine computes with them (hidden layers scaled by their omega_0,
:meth:`linr.engine.FastSiren.folded_state`), so a loaded model renders exactly what the fit
rendered.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .clipping import ClippedGaussian
from .engine import DEFAULT_CHUNK_PIXELS, FastSiren, check_precision
from .errors import InputError
from .fits import FitsHeader
from .images import Density, ImageInfo, ValueRange, existing_file, resized_alpha
from .metrics import json_ready
from .models import MODEL_FAMILIES, ModelConfig, build_model, coordinate_axes
from .photon import AnscombeTransform
from .problem import resolve_device
from .tiff import TiffLayout

__all__ = ["FittedModel", "save_model", "load_model", "render_model", "render_size", "FORMAT", "FORMAT_VERSION",
           "MAX_RENDER_PIXELS"]

FORMAT = "linr-model"
FORMAT_VERSION = 3
"""Version of the model file; a file of a later version is refused, not guessed at. Version 2
added the Anscombe transform a model renders through, version 3 the clipping inverse; a file is
written with the lowest version that holds it (1 without either, which every linr reads)."""
READ_VERSIONS = (1, 2, 3)

MAX_RENDER_PIXELS = 2**28
"""Largest render (268 Mpx, e.g. 16384 x 16384): the output image is held in memory whole."""

CHUNK_PIXELS = DEFAULT_CHUNK_PIXELS
"""Pixels per chunk of a render: :attr:`linr.config.FitConfig.chunk_pixels`' default, so that a
scale-1 render repeats the fit's own chunks."""


@dataclass
class FittedModel:
    """A fitted image model and what rendering it needs."""

    model: ModelConfig
    parameters: dict[str, torch.Tensor]
    """On the CPU. For an engine model (SIREN, Gauss): :meth:`FastSiren.folded_state`; otherwise
    the module's ``state_dict``."""
    shape: tuple[int, int]
    """(height, width) of the restored image: the grid the model was fitted on."""
    channels: int
    precision: str = "float32"
    """Matmul precision of the fit's hidden layers (renders use it where the device has it)."""
    chunk_pixels: int = CHUNK_PIXELS
    photon: AnscombeTransform | None = None
    """The transform of a photo with photon noise the model was fitted to (:mod:`linr.stabilise`):
    renders go through its inverse. None: the model renders the image itself."""
    clipping: ClippedGaussian | None = None
    """The clipping of the photo with Gaussian noise the model was fitted to (:mod:`linr.clipping`):
    renders go through the inverse of its expected clipped value."""

    @property
    def output_map(self) -> AnscombeTransform | ClippedGaussian | None:
        """What renders go through (its ``inverse``), or None."""
        return self.photon if self.photon is not None else self.clipping

    @property
    def version(self) -> int:
        """The lowest file version that holds this model."""
        return 3 if self.clipping is not None else 2 if self.photon is not None else 1

    @property
    def engine(self) -> bool:
        """Whether the parameters are the fast engine's (folded)."""
        return MODEL_FAMILIES[self.model.name].engine

    @classmethod
    def from_engine(cls, config: ModelConfig, state: dict[str, torch.Tensor], shape: tuple[int, int],
                    channels: int, precision: str, chunk_pixels: int) -> "FittedModel":
        params = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
        return cls(config, params, (int(shape[0]), int(shape[1])), channels, precision, chunk_pixels)

    @classmethod
    def from_module(cls, config: ModelConfig, module: torch.nn.Module, shape: tuple[int, int],
                    channels: int, parameters: list[torch.Tensor] | None = None,
                    chunk_pixels: int = CHUNK_PIXELS) -> "FittedModel":
        """From a plain module, with ``parameters`` (in ``module.parameters()`` order) in place of
        its own when given (the iterate a stop rule chose)."""
        state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
        if parameters is not None:
            for (name, _), value in zip(module.named_parameters(), parameters):
                state[name] = value.detach().to("cpu", copy=True)
        return cls(config, state, (int(shape[0]), int(shape[1])), channels, "float32", chunk_pixels)

    def module(self) -> torch.nn.Module:
        """The model as a plain :class:`torch.nn.Module` (coordinates (N, 2) -> values (N, C)
        on the [-1, 1] scale), parameters unfolded for an engine model."""
        with torch.random.fork_rng(devices=[]):
            module = build_model(self.model, out_channels=self.channels)
        state = self.parameters
        if self.engine:
            net = FastSiren(module).load_folded_state(state)
            state = net.state_dict()
        module.load_state_dict(state)
        return module

    def _forward(self, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
        """The network on ``device`` as a function of (n, 2) coordinates -> (n, C) values: the
        fast engine at the fit's precision (float32 where the device lacks it), or the module."""
        with torch.random.fork_rng(devices=[]):
            module = build_model(self.model, out_channels=self.channels)
        if not self.engine:
            module.load_state_dict(self.parameters)
            return module.to(device).eval()
        precision = self.precision
        try:
            check_precision(precision, device)
        except ValueError:
            precision = "float32"  # e.g. a tf32 fit rendered on a CPU
        net = FastSiren(module, precision=precision).to(device).load_folded_state(self.parameters)
        return lambda coords: net.forward(coords, save=False)

    def render(self, *, scale: float | None = None, size: tuple[int, int] | None = None,
               device: str = "cpu") -> np.ndarray:
        """The image at ``scale`` times the fitted size, or at ``size`` = (height, width), over
        the same extent (neither: the fitted size). Returns (H', W', C) float32 on the [0, 1]
        scale, unclipped, like :attr:`linr.fit.FitResult.image`. Smaller than the fitted size on
        a side, each pixel is the mean of kh x kw samples over its own footprint (per side the smallest
        whole number that samples at least as finely as the fit's pixels: :func:`supersampling`; at
        most the fit's pixels and the render's together per side), not one sample at its centre, which
        aliases what the network learnt finer than the render's pixels."""
        out_h, out_w = render_size(self.shape, scale=scale, size=size)
        kh, kw = supersampling(self.shape, (out_h, out_w))
        if kh * kw > 1:
            fine = self._render_grid(out_h * kh, out_w * kw, device)
            return fine.reshape(out_h, kh, out_w, kw, self.channels).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
        return self._render_grid(out_h, out_w, device)

    def _render_grid(self, out_h: int, out_w: int, device: str) -> np.ndarray:
        """The network at the centres of an ``out_h`` x ``out_w`` grid over the fitted extent."""
        dev = resolve_device(device)
        rows, cols = coordinate_axes(*self.shape, size=(out_h, out_w), device=dev)
        forward = self._forward(dev)
        image = np.empty((out_h * out_w, self.channels), dtype=np.float32)
        mapped = self.output_map  # what each chunk is rendered through, if anything
        chunk = self.chunk_pixels
        with torch.no_grad():
            # The fit's own chunks (flat pixel order), coordinates made per chunk.
            for start in range(0, out_h * out_w, chunk):
                index = torch.arange(start, min(start + chunk, out_h * out_w), device=dev)
                coords = torch.stack([rows[index // out_w], cols[index % out_w]], dim=1)
                values = forward(coords)
                chunk_image = ((values + 1) / 2).float().cpu().numpy()
                image[start : start + len(index)] = chunk_image if mapped is None else mapped.inverse(chunk_image)
        return image.reshape(out_h, out_w, self.channels)

    def to_dict(self) -> dict[str, Any]:
        return {"model": dataclasses.asdict(self.model), "engine": self.engine,
                "parameters": self.parameters, "shape": list(self.shape), "channels": self.channels,
                "precision": self.precision, "chunk_pixels": self.chunk_pixels,
                **({} if self.photon is None else {"photon": dataclasses.asdict(self.photon)}),
                **({} if self.clipping is None else {"clipping": dataclasses.asdict(self.clipping)})}


def supersampling(shape: tuple[int, int], out: tuple[int, int]) -> tuple[int, int]:
    """Samples (down, across) of each pixel of a render of ``out`` = (height, width) of a fit of
    ``shape``: per side 1 at the fitted size or larger, else the smallest whole k with ``k * out`` at
    least the fitted side (a render at a third of the size: 3 x 3 samples a pixel); the samples' grid
    is then under ``shape + out`` on each side."""
    return tuple(max(1, -(-fitted // wanted)) for fitted, wanted in zip(shape, out))


def render_size(shape: tuple[int, int], *, scale: float | None = None,
                size: tuple[int, int] | None = None) -> tuple[int, int]:
    """(height, width) of a render of an image of ``shape`` at ``scale`` (rounded, at least 1)
    or at ``size`` = (height, width); one-line errors for a bad or too large request."""
    if scale is not None and size is not None:
        raise InputError("give a render scale or a render size, not both")
    if size is not None:
        values = list(size) if isinstance(size, (tuple, list)) else None
        if values is None or len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                                         for v in values):
            raise InputError(f"render size must be (height, width) in whole pixels, got {size!r}")
        out_h, out_w = (int(v) for v in values)
        if out_h < 1 or out_w < 1:
            raise InputError(f"render size must be at least 1x1, got {out_w}x{out_h} (width x height)")
    elif scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) or \
                not (scale > 0 and np.isfinite(scale)):
            raise InputError(f"render scale must be a positive number, got {scale!r}")
        out_h, out_w = max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))
    else:
        out_h, out_w = shape
    if out_h * out_w > MAX_RENDER_PIXELS:
        raise InputError(f"a render of {out_w}x{out_h} is {out_h * out_w / 1e6:.0f} Mpx; at most "
                         f"{MAX_RENDER_PIXELS / 1e6:.0f} Mpx (the image is held in memory whole)")
    return out_h, out_w


def save_model(path: str | os.PathLike, fitted: FittedModel, info: ImageInfo | None = None, *,
               force: bool = False, settings: dict[str, Any] | None = None) -> Path:
    """Write ``fitted`` and how its images are stored (``info``: the input's bit depth, value
    range, TIFF layout, colour profile and alpha channel, which a render resizes to its own size;
    None: 8-bit, values on [0, 1], opaque) to ``path`` atomically. ``settings``: the fit's settings, kept for
    the record."""
    from . import __version__
    from .images import write_atomically

    path = check_model_path(path, force=force)
    info = info or ImageInfo("", 8, fitted.channels)
    data = {
        "format": FORMAT,
        "version": fitted.version,
        "linr": __version__,
        **fitted.to_dict(),
        "values": {
            "network_to_image": "(v + 1) / 2" if fitted.output_map is None else
                                "AnscombeTransform(**photon).inverse((v + 1) / 2)" if fitted.photon is not None else
                                "ClippedGaussian(**clipping).inverse((v + 1) / 2)",
            "value_range": None if info.value_range is None else info.value_range.to_dict(),
            "bit_depth": info.bit_depth,
        },
        "tiff": None if info.tiff is None else json.dumps(info.tiff.describe()),
        "alpha": _stored_alpha(info, fitted.shape),
        "icc_profile": None if not info.icc_profile else torch.frombuffer(bytearray(info.icc_profile), dtype=torch.uint8),
        "density": None if info.density is None else info.density.describe(),
        "fits": None if info.fits is None else {"cards": list(info.fits.cards), "size": list(info.fits.size),
                                                "more_axes": list(info.fits.more_axes)},
        "source": info.path,
        "settings": json.dumps(json_ready(settings or {})),  # JSON text: nothing to unpickle
    }
    return write_atomically(path, lambda tmp: torch.save(data, tmp))


def _stored_alpha(info: ImageInfo, shape: tuple[int, int]) -> torch.Tensor | None:
    """The input's alpha as the model file keeps it, at the fit's ``shape`` (a low-res photo's resized
    as its restored output's is: :func:`linr.images.resized_alpha`): 8-bit where the input was, else float32."""
    if info.alpha is None:
        return None
    alpha = np.asarray(info.alpha, np.float32)
    if alpha.shape != tuple(shape):
        alpha = resized_alpha(alpha, tuple(shape))
    if info.bit_depth == 8:
        return torch.from_numpy(np.round(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8))
    return torch.from_numpy(np.ascontiguousarray(alpha))


def _read_fits_header(stored: Any) -> FitsHeader | None:
    """A FITS input's header as a model file keeps it (files without one, or older: None)."""
    if stored is None:
        return None
    return FitsHeader(tuple(str(card) for card in stored["cards"]), (int(stored["size"][0]), int(stored["size"][1])),
                      tuple(int(n) for n in stored.get("more_axes", ())))


def _read_alpha(stored: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """The alpha a model file keeps (:func:`_stored_alpha`) on [0, 1]; files without one: None."""
    if stored is None:
        return None
    alpha = stored.numpy()
    unit = alpha.astype(np.float32) / 255.0 if alpha.dtype == np.uint8 else alpha.astype(np.float32)
    if alpha.shape == tuple(shape):
        return unit
    factor = shape[0] // alpha.shape[0] if alpha.ndim == 2 and alpha.shape[0] else 0
    if factor > 1 and tuple(shape) == (alpha.shape[0] * factor, alpha.shape[1] * factor):
        return resized_alpha(unit, tuple(shape))  # a low-res photo's, as files saved before the sixty-second session keep it
    raise ValueError(f"alpha of {alpha.shape} for an image of {tuple(shape)}")


def check_model_path(path: str | os.PathLike, *, force: bool = False,
                     protect: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Fail before any work when a model file could not be written to ``path``."""
    from .images import check_new_file

    path = Path(path)
    if path.suffix.lower() != ".pt":
        raise InputError(f"{path}: a model file is named FILE.pt")
    return check_new_file(path, force=force, protect=protect)


def load_model(path: str | os.PathLike) -> tuple[FittedModel, ImageInfo]:
    """Read a file of :func:`save_model`: the model and how its images are stored (an
    :class:`ImageInfo`, with the input's alpha at the fit's size where it had one). One-line errors for a file that is not one, or is of a
    later version."""
    import warnings

    path = existing_file(path, "a model file")
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols in files that are not its own
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a file of anything else fails in many ways (KeyError on text)
        raise InputError(f"{path}: not a linr model file ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: not a linr model file (no '{FORMAT}' header)")
    version = data.get("version")
    if version not in READ_VERSIONS:
        raise InputError(f"{path}: a linr model file of version {version} (made by linr "
                         f"{data.get('linr', '?')}); this linr {_version()} reads versions "
                         f"{', '.join(map(str, READ_VERSIONS))}")
    try:
        config = ModelConfig(**data["model"])
        if config.name not in MODEL_FAMILIES or MODEL_FAMILIES[config.name].engine != data["engine"]:
            raise ValueError(f"model {config.name!r}")
        photon, clipping = data.get("photon"), data.get("clipping")
        fitted = FittedModel(config, dict(data["parameters"]), tuple(data["shape"]), int(data["channels"]),
                             str(data["precision"]), int(data["chunk_pixels"]),
                             None if photon is None else AnscombeTransform(
                                 float(photon["peak"]), float(photon["read"]), float(photon["top"]),
                                 bool(photon.get("white", False)), bool(photon.get("black", False))),
                             None if clipping is None else ClippedGaussian(
                                 tuple(float(v) for v in clipping["sigmas"]),
                                 tuple(float(v) for v in clipping["weights"]),
                                 bool(clipping["black"]), bool(clipping["white"]),
                                 None if clipping.get("measured") is None
                                 else tuple(float(v) for v in clipping["measured"])))
        fitted._forward(torch.device("cpu"))  # the parameters fit the configuration
        values = data["values"]
        value_range = None if values["value_range"] is None else ValueRange(**values["value_range"])
        tiff = None if data["tiff"] is None else TiffLayout.from_description(json.loads(data["tiff"]))
        profile = data.get("icc_profile")
        info = ImageInfo(str(data.get("source", "")), int(values["bit_depth"]), fitted.channels,
                         _read_alpha(data.get("alpha"), fitted.shape), value_range, tiff,
                         None if profile is None else bytes(profile.numpy().astype(np.uint8)),
                         Density.from_record(data.get("density")), _read_fits_header(data.get("fits")))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{path}: a damaged linr model file ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return fitted, info


def render_model(path: str | os.PathLike, *, scale: float | None = None,
                 size: tuple[int, int] | None = None, device: str = "cpu") -> np.ndarray:
    """Load a model file and render it (see :meth:`FittedModel.render`): (H', W', C) float32 on
    [0, 1], unclipped; ``load_model(path)[1]`` says how to store it in the input's units."""
    fitted, _ = load_model(path)
    return fitted.render(scale=scale, size=size, device=device)


def _version() -> str:
    from . import __version__

    return __version__
