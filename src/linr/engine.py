"""A fast SIREN: the paper's network function and Adam trajectory with less work per step.

What differs from the plain autograd loop (``sin(omega_0 * (W x + b))`` per layer, autograd on
everything), and why the mathematics stays the same:

- **omega_0 folded into the weights.** A sine layer stores ``W' = omega_0 W`` and
  ``b' = omega_0 b`` and computes ``sin(W' x + b')``: the same function, one elementwise pass less
  forward and backward. The gradient becomes ``g' = g / omega_0``, so Adam's moments become
  ``m' = m / omega_0`` and ``v' = v / omega_0^2`` and its update of ``W'`` is
  ``lr' m/(sqrt(v) + omega_0 eps')``; that equals ``omega_0`` times the update of ``W``,
  ``omega_0 lr m/(sqrt(v) + eps)``, exactly when ``lr' = omega_0 lr`` and
  ``eps' = eps / omega_0``. So folded parameters get their own Adam group with both scaled, and
  ``W' / omega_0`` follows the plain trajectory up to rounding (tests/test_engine.py checks it
  in float64 against the plain loop).
- **Hand-written backward.** Each layer keeps its input and ``cos(W' x + b')`` from the forward
  pass; the backward is three matmuls and one in-place multiply per layer, into preallocated
  buffers (no autograd graph, no coordinate gradient, no fresh 16 MB allocations per step).
- **Chunks.** Rendering and the backward both run over pixel chunks of bounded size, so memory
  does not grow with the image beyond a few (pixels x channels) arrays (see :func:`estimate`).

Reduced precision (``precision``, not the paper's mathematics; opt-in): ``"bf16"`` runs the
hidden layers' matrix products on bfloat16-rounded inputs with float32 accumulation (CPU:
oneDNN's bf16 math mode with float32 results where it rounds, as on CPUs with AMX; elsewhere,
e.g. CPUs with AVX512-BF16 only, where that mode leaves products float32, explicit bf16 operands
whose bf16 result is widened to float32; CUDA: bf16 tensor-core products with a float32
output), ``"tf32"`` (CUDA only) runs them in TF32. The first sine layer, whose
omega_0 = 30 amplifies any rounding of the coordinates or its weights, the head, the sines,
cosines, losses and Adam stay float32. How much this changes the result is measured, not
assumed: ``linr bench speed --precision bf16`` and BENCHMARKS.md.

**Stacks.** Given K Sirens, :class:`FastSiren` stacks their parameters on a leading axis and runs
every product as one batched product (``bmm``): K small images fill a GPU that one leaves mostly
idle. A lone model is a stack of one: its parameters keep their own shapes for callers, and the
computation views them with a model axis of one, so there is one code path (the fit always runs
a stack, :mod:`linr.fastfit`). Each model's values and gradients are its own; Adam is elementwise, so one optimiser over
the stacked parameters is K independent optimisers, and :func:`select_members` drops finished
models mid-fit without disturbing the others.

**Any scaled-layer model.** Nothing above is particular to the sine: a layer
``g(scale * (W x + b))`` (:class:`linr.models.ScaledLayer`) folds its scale the same way, and the
backward needs only ``g'`` where the SIREN keeps ``cos``. The activation object supplies ``g`` and
``g'`` (:class:`linr.models.Activation`), so a new INR kind built of such layers (the Gaussian
``gauss`` model is the second) runs here without a change to this module. Models of other layers
(the ablation's ReLU/tanh MLPs) use the plain loop in :mod:`linr.fit`.
"""

from __future__ import annotations

import contextlib
import functools

import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from torch import nn

from .models import ScaledLayer, Siren

__all__ = ["FastSiren", "folded_names", "PRECISIONS", "adam_for", "select_members", "estimate", "Estimate", "check_precision",
           "fast_precision"]

PRECISIONS = ("float32", "bf16", "tf32")
"""Matmul precisions of the hidden layers; 'float32' is the paper's mathematics."""


def check_precision(precision: str, device: torch.device | str) -> None:
    """Raise ValueError when ``precision`` is unknown or unavailable on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    kind = torch.device(device).type
    if precision == "tf32" and kind != "cuda":
        raise ValueError("precision 'tf32' needs a CUDA GPU (CPUs have no TF32 units); "
                         "use 'bf16' or 'float32'")


def fast_precision(device: torch.device | str) -> str:
    """The reduced precision that pays on ``device``, else 'float32'.

    CPU: 'bf16' when the processor multiplies bf16 in hardware (AMX or AVX512-BF16, read from
    /proc/cpuinfo). CUDA: 'tf32' on compute capability 8.0 and newer. Anything else, or anything
    unknown: 'float32'.
    """
    device = torch.device(device)
    if device.type == "cuda":
        try:
            major, _ = torch.cuda.get_device_capability(device)
        except (RuntimeError, AssertionError):
            return "float32"
        return "tf32" if major >= 8 else "float32"
    if device.type == "cpu" and _cpu_has_bf16_units():
        return "bf16"
    return "float32"


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16_units() -> bool:
    """Whether this CPU lists bf16 units (amx_bf16 / avx512_bf16 in /proc/cpuinfo). Where
    oneDNN's bf16 math mode does not round on it (:func:`_bf16_mode_rounds`; an AMD EPYC with
    AVX512-BF16 and no AMX, for one) the products take explicit bf16 operands
    (:class:`_HiddenMatmul`)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


