"""Image models: implicit neural representations mapping coordinates (N, 2) to values (N, C).

A model does not own its grid: :func:`coordinate_grid` builds the paper's grid for any size, so
super-resolution renders on the high-resolution grid while the operator maps down to the
observation. Every model is built through :func:`build_model`; adding an architecture is one class
and one registry line.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.autograd.graph import increment_version

from .errors import InputError

__all__ = [
    "ModelConfig",
    "Siren",
    "GaussNet",
    "MLP",
    "Activation",
    "Sine",
    "Gaussian",
    "VariableSine",
    "Finer",
    "Wire",
    "ScaledLayer",
    "ModelFamily",
    "MODEL_FAMILIES",
    "PositionalEncoding",
    "MODELS",
    "build_model",
    "coordinate_grid",
    "coordinate_axes",
]


def coordinate_grid(
    height: int, width: int, *, device: torch.device | str | None = None,
    margins: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> torch.Tensor:
    """The paper's sampling grid for an image of ``height`` x ``width`` pixels.

    A square ``linspace(-1, 1, max(H, W))`` grid, centre-cropped on the shorter axis, so pixel
    spacing is equal on both axes (a 768x512 image spans rows within about +-0.667).

    ``margins`` (top, bottom, left, right): that many more pixels beyond the image on each side,
    at the same spacing (beyond [-1, 1]): the grid of a fit that renders past the frame (a blur
    with free edges, :attr:`linr.operators.Operator.margins`), whose frame is the paper's grid value
    for value, so that its model renders the frame unchanged.

    Returns:
        Tensor of shape ((H + top + bottom) * (W + left + right), 2), float32, (row, col) order,
        row-major flattening.
    """
    rows, cols = coordinate_axes(height, width, device=device)
    top, bottom, left, right = (int(m) for m in margins)
    if top or bottom or left or right:
        step = 2.0 / (max(height, width) - 1) if max(height, width) > 1 else 2.0
        rows, cols = _grown(rows, top, bottom, step), _grown(cols, left, right, step)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)
    return grid.reshape(-1, 2)


def _grown(axis: torch.Tensor, before: int, after: int, step: float) -> torch.Tensor:
    """``axis`` with ``before`` and ``after`` more coordinates at ``step`` beyond its ends (its
    own values kept as they are)."""
    if before < 0 or after < 0:
        raise ValueError(f"margins must be >= 0, got {before}, {after}")
    ahead = axis[0].double() - step * torch.arange(before, 0, -1, dtype=torch.float64, device=axis.device)
    behind = axis[-1].double() + step * torch.arange(1, after + 1, dtype=torch.float64, device=axis.device)
    return torch.cat([ahead.to(axis.dtype), axis, behind.to(axis.dtype)])


def coordinate_axes(
    height: int, width: int, *, size: tuple[int, int] | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column coordinates of the pixel centres of :func:`coordinate_grid` (``size``
    None), or of a grid of ``size`` = (rows, cols) pixels over the same extent: the rendering of
    an image fitted at ``height`` x ``width`` at another size.

    The fitted grid's pixel centres lie ``d = 2 / (max(H, W) - 1)`` apart, so its pixels cover
    ``H d`` by ``W d`` (pixel edges half a spacing beyond the outer centres). A grid of ``size``
    divides that same extent into ``size`` equal pixels and takes their centres (as an image
    resize with aligned pixel edges does, and as the downsampling operators relate a
    high-resolution grid to its low-resolution observation). At the fitted size it is the fitted
    grid itself, value for value.

    Returns:
        ``rows`` (size[0],) and ``cols`` (size[1],), float32.
    """
    if height < 1 or width < 1:
        raise ValueError(f"grid size must be positive, got {height}x{width}")
    side = max(height, width)
    r0 = (side - height) // 2
    c0 = (side - width) // 2
    if size is None or tuple(size) == (height, width):
        axis = torch.linspace(-1.0, 1.0, side, device=device)
        return axis[r0 : r0 + height], axis[c0 : c0 + width]
    out_h, out_w = (int(v) for v in size)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"grid size must be positive, got {out_h}x{out_w}")
    step = 2.0 / (side - 1) if side > 1 else 2.0

    def axis_of(first: int, count: int, out: int) -> torch.Tensor:
        edge = -1.0 + (first - 0.5) * step  # outer edge of the fitted grid's first pixel
        pitch = count * step / out
        centres = edge + (torch.arange(out, dtype=torch.float64) + 0.5) * pitch
        return centres.to(device=device, dtype=torch.float32)

    return axis_of(r0, height, out_h), axis_of(c0, width, out_w)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the image model (defaults: the paper's SIREN)."""

    name: str = "siren"
    """Registry name (:data:`MODEL_FAMILIES`): siren, gauss, finer, wire, relu, relu_pe, tanh,
    sigmoid, selu."""
    width: int = 256
    """Hidden features per layer."""
    depth: int = 7
    """Number of hidden (activated) layers; the paper's released code builds 1 + 6 = 7."""
    omega_0: float = 30.0
    """SIREN (and FINER) frequency for the first and hidden sine layers (ignored by other activations)."""
    pe_frequencies: int | None = None
    """Octaves of the NeRF positional encoding (relu_pe only; other models hold 10, unused, so that
    their settings read as they always did). None (relu_pe's default): from the side of the image the
    model renders, as the SIREN code base (whose network the paper's released code builds) sets
    them (:func:`nyquist_octaves`: 6 for 256 px, 7 for 512); resolved when a fit starts
    (:meth:`for_image`). The paper does not say its count: this is our reading, chosen over
    NeRF's fixed 10 because it is the one that puts ReLU-PE above plain ReLU, as the paper's
    Table 11 does (BENCHMARKS.md, "Table 11's ReLU-PE")."""
    gauss_scale: float = 10.0
    """``s`` of the Gaussian activation ``exp(-(s x)^2)`` (gauss only)."""
    gabor_omega: float = 20.0
    """``omega`` of WIRE's complex Gabor activation ``exp(i omega z - (s z)^2)`` (wire only; its
    paper's default 20, its super-resolution script 8, its denoising advice 4)."""
    gabor_scale: float = 10.0
    """``s`` of WIRE's complex Gabor activation (wire only; default 10, super-resolution 6,
    denoising 4, as for ``gabor_omega``)."""

    def __post_init__(self) -> None:
        if self.name not in MODEL_FAMILIES:
            raise InputError(f"unknown model {self.name!r}; choose from {', '.join(MODEL_FAMILIES)}")
        if self.pe_frequencies is None and self.name != "relu_pe":  # unused by them: the count they
            object.__setattr__(self, "pe_frequencies", 10)  # always had, so their settings read as before
        for field_name in ("width", "depth", "pe_frequencies"):  # numpy integers too, kept as int
            value = getattr(self, field_name)
            if field_name == "pe_frequencies" and value is None:  # relu_pe's: set from the image when a fit starts
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < int(field_name != "pe_frequencies"):
                raise InputError(f"model {field_name} must be a {'positive' if field_name != 'pe_frequencies' else 'non-negative'} "
                                 f"whole number, got {value!r}")
            object.__setattr__(self, field_name, int(value))
        for field_name in ("omega_0", "gauss_scale", "gabor_omega", "gabor_scale"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
                raise InputError(f"model {field_name} must be a positive number, got {value!r}")
            if not isinstance(value, (int, float)):  # a numpy number: a plain float (Python's kept as given)
                object.__setattr__(self, field_name, float(value))

    def for_image(self, height: int, width: int) -> "ModelConfig":
        """This config for a model that renders ``height`` x ``width`` pixels: what is set from the
        image (``pe_frequencies`` of ``relu_pe`` when None, :func:`nyquist_octaves` of the shorter
        side) resolved; itself when nothing is."""
        if self.name == "relu_pe" and self.pe_frequencies is None:
            return dataclasses.replace(self, pe_frequencies=nyquist_octaves(min(height, width)))
        return self


NUMPY_TRIG_UP_TO_THREADS = 2
"""The fast engine's sines and cosines (:class:`Sine`) on the CPU run through NumPy's vectorised
float32 ``sin``/``cos`` in place (:func:`numpy_sin_cos_`, one piece, one thread) when torch runs on
at most this many threads and NumPy uses AVX-512 (:func:`numpy_avx512`), as measured: on this
project's 2-core AVX-512 CPU, for 74k x 64 values, torch's sine and cosine took 12.0 ms on one
thread and 6.1 ms on two, NumPy's 5.0 ms; a 272-px pilot step took 0.82-0.84x the time on one
thread (idle and beside other runs), 1.02x idle and 0.93x beside other runs on two
(BENCHMARKS.md, '#14 the sines through NumPy'). Up to two threads, so that one process on two
threads and its tiles in one-thread workers compute the same sines (the same image; a 512-px
photo differed by 0.02 dB when only one thread took NumPy's). NumPy's values are within 7e-8 of
the float64 sine and cosine on values up to 15 (torch's within 4e-8): fits differ from torch's by
float32 rounding only."""


def numpy_avx512() -> bool:
    """Whether NumPy's vectorised loops use AVX-512 on this CPU (the case measured for
    :data:`NUMPY_TRIG_UP_TO_THREADS`; elsewhere torch keeps its sines)."""
    global _avx512
    if _avx512 is None:
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as features
        except ImportError:  # NumPy 1.x
            try:
                from numpy.core._multiarray_umath import __cpu_features__ as features
            except ImportError:
                features = {}
        _avx512 = bool(features.get("AVX512F")) and bool(features.get("AVX512_SKX"))
    return _avx512


_avx512: bool | None = None


def numpy_trig(*tensors: torch.Tensor) -> bool:
    """Whether :class:`Sine` computes over ``tensors`` through NumPy in place
    (:data:`NUMPY_TRIG_UP_TO_THREADS`, :func:`numpy_avx512`): contiguous float32 CPU tensors that
    do not require a gradient."""
    return torch.get_num_threads() <= NUMPY_TRIG_UP_TO_THREADS and all(
        t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() and not t.requires_grad
        for t in tensors) and numpy_avx512()


def numpy_sin_cos_(u: torch.Tensor, slope: torch.Tensor | None = None) -> torch.Tensor:
    """``cos(u)`` into ``slope`` (when given) and ``sin(u)`` over ``u`` (returned), by NumPy
    (:func:`numpy_trig` says when). The tensors' versions are bumped as torch's in-place
    functions do, so that autograd still refuses a tensor it saved and that was written over."""
    values = u.numpy()
    if slope is not None:
        np.cos(values, out=slope.numpy())
        increment_version(slope)
    np.sin(values, out=values)
    increment_version(u)
    return u


class Activation:
    """A pointwise activation ``g(u)`` of a scaled layer ``g(scale * (W x + b))``, written so that
    the fast engine (:mod:`linr.engine`) can run any model built of such layers: it folds the
    scale into the weights and needs only ``g`` and its derivative on ``u``."""

    name = "activation"

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def value_(self, u: torch.Tensor) -> torch.Tensor:
        """``g(u)`` written over ``u``; returns ``u``."""
        return u.copy_(self(u))

    def value_and_slope_(self, u: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        """``g'(u)`` into ``slope`` and ``g(u)`` over ``u`` (returned)."""
        raise NotImplementedError


class Sine(Activation):
    """SIREN's ``sin(u)``: slope ``cos(u)``."""

    name = "sine"

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        return torch.sin(u)

    def value_(self, u: torch.Tensor) -> torch.Tensor:
        if numpy_trig(u):
            return numpy_sin_cos_(u)
        return u.sin_()

    def value_and_slope_(self, u: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        if numpy_trig(u, slope):
            return numpy_sin_cos_(u, slope)
        torch.cos(u, out=slope)
        return torch.sin(u, out=u)


class Gaussian(Activation):
    """``exp(-u^2)`` (Ramasinghe and Lucey's Gaussian INR, ``u = s (W x + b)``): slope ``-2 u exp(-u^2)``."""

    name = "gaussian"

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(u * u))

    def value_(self, u: torch.Tensor) -> torch.Tensor:
        return u.mul_(u).neg_().exp_()

    def value_and_slope_(self, u: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        value = torch.exp(-(u * u))
        torch.mul(u, value, out=slope).mul_(-2.0)
        return u.copy_(value)


class VariableSine(Activation):
    """FINER's variable-periodic sine ``sin((|z| + 1) omega z)`` (Liu et al., CVPR 2024), ``z = W x
    + b``, written in ``u = omega z``: ``sin(u (1 + |u| / omega))``. Its factor ``|z| + 1`` is held
    out of the derivative, as FINER's published models hold it by default: slope ``(1 + |u| /
    omega) cos(u (1 + |u| / omega))``. The same on the fast engine and under autograd."""

    name = "variable-sine"

    def __init__(self, omega: float):
        self.omega = float(omega)

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        factor = (1.0 + u.abs() / self.omega).detach()
        return torch.sin(u * factor)

    def value_(self, u: torch.Tensor) -> torch.Tensor:
        return u.mul_(1.0 + u.abs() / self.omega).sin_()

    def value_and_slope_(self, u: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        factor = 1.0 + u.abs() / self.omega
        u.mul_(factor)
        torch.cos(u, out=slope).mul_(factor)
        return u.sin_()


class ScaledLayer(nn.Module):
    """``g(scale * (W x + b))`` for an :class:`Activation` ``g``: the layer kind the fast engine
    serves. ``linear``, ``scale`` and ``activation`` are what the engine reads."""

    def __init__(self, in_features: int, out_features: int, *, scale: float, activation: Activation):
        super().__init__()
        self.scale = float(scale)
        self.activation = activation
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.scale * self.linear(x))


class SineLayer(ScaledLayer):
    """``sin(omega_0 * (W x + b))`` with the SIREN initialisation of Sitzmann et al."""

    def __init__(self, in_features: int, out_features: int, *, omega_0: float, first: bool):
        super().__init__(in_features, out_features, scale=omega_0, activation=Sine())
        self.omega_0 = omega_0
        _siren_init(self.linear, omega_0=omega_0, first=first)
        # Biases keep PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as in the paper's code.

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega_0 * self.linear(x))


class Siren(nn.Module):
    """The paper's SIREN: ``depth`` sine layers of ``width`` features, then a linear head.

    Shape:
        - Input: (N, 2) coordinates in [-1, 1].
        - Output: (N, out_channels), values on the [-1, 1] scale the fit uses.
    """

    def __init__(
        self,
        *,
        out_channels: int = 3,
        width: int = 256,
        depth: int = 7,
        omega_0: float = 30.0,
        in_features: int = 2,
    ):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError("SIREN needs depth >= 1 and width >= 1")
        layers = [SineLayer(in_features, width, omega_0=omega_0, first=True)]
        layers += [
            SineLayer(width, width, omega_0=omega_0, first=False) for _ in range(depth - 1)
        ]
        self.body = nn.Sequential(*layers)
        self.head = _siren_init(nn.Linear(width, out_channels), omega_0=omega_0, first=False)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(coords))


def _siren_init(linear: nn.Linear, *, omega_0: float, first: bool) -> nn.Linear:
    """SIREN's initialisation of a layer's weights (Sitzmann et al.): uniform within ``1 / fan_in``
    for the first layer, ``sqrt(6 / fan_in) / omega_0`` after it (the head too); returns it."""
    fan_in = linear.in_features
    bound = 1.0 / fan_in if first else math.sqrt(6.0 / fan_in) / omega_0
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound)
    return linear


class GaussNet(nn.Module):
    """A Gaussian-activation INR: ``depth`` layers ``exp(-(s (W x + b))^2)`` of ``width``
    features, then a linear head (Ramasinghe and Lucey, "Beyond periodicity", 2022: PyTorch's
    default initialisation, scale ``s`` about 10). Runs on the fast engine like the SIREN.

    Shape: (N, 2) coordinates in [-1, 1] -> (N, out_channels).
    """

    def __init__(self, *, out_channels: int = 3, width: int = 256, depth: int = 7,
                 scale: float = 10.0, in_features: int = 2):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError("GaussNet needs depth >= 1 and width >= 1")
        layers = [ScaledLayer(in_features if i == 0 else width, width, scale=scale,
                              activation=Gaussian()) for i in range(depth)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_channels)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(coords))


