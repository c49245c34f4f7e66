"""linr: zero-shot image restoration with implicit neural representations (the LINR method).

Import is cheap: the submodules (and torch) load on first use of a name below.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "fit": "fit",
    "fit_many": "fit",
    "FitConfig": "fit",
    "FitResult": "fit",
    "Observation": "fit",
    "FittedModel": "fitted",
    "load_model": "fitted",
    "render_model": "fitted",
    "ModelConfig": "models",
    "build_model": "models",
    "coordinate_grid": "models",
    "Identity": "operators",
    "Downsample": "operators",
    "Mask": "operators",
    "Blur": "operators",
    "Compose": "operators",
    "gaussian_kernel": "operators",
    "noisy": "tasks",
    "lowres": "tasks",
    "masked": "tasks",
    "blurred": "tasks",
    "restore": "tasks",
    "restore_many": "tasks",
    "restore_cost": "tasks",
    "parse_kernel": "tasks",
    "PRESETS": "tasks",
    "psnr": "metrics",
    "ssim": "metrics",
    "evaluate": "metrics",
    "read_image": "images",
    "read_mask": "images",
    "write_image": "images",
    "LinrError": "errors",
    "InputError": "errors",
    "DivergenceError": "errors",
    "StopRule": "stopping",
}

__all__ = sorted(_EXPORTS)


def _exported(name: str) -> Any:
    """The object exported as ``name``, from its submodule (:data:`_EXPORTS`), imported now."""
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = globals()[name] = _exported(name)
        return value
    raise AttributeError(f"module 'linr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)


class _Package(types.ModuleType):
    """This package's module object: ``linr.fit`` is the function :func:`linr.fit.fit` it exports,
    also once the submodule of that name is imported (the import system would otherwise set the
    attribute to the submodule, and ``linr.fit(...)`` would fail with "'module' object is not
    callable"). The submodule stays in ``sys.modules['linr.fit']`` (``from linr.fit import ...``)."""

    @property
    def fit(self) -> Any:
        return self.__dict__.get("_fit_assigned") or _exported("fit")

    @fit.setter
    def fit(self, value: Any) -> None:
        if not isinstance(value, types.ModuleType):  # the submodule, set by its import, stays in sys.modules
            self.__dict__["_fit_assigned"] = value  # a user's own (a test's patch)

    @fit.deleter
    def fit(self) -> None:
        self.__dict__.pop("_fit_assigned", None)


sys.modules[__name__].__class__ = _Package