@functools.lru_cache(maxsize=1)
def _bf16_mode_rounds() -> bool:
    """Whether a float32 product under oneDNN's bf16 mode differs from the float32 one (probed
    once on a 256 x 64 by 64 x 64 product; the global flag is restored)."""
    if not _mkldnn_bf16_available():
        return False
    matmul = torch.backends.mkldnn.matmul
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(256, 64, generator=gen), torch.rand(64, 64, generator=gen)
    exact = a @ b
    before = matmul.fp32_precision
    try:
        matmul.fp32_precision = "bf16"
        reduced = a @ b
    finally:
        matmul.fp32_precision = before
    return not torch.equal(exact, reduced)


def _mkldnn_bf16_available() -> bool:
    matmul = getattr(torch.backends.mkldnn, "matmul", None)
    return torch.backends.mkldnn.is_available() and hasattr(matmul, "fp32_precision")


class _HiddenMatmul:
    """Matrix products of the hidden sine layers at the chosen precision.

    float32: plain :func:`_mm` / :func:`_addmm` (``torch.mm`` / ``bmm`` families). CPU bf16 where
    oneDNN's bf16 math mode rounds (:func:`_bf16_mode_rounds`): the same calls inside that mode
    (inputs rounded to bf16, float32 accumulation and result; it covers ``bmm`` too). CPU bf16
    elsewhere, and CUDA bf16: explicit bf16 operands (:func:`_bf16_mm`; a float32 result on CUDA,
    a bf16 one widened to float32 on the CPU). CUDA tf32: the calls with TF32 allowed. The global
    flags are set only around these calls and restored after each.
    """

    def __init__(self, precision: str, device: torch.device) -> None:
        check_precision(precision, device)
        self.precision, self.kind = precision, device.type
        self.operands_bf16 = precision == "bf16" and (self.kind != "cpu" or not _bf16_mode_rounds())
        self._bf16_buffers: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        # inside reusing(): what each slot's buffer holds (address, version, shape, strides)
        self._bf16_sources: dict[str, tuple] | None = None

    def _flags(self):
        if self.precision == "bf16" and not self.operands_bf16:
            return _swap(torch.backends.mkldnn.matmul, "fp32_precision", "bf16")
        if self.precision == "tf32":
            matmul = torch.backends.cuda.matmul
            if hasattr(matmul, "fp32_precision"):  # PyTorch >= 2.9; mixing it with allow_tf32 errs
                return _swap(matmul, "fp32_precision", "tf32")
            return _swap(matmul, "allow_tf32", True)
        return contextlib.nullcontext()

    @property
    def long_sums_in_pieces(self) -> bool:
        """Whether this product (bf16 on a CPU) takes the long sums of a fit (the weights'
        gradients) in fixed pieces: the hidden layers' (:meth:`_long_sum`) and the float32 ones
        of the first layer and the head (:meth:`float32_long_sum`)."""
        return self.precision == "bf16" and self.kind == "cpu"

    def _summed_in_pieces(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        """Whether ``a @ b`` is a long sum (a weight's gradient) that a CPU's bf16 product takes
        in fixed pieces (:meth:`_long_sum`), with explicit bf16 operands or oneDNN's bf16 mode
        alike: that mode (AMX CPUs) also splits one long sum by its threads."""
        return self.long_sums_in_pieces and _is_long_sum(a, b) and a.mT.is_contiguous() and b.is_contiguous()

    def mm(self, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.operands_bf16 or self._summed_in_pieces(a, b):
            return out.copy_(self._bf16_product(a, b))
        with self._flags():
            return _mm(a, b, out=out)

    def addmm(self, bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
              out: torch.Tensor | None = None) -> torch.Tensor:
        if self.operands_bf16:
            product = self._bf16_product(a, b)  # widened, then the bias added: two passes, but
            # each at float32 speed (torch.add of a bf16 and a float32 tensor took 1.5x the two)
            widened = product.float() if out is None else out.copy_(product)
            return widened.add_(bias.unsqueeze(-2))
        with self._flags():
            return _addmm(bias, a, b, out=out)

    def addmm_(self, out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.operands_bf16 or self._summed_in_pieces(a, b):
            return out.add_(self._bf16_product(a, b))
        with self._flags():
            return _addmm_(out, a, b)

    def _bf16_product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a @ b`` per model from bf16-rounded operands: float32 where the device gives a float32
        result (CUDA: :func:`_bf16_mm`); on the CPU bf16, into a kept buffer (the caller widens
        it), or float32 for a long sum (:meth:`_long_sum`). The CPU's operands and result live in
        buffers kept per shape: a fresh tensor of this size per product costs more in first-touch
        page faults than the bf16 product saves (measured: 4.4 ms to round a fresh 74k x 64
        operand, 0.9 ms into a kept one)."""
        if self.kind != "cpu":
            return _bf16_mm(a, b)
        if self._summed_in_pieces(a, b):
            return self._long_sum(a, b)
        out = self._buffer("out", (a.shape[0], a.shape[1], b.shape[2]))
        return torch.bmm(self._rounded(a, "a"), self._rounded(b, "b"), out=out)

    SUM_PIECE = 2048
    """Pixels per piece of a long sum (:meth:`_long_sum`), whatever the threads."""

    def _long_sum(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a @ b`` (K, m, N) x (K, N, n) with N much larger than m and n (a weight's gradient, a
        sum over the pixels; ``a`` the transposed view of a (K, N, m) tensor), float32: bf16
        products over fixed pieces of :attr:`SUM_PIECE` pixels (zero rows pad the last; each
        piece's result rounded to bf16), their float32 sum by torch (the same order whatever the
        threads). oneDNN's bf16 kernel would split one long sum by the threads it has, rounding
        otherwise on two threads than on one: in pieces, a process on two threads and its
        one-thread tile workers compute the same image. Where oneDNN's bf16 mode rounds the
        float32 operands itself (AMX CPUs), the pieces are those of the operands as they are where
        they come whole (:meth:`_in_whole_pieces`)."""
        if not self.operands_bf16 and self._in_whole_pieces(a.mT, b):
            with self._flags():
                return self._pieces_sum(a.mT, b, rounded=True)
        return self._pieces_sum(self._padded(a.mT, "a"), self._padded(b, "b"))

    def float32_long_sum(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """:meth:`_long_sum` of float32 operands, kept float32 (the first layer's and the head's
        weight gradients of a bf16 fit on the CPU): a CPU's BLAS splits one long float32 sum by
        its threads too (on an AMX Xeon those two gradients came out otherwise on two threads
        than on one); in pieces it does not. ``a`` the transposed view of a (K, N, m) tensor."""
        if self._in_whole_pieces(a.mT, b):
            return self._pieces_sum(a.mT, b)
        return self._pieces_sum(self._padded(a.mT, "a32", torch.float32), self._padded(b, "b32", torch.float32))

    def _pieces_sum(self, left: torch.Tensor, right: torch.Tensor, *, rounded: bool = False) -> torch.Tensor:
        """``left.mT @ right`` of contiguous (K, N', m) and (K, N', n) tensors (N' a multiple of
        :attr:`SUM_PIECE`: :meth:`_in_whole_pieces`), a product per piece (each piece's result
        rounded to bf16 where ``rounded``, as a bf16 product's is), the pieces' results summed in
        piece order in float32."""
        k, rows, m = left.shape
        n, pieces = right.shape[2], rows // self.SUM_PIECE
        partial = torch.bmm(left.view(k * pieces, self.SUM_PIECE, m).mT, right.view(k * pieces, self.SUM_PIECE, n))
        return (partial.to(torch.bfloat16) if rounded else partial).view(k, pieces, m, n).float().sum(1)

    def _in_whole_pieces(self, left: torch.Tensor, right: torch.Tensor) -> bool:
        """Whether (K, N, m) and (K, N, n) operands can be summed in pieces as they are, without
        a copy into padded buffers (:meth:`_padded`): contiguous, N a multiple of :attr:`SUM_PIECE`
        (a fit's activations in buffers padded with zero rows, :meth:`padded_rows`). The same
        products on the same values as after the copies, so the same bits; a pass over each
        operand less (about 15% of a 7x64 pilot's step on an AMX Xeon, forty-ninth session)."""
        return left.shape[1] % self.SUM_PIECE == 0 and left.is_contiguous() and right.is_contiguous()

    def padded_rows(self, rows: int, members: int) -> int:
        """The rows of a fit's activation buffers for ``rows`` pixels: ``rows`` rounded up to a
        multiple of :attr:`SUM_PIECE` where the long sums take their pieces from them as they are
        (:meth:`_in_whole_pieces`: a lone model whose bf16 products round in oneDNN's bf16 mode,
        AMX CPUs), else ``rows``. The rows past ``rows`` stay zero."""
        if self.long_sums_in_pieces and not self.operands_bf16 and members == 1:
            return -(-rows // self.SUM_PIECE) * self.SUM_PIECE
        return rows

    def _rounded(self, t: torch.Tensor, slot: str) -> torch.Tensor:
        """``t`` rounded to bf16 in the buffer of ``slot`` (a transposed view of a contiguous
        tensor is rounded as that tensor, and the buffer's view returned). Inside
        :meth:`reusing`, a slot that already holds the same tensor, unchanged since (its
        address, shape, strides and version), is not rounded again."""
        if t.shape[-1] * t.shape[-2] <= 64 * 64:  # weights: small, no buffer needed
            return t.to(torch.bfloat16)
        transposed = not t.is_contiguous() and t.mT.is_contiguous()
        base = t.mT if transposed else t
        view = self._padded(base, slot)[:, :base.shape[1]]
        return view.mT if transposed else view

    def _padded(self, base: torch.Tensor, slot: str, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        """A contiguous (K, N, c) ``base`` in ``dtype`` (bf16: rounded) in the first N rows of the
        buffer of ``slot``, (K, N', c) with N' the next multiple of :attr:`SUM_PIECE` (its last rows
        zero); the whole buffer returned."""
        k, rows, c = base.shape
        padded = -(-rows // self.SUM_PIECE) * self.SUM_PIECE
        buffer = self._buffer(slot, (k, rows, c), allocate=(k, padded, c), dtype=dtype)
        held = self._bf16_sources
        if held is None:  # outside reusing(): always rounded (inference tensors have no version)
            buffer[:, :rows].copy_(base)
            return buffer
        source = (base.data_ptr(), base._version, tuple(base.shape), base.stride())
        if held.get(slot) != source:
            buffer[:, :rows].copy_(base)
            held[slot] = source
        return buffer

    @contextlib.contextmanager
    def reusing(self) -> Iterator[None]:
        """A ``with`` block in which an operand rounded to bf16 once is reused by the next product
        given the same tensor unchanged (a backward layer's gradient is an operand of two
        products). Only inside the block: outside it a freed tensor's address and version may
        come back on a new one."""
        self._bf16_sources = {}
        try:
            yield
        finally:
            self._bf16_sources = None

    def _buffer(self, slot: str, shape: tuple[int, ...], allocate: tuple[int, ...] | None = None,
                dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        """The kept ``dtype`` buffer of ``slot`` for operands of ``shape``: ``allocate``'s shape
        (default ``shape``), zero-filled when made (rows past ``shape``'s stay zero: nothing else
        writes them)."""
        buffers = self._bf16_buffers
        key = (slot, shape)
        if key not in buffers:
            if len(buffers) > 16:  # chunk sizes: the full one, a last partial one; a few slots each
                buffers.clear()
                if self._bf16_sources is not None:
                    self._bf16_sources = {}
            buffers[key] = torch.zeros(allocate or shape, dtype=dtype)
        return buffers[key]


# Every product is a batched one over the model axis (K, ...): a single model is a stack of one
# (batched products on one model cost what plain ones do on this project's CPU: BENCHMARKS.md).


def _mm(a: torch.Tensor, b: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    return torch.bmm(a, b, out=out)


def _addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """``bias + a @ b`` per model with ``bias`` (K, m) added to every row."""
    bias = bias.unsqueeze(-2)
    return torch.baddbmm(bias, a, b) if out is None else torch.baddbmm(bias, a, b, out=out)


def _addmm_(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return out.baddbmm_(a, b)


def _bf16_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` per model from bf16-rounded operands, as float32: the float32 result where the
    device gives one (CUDA), else the bf16 result widened (older torch)."""
    a16, b16 = a.to(torch.bfloat16), b.to(torch.bfloat16)
    if _float32_out(a.device.type):
        return torch.bmm(a16, b16, out_dtype=torch.float32)
    return torch.bmm(a16, b16).float()


@functools.lru_cache(maxsize=None)
def _float32_out(kind: str) -> bool:
    """Whether ``torch.bmm`` of bf16 operands gives a float32 result (``out_dtype``) on this kind
    of device (asked once: an unsupported call raises, at a cost no product should pay per step)."""
    one = torch.ones(1, 1, 1, dtype=torch.bfloat16, device=kind)
    try:
        torch.bmm(one, one, out_dtype=torch.float32)
    except (TypeError, RuntimeError, NotImplementedError):
        return False
    return True


class _swap:
    """Set ``obj.name = value`` for a ``with`` block, then restore the previous value."""

    def __init__(self, obj: object, name: str, value: object) -> None:
        self.obj, self.name, self.value = obj, name, value

    def __enter__(self) -> None:
        self.old = getattr(self.obj, self.name)
        setattr(self.obj, self.name, self.value)

    def __exit__(self, *exc: object) -> None:
        setattr(self.obj, self.name, self.old)


class FastSiren:
    """The SIREN of :class:`linr.models.Siren` (or any model of :class:`~linr.models.ScaledLayer` s
    and a linear head) with omega_0 (the layers' scale) folded in and a manual backward.

    Given one :class:`Siren`, parameters are the model's matrices and :meth:`forward` maps
    coordinates (n, 2) to values (n, C). Given a sequence of K Sirens of the same architecture
    (a **stack**: several images fitted at once, e.g. to fill a GPU), every parameter gets a
    leading model axis, e.g. (K, width, width), the products become batched ones (``bmm``) and
    :meth:`forward` maps (n, 2) shared or (K, n, 2) per-model coordinates to (K, n, C). The models
    share nothing but the calls: member k's values and gradients are those of the k-th model
    alone (up to the rounding of a batched product).

    Parameters live in ``self.params`` (plain leaf tensors; their ``.grad`` is written by
    :meth:`backward`). ``folded`` are the sine-layer weights and biases (scaled by omega_0),
    ``head`` the final linear layer's.
    """

    def __init__(self, model: nn.Module | Sequence[nn.Module], *, dtype: torch.dtype = torch.float32,
                 precision: str = "float32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.stacked = isinstance(model, (list, tuple))
        models = list(model) if self.stacked else [model]
        if not models:
            raise ValueError("a stack needs at least one model")
        for m in models:
            if not all(isinstance(layer, ScaledLayer) for layer in getattr(m, "body", [None])):
                raise ValueError(f"the fast engine serves models of scaled layers (linr.models."
                                 f"ScaledLayer) and a linear head, not {type(m).__name__}")
        self.activation = models[0].body[0].activation
        self.omega_0 = float(models[0].body[0].scale)
        shapes = {tuple(p.shape for p in m.parameters()) for m in models}
        scales = {float(layer.scale) for m in models for layer in m.body}
        kinds = {type(layer.activation) for m in models for layer in m.body}
        if len(shapes) > 1 or len(scales) > 1 or len(kinds) > 1:
            raise ValueError("stacked models must share architecture, activation and scale "
                             "(omega_0), and so must a model's layers")

        def gather(get, scale: float = 1.0) -> torch.Tensor:
            values = [get(m).detach() * scale for m in models]
            return (torch.stack(values) if self.stacked else values[0]).to(dtype).clone()

        with torch.no_grad():
            self.weights = [gather(lambda m, j=j: m.body[j].linear.weight, self.omega_0)
                            for j in range(len(models[0].body))]
            self.biases = [gather(lambda m, j=j: m.body[j].linear.bias, self.omega_0)
                           for j in range(len(models[0].body))]
            self.head_w = gather(lambda m: m.head.weight)
            self.head_b = gather(lambda m: m.head.bias)
        self.dtype = dtype
        layers = [p for pair in zip(self.weights, self.biases) for p in pair]
        self._set_params(layers + [self.head_w, self.head_b])

    def _set_params(self, params: list[torch.Tensor]) -> None:
        """Install parameters, ordered as ``self.params`` orders them, with zeroed gradients and
        fresh buffers."""
        n = (len(params) - 2) // 2
        self.weights, self.biases = params[0 : 2 * n : 2], params[1 : 2 * n : 2]
        self.head_w, self.head_b = params[2 * n :]
        self.folded = [p for pair in zip(self.weights, self.biases) for p in pair]
        self.head = [self.head_w, self.head_b]
        self.params = self.folded + self.head
        for p in self.params:
            p.grad = torch.zeros_like(p)
        self.width = self.weights[0].shape[-2]
        self._buffers: dict[int, _Activations] = {}
        self._matmul: _HiddenMatmul | None = None

    @property
    def members(self) -> int:
        """Number of models: K for a stack, 1 otherwise."""
        return self.head_w.shape[0] if self.stacked else 1

    @property
    def matmul(self) -> _HiddenMatmul:
        """The hidden layers' products at ``precision`` on the parameters' device."""
        if self._matmul is None or self._matmul.kind != self.device.type:
            self._matmul = _HiddenMatmul(self.precision, self.device)
        return self._matmul

    @property
    def device(self) -> torch.device:
        return self.head_w.device

    def to(self, device: torch.device) -> "FastSiren":
        self._set_params([p.detach().to(device) for p in self.params])
        return self

    def select(self, members: Sequence[int]) -> "FastSiren":
        """A stack of the given members only (copies), in the given order."""
        if not self.stacked:
            raise ValueError("select() needs a stack of models")
        index = torch.as_tensor(list(members), dtype=torch.long, device=self.device)
        return self._copy([p.detach().index_select(0, index) for p in self.params], stacked=True)

    def member(self, k: int) -> "FastSiren":
        """Model ``k`` of a stack as an unstacked :class:`FastSiren` (a copy)."""
        if not self.stacked:
            raise ValueError("member() needs a stack of models")
        return self._copy([p.detach()[k].clone() for p in self.params], stacked=False)

    def _copy(self, params: list[torch.Tensor], *, stacked: bool) -> "FastSiren":
        new = object.__new__(FastSiren)
        new.precision, new.stacked, new.omega_0, new.dtype, new.activation = (
            self.precision, stacked, self.omega_0, self.dtype, self.activation)
        new._set_params(params)
        return new

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The plain :class:`Siren` state (omega_0 divided back out), e.g. to save a model
        (a stack: one entry per parameter with the leading model axis)."""
        out = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            out[f"body.{i}.linear.weight"] = w / self.omega_0
            out[f"body.{i}.linear.bias"] = b / self.omega_0
        out["head.weight"], out["head.bias"] = self.head_w.clone(), self.head_b.clone()
        return out

    def folded_state(self) -> dict[str, torch.Tensor]:
        """The parameters exactly as the engine computes with them (hidden layers' weights and
        biases scaled by the layers' scale), by name (``layers.i.weight``, ``layers.i.bias``,
        ``head.weight``, ``head.bias``): :meth:`load_folded_state` puts them back bit for bit,
        so a saved model renders what the fit rendered (:mod:`linr.fitted`)."""
        return dict(zip(folded_names(len(self.weights)), (p.detach().clone() for p in self.params)))

    def load_folded_state(self, state: dict[str, torch.Tensor]) -> "FastSiren":
        """Install parameters from :meth:`folded_state` (shapes must match this network's)."""
        names = folded_names(len(self.weights))
        if set(state) != set(names):
            raise ValueError(f"expected parameters {names}, got {sorted(state)}")
        params = []
        for name, current in zip(names, self.params):
            value = state[name]
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(f"parameter {name} has shape {tuple(value.shape)}, expected "
                                 f"{tuple(current.shape)}")
            params.append(value.detach().to(device=current.device, dtype=current.dtype).clone())
        self._set_params(params)
        return self

    def _activations(self, n: int) -> "_Activations":
        """The buffers of a chunk of ``n`` pixels, kept per chunk size (at most the full chunk,
        the last partial one, one more)."""
        if n not in self._buffers:
            if len(self._buffers) > 2:
                self._buffers.clear()
            outputs = self.head_w.shape[-2]
            long = n > 4 * max(self.width, outputs)  # every weight gradient a long sum (_is_long_sum)
            rows = self.matmul.padded_rows(n, self.members) if long else n
            self._buffers[n] = _Activations(n, rows, members=self.members,
                                            width=self.width, depth=len(self.weights),
                                            inputs=self.weights[0].shape[-1], outputs=outputs,
                                            dtype=self.dtype, device=self.device)
        return self._buffers[n]

    def forward(self, coords: torch.Tensor, *, save: bool) -> torch.Tensor:
        """Render values at ``coords`` (n, 2) -> (n, C) on the [-1, 1] scale; for a stack,
        (n, 2) shared or (K, n, 2) -> (K, n, C).

        With ``save`` the layer inputs and cosines are kept for :meth:`backward` (the buffers
        are reused by the next call with the same n).
        """
        coords = coords.to(self.dtype)
        if coords.ndim == 2:  # shared by every model (a lone model is a stack of one)
            coords = coords.expand(self.members, *coords.shape)
        n = coords.shape[-2]
        if save:
            buffers = self._activations(n)
            sines, cosines = buffers.sines, buffers.cosines
        h = coords
        mm = self.matmul
        act = self.activation
        v = self._as_stack
        for i, (w, b) in enumerate(zip(map(v, self.weights), map(v, self.biases))):
            # the first layer (2 inputs, omega_0 = 30) always in float32
            addmm = _addmm if i == 0 else mm.addmm
            if save:  # g(z) over z (the sine buffer), g'(z) into the cosine buffer
                h = act.value_and_slope_(addmm(b, h, w.mT, out=sines[i]), cosines[i])
            else:
                h = act.value_(addmm(b, h, w.mT))
        self._input = coords if save else None
        out = _addmm(v(self.head_b), h, v(self.head_w).mT)
        return out if self.stacked else out[0]

    def backward(self, grad_out: torch.Tensor, *, accumulate: bool = False) -> None:
        """Write d(loss)/d(params) into ``.grad`` given d(loss)/d(output) (n, C) ((K, n, C) for a
        stack) of the last :meth:`forward` with ``save``; ``accumulate`` adds to the existing
        gradients (chunks)."""
        grad_out = grad_out.to(self.dtype)
        v = self._as_stack
        if grad_out.ndim == 2:  # a lone model's (n, C)
            grad_out = grad_out.unsqueeze(0)
        n = grad_out.shape[-2]
        buffers = self._activations(n)
        cosines, scratch = buffers.cosines, buffers.scratch
        # a weight's gradient, a long sum over the pixels, takes the whole buffers (padded where
        # buffers.padded: their zero rows add nothing, and its pieces are then the buffers as they are)
        beta = 1.0 if accumulate else 0.0
        mm = self.matmul
        pieces = mm if mm.long_sums_in_pieces else None  # its float32 long sums as the hidden layers'
        _mm_into(v(self.head_w.grad), buffers.in_rows(grad_out, "grad").mT, buffers.whole_sines[-1], beta,
                 pieces=pieces)
        _sum_into(v(self.head_b.grad), grad_out, beta)
        g = _mm(grad_out, v(self.head_w), out=scratch)
        depth = len(self.weights)
        for i in range(depth - 1, -1, -1):
            gz = cosines[i].mul_(g)  # d loss / d z_i; the cosine buffer is not needed again
            h_in = buffers.whole_sines[i - 1] if i > 0 else buffers.in_rows(self._input, "input")
            with mm.reusing():  # gz is an operand of both products
                _mm_into(v(self.weights[i].grad), buffers.whole_cosines[i].mT, h_in, beta, mm if i > 0 else None,
                         pieces=pieces)
                _sum_into(v(self.biases[i].grad), gz, beta)
                if i > 0:
                    g = mm.mm(gz, v(self.weights[i]), out=scratch)

    def _as_stack(self, t: torch.Tensor) -> torch.Tensor:
        """A parameter (or its gradient) with the model axis: itself in a stack, a view with a
        leading axis of one for a lone model (writes through the view reach the parameter)."""
        return t if self.stacked else t.unsqueeze(0)


class _Activations:
    """A :class:`FastSiren`'s buffers for a chunk of ``n`` pixels: each layer's sine outputs and
    cosines, (K, n, width), and a gradient scratch. With ``rows`` > n (:meth:`_HiddenMatmul.padded_rows`;
    ``padded``) the sines and cosines are the first n rows of ``whole_*`` (K, rows, width) buffers
    whose other rows are zero, and the photo's coordinates and the output's gradient get such
    buffers too (:meth:`in_rows`), so that each weight's gradient sums over whole pieces of the
    buffers as they are (the rows past n are never written). Without, ``whole_*`` are the buffers of
    n rows themselves."""

    def __init__(self, n: int, rows: int, *, members: int, width: int, depth: int, inputs: int, outputs: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        self.padded = rows > n

        def new(columns: int) -> torch.Tensor:  # the rows past n zeroed, the others written by each use
            buffer = torch.empty((members, rows, columns), dtype=dtype, device=device)
            buffer[:, n:].zero_()
            return buffer

        self.whole_sines = [new(width) for _ in range(depth)]
        self.whole_cosines = [new(width) for _ in range(depth)]
        self.sines = [t[:, :n] for t in self.whole_sines]
        self.cosines = [t[:, :n] for t in self.whole_cosines]
        self.scratch = torch.empty((members, n, width), dtype=dtype, device=device)
        self._rows = {"grad": new(outputs), "input": new(inputs)} if self.padded else {}

    def in_rows(self, t: torch.Tensor, slot: str) -> torch.Tensor:
        """``t`` (K, n, c), the output's gradient (``slot`` 'grad') or the coordinates ('input'),
        in its padded buffer where the buffers are padded, else itself."""
        if not self.padded:
            return t
        buffer = self._rows[slot]
        buffer[:, :t.shape[-2]].copy_(t)
        return buffer


def folded_names(depth: int) -> list[str]:
    """Names of a :class:`FastSiren`'s parameters in ``params`` order, for ``depth`` hidden layers."""
    return [f"layers.{i}.{kind}" for i in range(depth) for kind in ("weight", "bias")] + \
        ["head.weight", "head.bias"]


def _mm_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, beta: float,
             mm: _HiddenMatmul | None = None, *, pieces: _HiddenMatmul | None = None) -> None:
    """``a @ b`` into ``out`` (``beta`` 1: added): through ``mm`` (a hidden layer's), else float32;
    ``pieces``: a float32 long sum over the pixels taken in its fixed pieces
    (:meth:`_HiddenMatmul.float32_long_sum`)."""
    if mm is not None:
        mm.addmm_(out, a, b) if beta else mm.mm(a, b, out=out)
    elif pieces is not None and _is_long_sum(a, b):
        total = pieces.float32_long_sum(a, b)
        out.add_(total) if beta else out.copy_(total)
    elif beta:
        _addmm_(out, a, b)
    else:
        _mm(a, b, out=out)


def _is_long_sum(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a @ b`` sums over many more terms than either factor's other side (a weight's
    gradient: a sum over the pixels)."""
    return a.shape[-1] > 4 * max(a.shape[-2], b.shape[-1])


def _sum_into(out: torch.Tensor, a: torch.Tensor, beta: float) -> None:
    """Sum over the pixel axis (the second to last) into ``out``, or add it."""
    if beta:
        out.add_(a.sum(-2))
    else:
        torch.sum(a, -2, out=out)


def adam_for(net: FastSiren, *, lr: float, eps: float = 1e-8) -> Any:
    """Adam over ``net.params`` whose trajectory equals plain Adam(lr, eps) on the unfolded SIREN.

    Folded parameters are omega_0 times the plain ones, so their group uses omega_0 * lr and
    eps / omega_0 (see the module docstring for the derivation).
    """
    from .adam import adam

    w = net.omega_0
    return adam(
        [
            {"params": net.folded, "lr": lr * w, "eps": eps / w},
            {"params": net.head, "lr": lr, "eps": eps},
        ],
        lr=lr,
        eps=eps,
    )


def select_members(net: FastSiren, optimizer: Any,
                   members: Sequence[int]) -> tuple[FastSiren, Any]:
    """Drop models from a stack mid-fit: the stack of ``members`` and an Adam over it that
    carries on exactly where ``optimizer`` was (same groups and hyperparameters, the members'
    moments and the step count). Adam is elementwise, so each remaining model's trajectory is
    unchanged by the removal of the others."""
    new = net.select(members)
    index = torch.as_tensor(list(members), dtype=torch.long, device=net.device)
    groups, mapping = [], {}
    position = {id(p): i for i, p in enumerate(net.params)}
    for group in optimizer.param_groups:
        params = [new.params[position[id(p)]] for p in group["params"]]
        mapping.update({id(p): q for p, q in zip(group["params"], params)})
        groups.append({**{k: group[k] for k in ("lr", "betas", "eps")}, "params": params})  # all linr sets
    from .adam import adam as make_adam

    adam = make_adam(groups)
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            if state:
                adam.state[mapping[id(p)]] = {
                    k: v.index_select(0, index) if torch.is_tensor(v) and v.ndim > 0 else
                    (v.clone() if torch.is_tensor(v) else v)
                    for k, v in state.items()
                }
    return new, adam


# --- estimates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """Predicted cost of a fit: peak working memory (bytes) and time (seconds)."""

    memory_bytes: int
    seconds: float
    flops_per_step: float
    chunk_pixels: int

    def describe(self, *, bound: bool = False) -> str:
        """'estimated peak memory M GiB, time T (...)'; ``bound``: T is an upper bound (every step
        of an automatic stop's budget), said as 'at most T if every step runs'."""
        gib = self.memory_bytes / 2**30
        time = f"at most {format_duration(self.seconds)} if every step runs" if bound else format_duration(self.seconds)
        return (f"estimated peak memory {gib:.2f} GiB, time {time} "
                f"({self.flops_per_step / 1e9:.1f} GFLOP per step, chunks of {self.chunk_pixels} pixels)")


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(
    height: int,
    width: int,
    *,
    steps: int,
    net_width: int = 256,
    depth: int = 7,
    channels: int = 3,
    chunk_pixels: int,
    trained_pixels: int | None = None,
    two_pass: bool = False,
    flops_per_second: float = 5e10,
    bytes_per_value: int = 4,
) -> Estimate:
    """Estimate peak memory and time of a chunked SIREN fit of a ``height`` x ``width`` image.

    Memory: per chunk, each of ``depth`` layers keeps a sine output and a cosine of
    ``chunk x net_width`` values, plus one scratch array; the image-sized arrays (output, targets,
    its gradient, coordinates: about ``4 C + 2`` values per pixel, times 2 for operator
    intermediates) and Adam's 4 copies of the parameters. Time: multiply-adds of the matmuls
    (forward 2, backward 4 FLOPs per weight and pixel; an extra forward of every pixel when the
    loss needs the whole image first, ``two_pass``), divided by ``flops_per_second``.
    """
    pixels = height * width
    trained = pixels if trained_pixels is None else trained_pixels
    chunk = max(1, min(chunk_pixels, trained))
    params = 2 * net_width + net_width + (depth - 1) * (net_width * net_width + net_width)
    params += net_width * channels + channels
    activations = chunk * net_width * (2 * depth + 1)
    image_arrays = pixels * (4 * channels + 2) * 2
    memory = (activations + image_arrays + 4 * params) * bytes_per_value
    per_pixel_forward = 2 * (params - net_width * channels - channels) + 2 * net_width * channels
    flops = trained * per_pixel_forward * 3
    if two_pass:
        flops += pixels * per_pixel_forward
    return Estimate(int(memory), steps * flops / flops_per_second, float(flops), chunk)


DEFAULT_CHUNK_PIXELS = 2**17
""":attr:`linr.config.FitConfig.chunk_pixels`' default: on the CPU the chunk of renders and of
steps that mix pixels (pixel-wise steps: :data:`CPU_PIXEL_CHUNK`); on a CUDA device the floor of
:func:`chunk_pixels_for`'s (which grows it to the device's free memory). A value equal to it
counts as left at the default."""

CPU_PIXEL_CHUNK = 2**14
"""The chunk of a training step on the pixel path (pixel-wise operators: denoising, inpainting)
on the CPU when ``chunk_pixels`` is left at its default (:func:`step_chunk_pixels`): a chunk's
saved activations then stay in the processor's caches between the passes over them. Measured
on the forty-sixth session's idle 2-core AMD EPYC, one thread: a 7x64 pilot step on a 272-px
tile 0.155 s against 0.191 s at :data:`DEFAULT_CHUNK_PIXELS` with bf16 products (float32 0.205
against 0.237; two such processes at once 0.155-0.185 against 0.192-0.220), the paper's 7x256 at
256 px 2.25-2.29 s against 2.46-2.53 s. Steps that mix pixels (the image step) keep the default:
an image larger than one chunk costs them a second pass."""

CUDA_MEMORY_SHARE = 0.25
"""Share of a CUDA device's free memory (when a fit starts) that the saved activations of one
chunk may take when ``chunk_pixels`` is left at its default."""


def chunk_pixels_for(requested: int, device: torch.device | str, *, net_width: int, depth: int,
                     pixels: int, free_bytes: int | None = None) -> int:
    """Pixels rendered with saved activations at once (all stacked models together).

    ``requested`` (:attr:`linr.config.FitConfig.chunk_pixels`) is kept as given, except its
    default on a CUDA device: there the chunk grows to what :data:`CUDA_MEMORY_SHARE` of the free
    memory holds (``free_bytes``, default ``torch.cuda.mem_get_info``; :func:`estimate`'s
    activations per pixel), capped at ``pixels`` (the whole step), never below the default.
    A stack of tiles then takes one chunk per step instead of several, each of which repeats every
    model's data term and prior on the host: on an H200 a 16-tile stack's step spent about three
    times as long launching work as the card spent on it (BENCHMARKS.md, thirty-eighth session).
    Gradients are the same whatever the chunk (up to the order of float sums).
    """
    device = torch.device(device)
    if requested != DEFAULT_CHUNK_PIXELS or device.type != "cuda":
        return requested
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(device)
    per_pixel = net_width * (2 * depth + 1) * 4  # estimate()'s saved activations, float32
    fits = int(free_bytes * CUDA_MEMORY_SHARE) // per_pixel
    return max(requested, min(fits, max(pixels, 1)))


def step_chunk_pixels(requested: int, device: torch.device | str, chunk: int, *, pixel_wise: bool) -> int:
    """Pixels per chunk of a training step: :data:`CPU_PIXEL_CHUNK` for a pixel-wise step on the
    CPU with ``requested`` (:attr:`linr.config.FitConfig.chunk_pixels`) left at its default, else
    ``chunk`` (:func:`chunk_pixels_for`'s). Gradients are the same whatever the chunk (up to the
    order of float sums)."""
    if pixel_wise and requested == DEFAULT_CHUNK_PIXELS and torch.device(device).type == "cpu":
        return CPU_PIXEL_CHUNK
    return chunk


def measure_throughput(*, net_width: int = 256, depth: int = 7, pixels: int = 4096,
                       repeats: int = 3, precision: str = "float32") -> float:
    """Measured FLOP/s of one training step of the fast SIREN on this CPU (a few tenths of a second)."""
    import time

    torch.manual_seed(0)
    net = FastSiren(Siren(width=net_width, depth=depth), precision=precision)
    coords = torch.rand(pixels, 2) * 2 - 1
    grad = torch.randn(pixels, 3)
    est = estimate(1, pixels, steps=1, net_width=net_width, depth=depth, chunk_pixels=pixels)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        net.forward(coords, save=True)
        net.backward(grad)
        best = min(best, time.perf_counter() - t0)
    return est.flops_per_step / best