class Finer(nn.Module):
    """FINER (Liu et al., "FINER: Flexible spectral-bias tuning in implicit neural representation
    by variable-periodic activation functions", CVPR 2024): the SIREN of :class:`Siren` (same
    initialisation, same ``omega_0``) with :class:`VariableSine` activations, whose frequency grows
    with the magnitude of the layer's input, so that the first layer's spread of biases sets the
    range of frequencies. Runs on the fast engine.

    Shape: (N, 2) coordinates in [-1, 1] -> (N, out_channels).
    """

    def __init__(self, *, out_channels: int = 3, width: int = 256, depth: int = 7, omega_0: float = 30.0,
                 in_features: int = 2):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError("FINER needs depth >= 1 and width >= 1")
        layers = []
        for i in range(depth):
            layer = ScaledLayer(in_features if i == 0 else width, width, scale=omega_0, activation=VariableSine(omega_0))
            _siren_init(layer.linear, omega_0=omega_0, first=i == 0)
            layers.append(layer)
        self.body = nn.Sequential(*layers)
        self.head = _siren_init(nn.Linear(width, out_channels), omega_0=omega_0, first=False)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(coords))


class Wire(nn.Module):
    """WIRE (Saragadam et al., "WIRE: Wavelet implicit neural representations", CVPR 2023):
    ``depth`` layers of the complex Gabor wavelet ``exp(i omega z - |s z|^2)``, ``z`` the layer's
    affine map (real on the first layer, complex after it), then a complex linear head whose real
    part is the output. ``width`` counts real features: the complex layers have ``int(width /
    sqrt(2))`` (as WIRE's, so that the parameters match a real network of ``width``). PyTorch's
    default initialisation. Not on the fast engine (complex arithmetic): the plain loop fits it.

    Shape: (N, 2) coordinates in [-1, 1] -> (N, out_channels).
    """

    def __init__(self, *, out_channels: int = 3, width: int = 256, depth: int = 3, omega: float = 20.0,
                 scale: float = 10.0, in_features: int = 2):
        super().__init__()
        if depth < 1 or width < 2:
            raise ValueError("WIRE needs depth >= 1 and width >= 2")
        features = int(width / math.sqrt(2.0))
        self.omega, self.scale = float(omega), float(scale)
        self.layers = nn.ModuleList(
            [nn.Linear(in_features if i == 0 else features, features, dtype=torch.float32 if i == 0 else torch.cfloat)
             for i in range(depth)])
        self.head = nn.Linear(features, out_channels, dtype=torch.cfloat)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        h = coords
        for layer in self.layers:
            z = layer(h)
            h = torch.exp(1j * self.omega * z - (self.scale * z).abs().square())
        return self.head(h).real


