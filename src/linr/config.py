"""Settings of one fit: :class:`FitConfig` (the paper's defaults) and the learning-rate schedule."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from .argtypes import is_real
from .engine import DEFAULT_CHUNK_PIXELS, PRECISIONS
from .errors import InputError
from .models import ModelConfig

__all__ = ["FitConfig", "MAX_STEPS", "SCHEDULES", "lr_factor"]


MAX_STEPS = 1_000_000
"""Most steps a fit may ask for: the per-step history is allocated up front."""


@dataclass(frozen=True)
class FitConfig:
    """Settings of one fit (defaults: the paper's, for a 500-step task)."""

    steps: int = 500
    """Maximum number of Adam steps (a stop rule may end the fit earlier)."""
    lr: float = 1e-4
    """Adam learning rate."""
    retry_lr: float | None = None
    """When set: a fit whose stop rule holds pixels out and ends it before ``steps`` (a fit cut
    short by its budget may be poor for want of steps), and whose returned image predicts them
    clearly worse than the mean of their four neighbours in the photo (a failed fit, such as one
    whose learning rate was too high for the image: :meth:`linr.stopping.HoldOut.neighbour_loss`,
    :data:`linr.fit.RETRY_ABOVE_NEIGHBOURS`) is
    fitted once more at this learning rate, and the image of lower held-out loss is returned
    (``settings['retry']`` says what happened). None: no check (the paper's fit)."""
    seed: int = 0
    """Seeds the model initialisation; the same seed gives the same result on the same device."""
    device: str = "auto"
    """'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture of the image model."""
    progress: bool | None = None
    """Show a progress bar; None shows one only when stderr is a terminal."""
    check_every: int = 25
    """Steps between checks for a diverged (non-finite) loss."""
    engine: str = "auto"
    """'auto': the fast SIREN engine (:mod:`linr.engine`, same mathematics) for SIREN models and
    the plain autograd loop otherwise; 'plain': always the plain loop."""
    schedule: str = "constant"
    """Learning-rate schedule: 'constant' (the paper's) or 'cosine' (lr * (1 + cos(pi t/T)) / 2)."""
    chunk_pixels: int = DEFAULT_CHUNK_PIXELS
    """Fast engine: most pixels rendered with gradients at once (bounds memory, see
    :func:`linr.engine.estimate`); larger images are fitted in chunks with identical gradients.
    The default, on a CUDA device, grows to what a quarter of the free memory holds
    (:func:`linr.engine.chunk_pixels_for`); any other value is kept as given."""
    batch_pixels: int | None = None
    """Fast engine: a random batch of this many pixels per step instead of all of them; only
    when every operator acts pixel by pixel (noisy, masked), otherwise ignored."""
    precision: str = "float32"
    """Fast engine: matmul precision of the hidden layers. 'float32' (the paper's mathematics),
    'bf16' (bfloat16 inputs, float32 accumulation; fast on CPUs with AMX and on GPUs) or 'tf32'
    (CUDA only); the first layer, the head and Adam stay float32 (see :mod:`linr.engine`)."""
    eval_every: int = 1
    """With a reference, PSNR is recorded every this many steps (1: every step, the default)
    whenever the fast engine would have to render the whole image only for it."""
    prior: str | None = None
    """An image prior added to the data term (:func:`linr.priors.parse_prior`, such as
    ``tv:0.05``, or ``tv:auto``: weight from the noise measured when the fit is built); None: the
    paper's fit, the network its only prior."""

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Real) \
                or int(self.steps) != self.steps or self.steps < 1:
            raise InputError(f"steps must be a positive integer, got {self.steps!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise InputError(f"seed must be a whole number, got {self.seed!r}")
        if self.steps > MAX_STEPS:
            raise InputError(f"steps must be at most {MAX_STEPS:,} (a paper fit takes 500 to 4000), "
                             f"got {self.steps:,}")
        if not (is_real(self.lr) and self.lr > 0):
            raise InputError(f"learning rate must be a positive number, got {self.lr!r}")
        if self.retry_lr is not None and not (is_real(self.retry_lr) and self.retry_lr > 0):
            raise InputError(f"retry learning rate must be a positive number, got {self.retry_lr!r}")
        if self.engine not in ("auto", "plain"):
            raise InputError(f"engine must be 'auto' or 'plain', got {self.engine!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.prior is not None:
            from .priors import NO_PRIOR, check_prior_spec

            check_prior_spec(self.prior)  # InputError naming the problem
            if self.prior == NO_PRIOR:
                object.__setattr__(self, "prior", None)
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("chunk_pixels", "eval_every"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value}")
        if self.batch_pixels is not None and (int(self.batch_pixels) != self.batch_pixels
                                              or self.batch_pixels < 1):
            raise InputError(f"batch_pixels must be a positive integer, got {self.batch_pixels}")


SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``steps``."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / steps))
    return 1.0