def nyquist_octaves(side: int) -> int:
    """Octaves of the NeRF encoding for an image ``side`` pixels across, as the SIREN code base sets
    them (``PosEncodingNeRF`` with ``use_nyquist``; coordinates on [-1, 1]): the highest octave's
    frequency, ``2^(k-1)`` cycles per unit, kept below the Nyquist rate of ``side / 4``, i.e.
    ``floor(log2(side / 4))``; at least 1."""
    if side < 8:
        return 1
    return max(1, int(math.floor(math.log2(side / 4))))


class PositionalEncoding(nn.Module):
    """NeRF encoding ``[x, sin(2^k pi x), cos(2^k pi x)]`` for k < ``frequencies``."""

    def __init__(self, frequencies: int = 10, in_features: int = 2):
        super().__init__()
        self.register_buffer(
            "scales", (2.0 ** torch.arange(frequencies, dtype=torch.float32)) * math.pi
        )
        self.out_features = in_features * (1 + 2 * frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = x[..., None] * self.scales  # (N, in, F)
        enc = torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=-1).flatten(-2)
        return torch.cat([x, enc], dim=-1)


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu_pe": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "selu": nn.SELU,
}


class MLP(nn.Module):
    """A plain coordinate MLP with a pointwise activation: the paper's ablation (Table 11).

    Linear layers keep PyTorch's default initialisation; ``relu_pe`` prepends a positional
    encoding of the coordinates.
    """

    def __init__(
        self,
        activation: str,
        *,
        out_channels: int = 3,
        width: int = 256,
        depth: int = 7,
        pe_frequencies: int = 10,
        in_features: int = 2,
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
        layers: list[nn.Module] = []
        features = in_features
        if activation == "relu_pe":
            encoding = PositionalEncoding(pe_frequencies, in_features)
            layers.append(encoding)
            features = encoding.out_features
        act = _ACTIVATIONS[activation]
        for _ in range(depth):
            layers += [nn.Linear(features, width), act()]
            features = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_channels)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(coords))


@dataclass(frozen=True)
class ModelFamily:
    """One registered kind of image model."""

    build: Callable[[ModelConfig, int], nn.Module]
    """``build(config, out_channels)``: a new model from the global torch RNG."""
    engine: bool
    """Built of :class:`ScaledLayer` s (``body``) and a linear ``head``, all layers sharing one
    scale: the fast engine serves it."""


MODEL_FAMILIES: dict[str, ModelFamily] = {
    "siren": ModelFamily(lambda c, out: Siren(out_channels=out, width=c.width, depth=c.depth,
                                              omega_0=c.omega_0), engine=True),
    "gauss": ModelFamily(lambda c, out: GaussNet(out_channels=out, width=c.width, depth=c.depth,
                                                 scale=c.gauss_scale), engine=True),
    "finer": ModelFamily(lambda c, out: Finer(out_channels=out, width=c.width, depth=c.depth,
                                              omega_0=c.omega_0), engine=True),
    "wire": ModelFamily(lambda c, out: Wire(out_channels=out, width=c.width, depth=c.depth, omega=c.gabor_omega,
                                            scale=c.gabor_scale), engine=False),
    **{name: ModelFamily(lambda c, out, name=name: MLP(name, out_channels=out, width=c.width,
                                                       depth=c.depth, pe_frequencies=c.pe_frequencies),
                         engine=False)
       for name in _ACTIVATIONS},
}
"""Every image model by name: adding one is a class and one line here."""

MODELS = tuple(MODEL_FAMILIES)


def build_model(config: ModelConfig, *, out_channels: int) -> nn.Module:
    """Instantiate the model named by ``config`` (uses the global torch RNG: seed it first; the
    name was checked when the config was made). What is set from the image must be resolved
    first (:meth:`ModelConfig.for_image`)."""
    if config.for_image(8, 8) is not config:
        raise ValueError(f"model {config.name}: its settings depend on the image size; build "
                         "config.for_image(height, width)")
    return MODEL_FAMILIES[config.name].build(config, out_channels)
