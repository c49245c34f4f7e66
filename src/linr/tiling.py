"""Tiled restoration: an image of any size as overlapping tiles, each fitted by its own model with
its own stop rule, blended with smooth weights.

Why: a step costs about the same per pixel whatever the image size, but the step at which a fit
peaks grows with the image side, and one 7x256 network has a fixed number of parameters. A tile
of a few hundred pixels behaves like one of the paper's images (each tile uses the paper's
coordinate convention on its own grid), so the cost grows linearly with the pixel count and the
memory stays that of a stack of tiles.

How an observation is tiled: its operator says (:meth:`linr.operators.Operator.tile`) which of
its pixels a window of the clean image produces exactly as the whole image does; the tile's data
term uses those alone (the others are masked out), so an SR or deblurring tile is not fitted to
pixels that depend on the image outside it. Blending weights are zero in the band along a tile's
inner edges that its operators reach across (``halo``), rise as a raised cosine across the rest
of the overlap, and sum to one everywhere.

Layers: this module sits on :mod:`linr.fit` (one fit or a stack of fits per batch of tiles) and
below :mod:`linr.tasks` (presets choose the tile settings).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .errors import DivergenceError, InputError, LinrError
from .fit import (FitConfig, FitResult, Observation, clean_shape, describe_fit, fit, fit_many,
                  resolve_device)
from .operators import Compose, Mask, Window
from .problem import margins_of
from .stopping import StopRule

__all__ = ["TileSetting", "TileGrid", "parse_tile", "plan_grid", "grid_for", "tile_observations",
           "fit_tiled", "plan_tiles", "TileStore", "TileBatch", "fit_tile_group", "tile_store_path",
           "remove_tile_store", "tiled_held_out", "check_store_folder"]

MIN_RAMP = 8
"""Pixels of the raised-cosine ramp at least (the overlap is widened to 2 halo + this)."""


@dataclass(frozen=True)
class TileSetting:
    """``auto`` (the preset decides by image size), ``off`` (one fit of the whole image), or tiles
    of ``size`` pixels overlapping by ``overlap`` (None: the preset's)."""

    mode: str = "auto"
    size: int | None = None
    overlap: int | None = None

    def describe(self) -> str:
        if self.mode != "size":
            return self.mode
        return f"{self.size}" + ("" if self.overlap is None else f":{self.overlap}")


def parse_tile(value: "str | int | TileSetting | None") -> TileSetting:
    """``auto`` | ``off`` | ``SIZE`` | ``SIZE:OVERLAP`` (or an int size, or a setting)."""
    if value is None:
        return TileSetting()
    if isinstance(value, TileSetting):
        return value
    if isinstance(value, bool):
        raise InputError(f"tile must be 'auto', 'off', SIZE or SIZE:OVERLAP, got {value!r}")
    if isinstance(value, int):
        value = str(value)
    text = str(value).strip().lower()
    if text in ("auto", "off"):
        return TileSetting(text)
    size_text, colon, overlap_text = text.partition(":")
    try:
        if colon and not overlap_text:
            raise ValueError
        size = int(size_text)
        overlap = int(overlap_text) if overlap_text else None
    except ValueError:
        raise InputError(f"tile must be 'auto', 'off', SIZE or SIZE:OVERLAP (pixels), got {value!r}") from None
    if size < 16:
        raise InputError(f"tile size must be at least 16 pixels, got {size}")
    if overlap is not None and not 0 <= overlap <= size // 2:
        raise InputError(f"tile overlap must be between 0 and half the tile size ({size // 2}), got {overlap}")
    return TileSetting("size", size, overlap)


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of an image of ``shape`` lie: every tile is ``size`` (so that tiles stack),
    at the row starts ``rows`` and column starts ``cols``."""

    shape: tuple[int, int]
    size: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    overlap: int
    halo: int

    @property
    def windows(self) -> list[Window]:
        return [Window(r, c, self.size[0], self.size[1]) for r in self.rows for c in self.cols]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def weights(self, window: Window) -> np.ndarray:
        """(h, w) float32 blending weights of one tile (see the module's docstring)."""
        wy = _axis_weights(window.top, self.size[0], self.rows, self.halo)
        wx = _axis_weights(window.left, self.size[1], self.cols, self.halo)
        return (wy[:, None] * wx[None, :]).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"tiles": len(self), "size": list(self.size), "overlap": self.overlap, "halo": self.halo,
                "rows": list(self.rows), "cols": list(self.cols)}


def _axis_starts(length: int, size: int, overlap: int, align: int) -> tuple[int, ...]:
    """Starts of tiles of ``size`` covering ``[0, length)``, neighbours overlapping by at least
    ``overlap``, every start a multiple of ``align`` (``length`` and ``size`` are multiples)."""
    if size >= length:
        return (0,)
    count = max(2, math.ceil((length - overlap) / (size - overlap)))
    while True:
        starts = [round(i * (length - size) / (count - 1) / align) * align for i in range(count)]
        starts[-1] = length - size
        if all(b - a <= size - overlap for a, b in zip(starts, starts[1:])):
            return tuple(sorted(set(starts)))
        count += 1


def _axis_weights(start: int, size: int, starts: Sequence[int], halo: int) -> np.ndarray:
    """Weights along one axis of the tile at ``start``: 0 in the ``halo`` band of each inner edge,
    a raised-cosine ramp across the rest of the overlap with the neighbour, 1 elsewhere."""
    w = np.ones(size)
    x = np.arange(size) + 0.5
    index = list(starts).index(start)
    if index > 0:  # a neighbour before: rise across [halo, overlap - halo)
        overlap = starts[index - 1] + size - start
        w *= _ramp(x, halo, overlap - halo)
    if index < len(starts) - 1:  # a neighbour after: fall across the mirror band
        overlap = start + size - starts[index + 1]
        w *= _ramp(size - x, halo, overlap - halo)
    return w


def _ramp(x: np.ndarray, low: float, high: float) -> np.ndarray:
    t = np.clip((x - low) / max(high - low, 1e-9), 0.0, 1.0)
    return np.sin(t * np.pi / 2) ** 2


TILE_GROWTH = 1.125
"""A tile may be this much larger than the size asked for when that needs fewer tiles: a 512 px
side in tiles of 256 overlapping by 32 takes two tiles of 272 rather than three of 256 (whose
starts, spread evenly, overlapped by 128 px: 2.25 times the image's pixels fitted instead of
1.13 times)."""


def _balanced_size(length: int, size: int, overlap: int, align: int) -> int:
    """The side of the tiles along one axis: ``length`` when it is at most ``size`` (one tile);
    else the smallest side, a multiple of ``align`` and at least ``size``, with which as few
    tiles as tiles of ``TILE_GROWTH * size`` would need cover ``length`` overlapping by
    ``overlap`` (as :func:`_axis_starts` places them); never smaller than ``size``: where equal
    tiles of the asked size need no fewer tiles, they overlap more instead."""
    if length <= size:
        return length
    largest = max(size, int(TILE_GROWTH * size) // align * align)
    count = max(2, math.ceil((length - overlap) / (largest - overlap)))
    side = max(size, math.ceil((length + (count - 1) * overlap) / count / align) * align)
    while side < length and len(_axis_starts(length, side, overlap, align)) > count:
        side += align  # starts rounded to the alignment can leave a gap: widen until they fit
    return min(side, length)


def plan_grid(shape: tuple[int, int], size: int, overlap: int, *, halo: int = 0, align: int = 1) -> TileGrid:
    """Equal tiles of at least ``size`` (up to :data:`TILE_GROWTH` times it when that needs fewer
    tiles; multiples of ``align``; at most the image) over an image of ``shape``, overlapping by at
    least ``overlap``, widened to ``2 halo + MIN_RAMP`` when smaller."""
    height, width = shape
    size = math.ceil(size / align) * align
    needed = 2 * halo + MIN_RAMP
    if needed > size // 2:
        least = max(needed, overlap)  # the overlap a working tile needs: this one's, or the asked one
        raise InputError(f"tiles of {size} px are too small for these observations: a tile's edge band that "
                         f"its fit cannot explain is {halo} px wide here (how far the operators mix pixels), "
                         f"so tiles must overlap by at least {needed} px, more than half a tile; use larger "
                         f"tiles, e.g. --tile {math.ceil(2 * least / align) * align}:{least}")
    if overlap > size // 2:
        raise InputError(f"tiles of {size} px overlapping by {overlap} px: the overlap may be at most half a "
                         f"tile; give a smaller overlap (SIZE:OVERLAP, e.g. {size}:{max(needed, size // 4)}) "
                         f"or larger tiles")
    overlap = max(overlap, needed)
    th, tw = (_balanced_size(length, size, overlap, align) for length in (height, width))
    rows = _axis_starts(height, th, overlap, align)
    cols = _axis_starts(width, tw, overlap, align)
    return TileGrid((height, width), (th, tw), rows, cols, overlap, halo)


def grid_for(observations: Sequence[Observation], setting: TileSetting, *, size: int, overlap: int,
             whole_up_to: int) -> TileGrid | None:
    """The grid for these observations, or None for one fit of the whole image: ``off``; ``auto``
    when neither side exceeds ``whole_up_to`` (``size``/``overlap``: the preset's tiles, under
    ``auto`` enlarged to twice the overlap a wide operator needs, see :func:`plan_grid`)."""
    if setting.mode == "off":
        return None
    shape = clean_shape(observations)
    if setting.mode == "auto" and max(shape) <= whole_up_to:
        return None
    if setting.mode == "size":
        size = setting.size or size
        # no overlap asked for: the preset's, or a quarter of a tile too small for it (a new user's
        # --tile 48 was refused for the 32 px overlap they never gave); plan_grid still widens it
        # to what the operators need
        if setting.overlap is not None:
            overlap = setting.overlap
        elif overlap > size // 2:
            overlap = math.ceil(size / 4)
    halo = max(o.operator.halo for o in observations)
    align = math.lcm(*(o.operator.alignment for o in observations))
    if setting.mode == "auto":  # no size asked for: tiles large enough for the operators' reach
        size = max(size, 2 * max(overlap, 2 * halo + MIN_RAMP))
    grid = plan_grid(shape, size, overlap, halo=halo, align=align)
    return None if len(grid) == 1 else grid


def tile_observations(observations: Sequence[Observation], window: Window,
                      shape: tuple[int, int]) -> list[Observation]:
    """Each observation restricted to ``window`` of the clean image: its pixels there, the window's
    operator, and a mask over the pixels that operator does not produce exactly."""
    tiled = []
    for obs in observations:
        try:
            part = obs.operator.tile(window, shape)
        except ValueError as exc:
            raise InputError(f"{obs.kind} observation: {exc}") from None
        rows, cols = part.window.slices
        operator = part.operator
        if part.valid is not None and not part.valid.all():
            operator = Compose([operator, Mask(part.valid.astype(np.float32))])
        tiled.append(replace(obs, image=obs.image[rows, cols], operator=operator))
    return tiled


def tiled_held_out(observations: Sequence[Observation], grid: TileGrid,
                   make_stop: Callable[[list[Observation]], StopRule | None]) -> list[np.ndarray | None] | None:
    """Per observation (in its order), the (h, w) bool pixels that no tile's fit trained on: those
    that the hold-out stop rule of every tile whose window holds them left out of its data term
    (``make_stop`` gives each tile's rule from its observations, as :func:`fit_tiled`'s; its held-out
    pixels are drawn from a fixed seed, so they are found again here without fitting, for tiles
    fitted by workers or resumed from a store too). A pixel inside two tiles' windows is held out
    only where both drew it; None where a tile's rule holds nothing out, or no pixel is."""
    from .stopping import holdout_rule

    counts = [np.zeros(o.image.shape[:2], np.int16) for o in observations]  # tiles holding each pixel
    held = [np.zeros(o.image.shape[:2], np.int16) for o in observations]  # of them, those that held it out
    for window in grid.windows:
        parts = tile_observations(observations, window, grid.shape)
        rule = holdout_rule(make_stop(parts))
        if rule is None:
            return None
        rule.reset()  # as a fit does before it prepares (a rule made once would keep its masks)
        rule.prepare(parts)
        for k, (obs, mask) in enumerate(zip(observations, rule.held_out_masks())):
            rows, cols = obs.operator.tile(window, grid.shape).window.slices
            counts[k][rows, cols] += 1
            if mask is not None:
                held[k][rows, cols] += mask
    found = [(h == c) & (c > 0) for h, c in zip(held, counts)]
    found = [m if m.any() else None for m in found]
    return found if any(m is not None for m in found) else None


def store_fingerprint(observations: Sequence[Observation], config: FitConfig, grid: TileGrid,
                      stop: str) -> str:
    """What makes a tile's result: the inputs' pixels, their operators (described, and their
    arrays: a blur's kernel, a mask), their data terms (other than the paper's squared error:
    photon noise and its peak; until the thirty-second session none, so a store made then of
    squared-error inputs still resumes), the settings, the grid and the stop rule."""
    from .fidelity import SquaredError

    h = hashlib.sha256()
    for obs in observations:
        h.update(np.ascontiguousarray(obs.image).tobytes())
        h.update(json.dumps([obs.kind, obs.weight, obs.operator.describe()], sort_keys=True,
                            default=str).encode())
        if type(obs.fidelity) is not SquaredError:  # a subclass (censored at white) is another store
            h.update(json.dumps(obs.fidelity.describe(), sort_keys=True, default=str).encode())
        _hash_arrays(h, obs.operator)
    settings = {k: v for k, v in config.__dict__.items() if k != "progress"}
    h.update(json.dumps([settings, grid.describe(), stop], sort_keys=True, default=str).encode())
    if any(margins_of(observations)):  # tiles are kept as their renderings, margins included
        h.update(b"rendering")
    return h.hexdigest()[:20]


def _hash_arrays(h: Any, operator: Any) -> None:
    """Feed ``h`` the arrays an operator holds (and those of the operators it wraps), which its
    description only summarises (a kernel by its shape, a mask by its kept fraction)."""
    import torch

    for name, value in sorted(vars(operator).items()):
        if name.startswith("_"):  # caches
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if torch.is_tensor(item):
                h.update(item.detach().cpu().contiguous().numpy().tobytes())
            elif isinstance(item, np.ndarray):
                h.update(np.ascontiguousarray(item).tobytes())
            elif hasattr(item, "describe") and hasattr(item, "forward"):  # a wrapped operator
                _hash_arrays(h, item)


def tile_store_paths(output: str | Path, frames: int) -> list[Path]:
    """The tile folders of an output of ``frames`` restorations (:func:`tile_store_path`): one, or one
    per frame of a stack restored frame by frame (``out.tif.frame1.tiles``, ...)."""
    return [tile_store_path(output, None if frames == 1 else k + 1) for k in range(frames)]


def tile_store_path(output: str | Path, frame: int | None = None) -> Path:
    """The folder beside an output file that keeps its finished tiles until it is written
    (``out.png.tiles``; ``out.tif.frame2.tiles`` for the second frame of a stack; a name too
    long to take ``.tiles`` is cut, and a digest of it added: :func:`linr.images.name_with_room`)."""
    from .images import name_limit, name_with_room

    output = Path(output)
    name = output.name + ("" if frame is None else f".frame{frame}")
    return output.with_name(name_with_room(name, name_limit(output.parent) - len(".tiles")) + ".tiles")


class TileStore:
    """Finished tiles kept in a folder (``tile_00012.npy`` and ``tile_00012.json``) so that a
    killed run resumes without refitting them. A folder written for other inputs or settings
    (another fingerprint) is refused rather than mixed in, or, with ``replace`` (a folder its
    caller owns, such as a batch output's), emptied and reused."""

    def __init__(self, folder: str | Path, fingerprint: str, *, replace: bool = False):
        self.folder = check_store_folder(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if check_store(self.folder, fingerprint, replace=replace):
            for path in self.folder.glob("tile_*"):  # none finished, or replaced: nothing is mixed in
                path.unlink()
        (self.folder / "fingerprint.txt").write_text(fingerprint + "\n")

    def _paths(self, index: int) -> tuple[Path, Path]:
        return self.folder / f"tile_{index:05d}.npy", self.folder / f"tile_{index:05d}.json"

    def load(self, index: int) -> tuple[np.ndarray, dict[str, Any]] | None:
        image_path, info_path = self._paths(index)
        if not (image_path.exists() and info_path.exists()):
            return None
        return np.load(image_path), json.loads(info_path.read_text())

    def save(self, index: int, image: np.ndarray, info: dict[str, Any]) -> None:
        image_path, info_path = self._paths(index)
        tmp = image_path.with_suffix(".tmp.npy")
        np.save(tmp, image)
        tmp.replace(image_path)
        info_tmp = info_path.with_suffix(".tmp")
        info_tmp.write_text(json.dumps(info))
        info_tmp.replace(info_path)  # the info last: a tile counts as finished once it exists

    def remove(self) -> None:
        remove_tile_store(self.folder)


def check_store_folder(folder: str | Path) -> Path:
    """``folder`` as a Path, or a one-line error when a tile store could not be kept there: a file
    of that name, or a place where no file can be made."""
    from .images import check_writable_folder

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"tile store {folder}: is a file, not a folder (finished tiles are kept in a folder "
                         "there, so that a killed run resumes them)")
    try:
        check_writable_folder(folder / "fingerprint.txt")
    except InputError as exc:
        raise InputError(f"tile store {exc}") from None
    return folder


def check_store(folder: str | Path, fingerprint: str, *, replace: bool = False) -> bool:
    """Whether a tile store folder was made for another restoration than this ``fingerprint``
    (:func:`store_fingerprint`; its tiles are then not to be resumed). One holding finished tiles
    of it is refused in one line unless ``replace``."""
    held = stored_fingerprint(folder)
    if held is None or held == fingerprint:
        return False
    if not replace and count_finished(folder):
        raise InputError(f"{folder} holds finished tiles of another image, other settings or another version of "
                         "linr; remove it (its tiles are fitted again), choose another output, or discard them "
                         "with --force (Python: tile_store_replace=True)")
    return True


def count_finished(folder: str | Path) -> int:
    """How many finished tiles a tile store folder holds, for whatever restoration (0: none, or no
    folder); a tile counts once its info file exists (:meth:`TileStore.save`)."""
    return len(list(Path(folder).glob("tile_*.json")))


def stored_fingerprint(folder: str | Path) -> str | None:
    """The fingerprint a tile store folder was made for (:func:`store_fingerprint`), or None when
    there is no store there."""
    marker = Path(folder) / "fingerprint.txt"
    return marker.read_text().strip() if marker.exists() else None


def finished_tiles(folder: str | Path, fingerprint: str) -> int:
    """How many finished tiles a tile store folder holds for the restoration of this
    ``fingerprint`` (:func:`store_fingerprint`): 0 when there is no store or it holds another's."""
    if stored_fingerprint(folder) != fingerprint:
        return 0
    return count_finished(folder)


def remove_tile_store(folder: str | Path) -> None:
    """Delete a tile folder's tiles and fingerprint, and the folder when nothing else is in it."""
    folder = Path(folder)
    for path in folder.glob("tile_*"):
        path.unlink()
    (folder / "fingerprint.txt").unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # something else lives there, or it is gone already


def plan_tiles(observations: Sequence[Observation], config: FitConfig, grid: TileGrid, *, stack: int = 1,
               whole_output_every_step: bool = False, flops_per_second: float = 5e10, done: int = 0) -> Any:
    """:func:`linr.cost.plan` of a tiled restoration: one tile's estimate, its time times the
    number of tiles still to fit (``done`` are finished: resumed from a store; automatic stops
    counted at their budget) and its memory times the stack, plus the whole image's arrays
    (:func:`image_bytes`)."""
    from .cost import plan

    one = plan(tile_observations(observations, grid.windows[0], grid.shape), config,
               whole_output_every_step=whole_output_every_step, flops_per_second=flops_per_second)
    return replace(one, seconds=one.seconds * max(len(grid) - done, 0),
                   memory_bytes=one.memory_bytes * max(stack, 1) + image_bytes(observations, grid.shape))


def image_bytes(observations: Sequence[Observation], shape: tuple[int, int]) -> int:
    """Bytes of the whole image's arrays while its tiles are fitted: the observations' images
    (float32) and :func:`fit_tiled`'s blend (float32: the weighted sum, C values per pixel, divided
    in place into the image, and the weights' sum, one), over the image grown by the margins when
    the tiles render beyond their windows, whose frame is then copied out (C more per pixel). An
    8192 x 8192 RGB photo restored in tiles by a tiny network peaked at 3.7 GiB (BENCHMARKS.md,
    "Tiles"; before the sums were divided in place, when these were 2.5 GiB: now 1.75), 0.75 GiB of
    the benchmark's clean image, and one tile's fit."""
    channels = observations[0].channels
    held = sum(int(np.asarray(o.image).size) * 4 for o in observations)
    top, bottom, left, right = margins = margins_of(observations)
    blend = (shape[0] + top + bottom) * (shape[1] + left + right) * (4 * channels + 4)
    return held + blend + (shape[0] * shape[1] * 4 * channels if any(margins) else 0)


def _batches(indices: Sequence[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(indices), size):
        yield list(indices[i:i + size])


@dataclass
class TileBatch:
    """Tiles a worker fits at once (picklable: observations and rules, no files): a stack when
    ``len(indices) > 1``."""

    indices: list[int]
    parts: list[list[Observation]]
    config: FitConfig
    stops: list[StopRule | None]
    threads: int | None = None
    """torch threads for the fit (None: the process's own); fixed, since the thread count
    changes float summation order and so the result's last bits."""


def fit_tile_group(batch: TileBatch, on_step: Callable[[int, Any, float, int], None] | None = None,
                   ) -> list[tuple[int, np.ndarray, dict[str, Any]]] | dict[str, str]:
    """Fit one :class:`TileBatch` (in this process, a worker process or a Ray task): per tile its
    index, image and record; or ``{"error": ..., "kind": ...}`` when a fit failed (the driver
    raises it: an exception's own class may not survive the trip back from a Ray task).
    ``on_step(step, output, loss, index)``: after each step of a one-tile batch's fit (the fit's
    ``callback`` arguments and the tile's index); what it raises is raised, not reported."""
    import torch

    if on_step is not None and len(batch.parts) > 1:
        raise ValueError("a per-step callback follows one tile's fit, not a stack of them")
    raised: list[BaseException] = []

    def follow(step: int, output: Any, loss: float) -> None:
        try:
            on_step(step, output, loss, batch.indices[0])
        except BaseException as exc:
            raised.append(exc)
            raise

    previous = torch.get_num_threads()
    if batch.threads:
        torch.set_num_threads(batch.threads)
    try:
        if len(batch.parts) > 1:
            results = fit_many(batch.parts, batch.config, stops=batch.stops)
        else:
            results = [fit(batch.parts[0], batch.config, stop=batch.stops[0],
                           callback=None if on_step is None else follow)]
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which raises it
        if raised:  # the caller's own callback stopped the fit (a cancelled job): its exception
            raise raised[0] from None
        return {"error": " ".join(str(exc).split()), "kind": type(exc).__name__}
    finally:
        torch.set_num_threads(previous)
    # a tile rendered beyond its window (free edges) is kept whole: the image's margins come from it
    return [(index, result.image if result.extended_image is None else result.extended_image, {"steps_run": result.steps_run, "stop_step": result.stop_step,
                                   "stop_reason": result.stop_reason, "fit_s": result.timings["fit_s"],
                                   **{k: v for k, v in result.settings.items() if k in ("prior_used", "retry")}})
            for index, result in zip(batch.indices, results)]


def fit_tiled(
    observations: Sequence[Observation],
    config: FitConfig,
    grid: TileGrid,
    *,
    make_stop: Callable[[list[Observation]], StopRule | None],
    reference: np.ndarray | None = None,
    stack: int = 1,
    store: str | Path | None = None,
    store_owned: bool = False,
    store_replace: bool = False,
    store_kept: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
    stop_name: str = "",
    executor: Any = None,
    threads: int | None = None,
    on_step: Callable[[int, Any, float, int], None] | None = None,
) -> FitResult:
    """Restore the whole image tile by tile (``stack`` tiles at a time as one stack of models on
    the fast engine) and blend. ``make_stop`` gives each tile its own stop rule from its
    observations. ``store``: a folder that keeps finished tiles (resume), removed once the image
    is assembled; ``store_owned``: the caller owns it (a folder left by other inputs or settings
    is emptied and reused, and it is kept: the caller removes it once the output is written);
    ``store_replace``: a folder left by other inputs or settings is emptied and reused (one with
    no finished tile always is; otherwise refused); ``store_kept``: it is kept once the image is
    assembled, for the caller to remove once its output is written (a refinement after the fit
    can take as long as the fit: an interrupted one then loses no tile). ``progress(done, total,
    seconds)`` is called after each batch. ``reference`` is only measured on the result.

    ``executor``: where batches are fitted (None: here, one after the other): an object with
    ``slots``, ``submit(batch) -> handle``, ``wait(handles) -> [(handle, result)]`` and
    ``cancel(handles)`` and ``close(abort=...)`` running :func:`fit_tile_group` (the local worker pool or Ray backend of
    :mod:`linr.batch`), kept ``slots`` batches busy; the caller closes it. Tiles are blended in
    the same order whatever finishes first, so with the same ``threads`` per fit the image is
    the same, to the bit, as without an executor. Only the driver (this process) writes files.
    ``on_step(step, output, loss, index)``: after each step of each tile's fit, with the fit's
    ``callback`` arguments and the tile's index in ``grid.windows`` (tiles then are fitted one at
    a time, in this process: no ``executor``; tiles resumed from ``store`` are not fitted, so not
    followed); what it raises stops the restoration.

    Returns a :class:`FitResult` whose history is empty and whose ``settings['tiles']`` lists each
    tile's window, steps and stop. When the fits render beyond their windows (a blur with free
    edges, :func:`linr.problem.margins_of`), its ``extended_image`` is the image grown by those
    margins: beyond the image's edges the outer tiles' renderings, blended along the edges with the
    tiles' own weights (each weight carried outward from the window's edge)."""
    from .fit import _uses_engine  # the one rule for whether fits can be stacked

    if on_step is not None and executor is not None:
        raise ValueError("a per-step callback follows fits in this process, not an executor's")
    t_start = time.perf_counter()
    observations = list(observations)
    shape = grid.shape
    channels = observations[0].channels
    windows = grid.windows
    quiet = replace(config, progress=False)
    saved = TileStore(store, store_fingerprint(observations, config, grid, stop_name), replace=store_owned or store_replace) \
        if store else None
    margins = margins_of(observations)
    canvas = _Canvas(shape, channels, margins, grid.halo)
    infos: list[dict[str, Any] | None] = [None] * len(windows)

    def blend(image: np.ndarray, window: Window) -> None:
        canvas.add(image, grid.weights(window), window)

    todo = []
    for index, window in enumerate(windows):
        found = saved.load(index) if saved else None
        if found is None:
            todo.append(index)
            continue
        image, info = found
        blend(image, window)
        infos[index] = {**info, "resumed": True}
    stackable = _uses_engine(config) and stack > 1 and on_step is None
    done = len(windows) - len(todo)
    if progress:
        progress(done, len(windows), 0.0)
    def make_batch(indices: list[int]) -> TileBatch:
        parts = [tile_observations(observations, windows[i], shape) for i in indices]
        return TileBatch(indices, parts, quiet, [make_stop(p) for p in parts], threads)

    # Finished tiles are blended in the order of `todo` (buffered until their turn), so that the
    # sums, and the image, do not depend on which worker finished first.
    finished: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
    cursor = 0

    def take(results: Any) -> None:
        nonlocal cursor, done
        if isinstance(results, dict):  # a failed fit, or a lost worker (linr.batch backends)
            cls = {"DivergenceError": DivergenceError, "InputError": InputError}.get(
                results.get("kind", ""), LinrError)
            raise cls(f"a tile's fit failed: {results['error']}")
        for index, image, record in results:
            window = windows[index]
            info = {"window": [window.top, window.left, window.height, window.width], **record}
            if saved:
                saved.save(index, image, info)
            finished[index] = (image, info)
        while cursor < len(todo) and todo[cursor] in finished:
            index = todo[cursor]
            image, info = finished.pop(index)
            blend(image, windows[index])
            infos[index] = info
            cursor += 1
        done += len(results)
        if progress:
            progress(done, len(windows), time.perf_counter() - t_start)

    batches = list(_batches(todo, stack if stackable else 1))
    if executor is None:
        for indices in batches:
            take(fit_tile_group(make_batch(indices), on_step))
    else:
        pending: list[Any] = []
        queue = iter(batches)
        try:
            while True:
                while len(pending) < executor.slots:
                    indices = next(queue, None)
                    if indices is None:
                        break
                    pending.append(executor.submit(make_batch(indices)))
                if not pending:
                    break
                failure = None
                for handle, results in executor.wait(pending):
                    pending.remove(handle)
                    try:
                        take(results)
                    except LinrError as exc:  # keep the other finished tiles (stored) first
                        failure = failure or exc
                if failure is not None:
                    raise failure
        except BaseException:
            # a failed tile fails the image: stop its other tiles rather than let them run on
            # beside whatever comes next (finished ones are kept in the store for a rerun)
            cancel = getattr(executor, "cancel", None)
            if pending and cancel is not None:
                cancel(pending)
            raise
    grown = canvas.image()
    image = canvas.frame(grown)
    if saved and not (store_owned or store_kept):
        saved.remove()
    result = _result(image, infos, grid, config, observations, time.perf_counter() - t_start, stack,
                     stackable, stop_name)
    if any(margins):
        result.extended_image = grown
    return result


class _Canvas:
    """The blend of the tiles' renderings: the image grown by ``margins`` (top, bottom, left,
    right; all 0 when the fits render their windows only). Each tile's weights are carried outward
    by edge replication, so that beyond the image's edges the outer tiles blend as they do along
    the edge. Inside the image this is the blend of the windows alone, to the bit: a tile's weight
    is 0 along each inner edge (its ``halo`` band, at least a pixel whenever there are margins), so
    what it renders beyond an inner edge adds nothing."""

    def __init__(self, shape: tuple[int, int], channels: int, margins: tuple[int, int, int, int], halo: int):
        if any(margins) and halo < 1:
            raise RuntimeError(f"tiles rendered beyond their windows ({margins}) need a halo of at least 1 px")
        self.shape, self.margins = shape, margins
        top, bottom, left, right = margins
        self.total = np.zeros((shape[0] + top + bottom, shape[1] + left + right, channels), np.float32)
        self.weight_sum = np.zeros(self.total.shape[:2], np.float32)

    def add(self, rendering: np.ndarray, weights: np.ndarray, window: Window) -> None:
        """Add one tile's rendering: its window grown by the margins."""
        top, bottom, left, right = self.margins
        if rendering.shape[:2] != (window.height + top + bottom, window.width + left + right):
            raise RuntimeError(f"a tile rendered {rendering.shape[:2]} px, not its {window.height}x{window.width} "
                               f"window grown by {self.margins}")
        if any(self.margins):
            weights = np.pad(weights, ((top, bottom), (left, right)), mode="edge")
        rows, cols = Window(window.top, window.left, *rendering.shape[:2]).slices
        self.total[rows, cols] += rendering * weights[..., None]
        self.weight_sum[rows, cols] += weights

    def image(self) -> np.ndarray:
        """The blended image grown by the margins (the accumulator itself, divided in place: call once)."""
        if not (self.weight_sum > 0).all():  # the grid's weights, carried outward, cover every pixel
            raise RuntimeError("tile weights leave pixels uncovered")
        self.total /= self.weight_sum[..., None]
        return self.total

    def frame(self, grown: np.ndarray) -> np.ndarray:
        """The image's own pixels of ``grown`` (itself when there are no margins)."""
        if not any(self.margins):
            return grown
        top, _, left, _ = self.margins
        return np.ascontiguousarray(grown[top:top + self.shape[0], left:left + self.shape[1]])


def _result(image: np.ndarray, infos: list[dict[str, Any] | None], grid: TileGrid, config: FitConfig,
            observations: list[Observation], seconds: float, stack: int, stacked: bool,
            stop_name: str) -> FitResult:
    steps = [i["steps_run"] for i in infos if i]
    stop_steps = [i["stop_step"] for i in infos if i]
    fitted = [i for i in infos if i and not i.get("resumed")]
    reason = (f"{len(infos)} tiles ({len(infos) - len(fitted)} resumed); steps per tile "
              f"{min(steps)}-{max(steps)} (median {int(np.median(steps))})")
    if stop_steps != steps:  # a rule that returns an earlier iterate (the pick's best held-out one, say)
        reason += (f"; the iterates returned from steps {min(stop_steps)}-{max(stop_steps)} "
                   f"(median {int(np.median(stop_steps))})")
    weights = [1.0 if o.weight is None else float(o.weight) for o in observations]
    settings = {
        # the model as each tile's fit resolved it (the tiles are of one size)
        **describe_fit(replace(config, model=config.model.for_image(*grid.size)),
                       resolve_device(config.device), grid.shape, image.shape[2], observations, weights),
        "stop": stop_name or "fixed",
        "tiling": {**grid.describe(), "stack": stack if stacked else 1},
        "tiles": infos,
    }
    fit_s = sum(i["fit_s"] for i in fitted)
    # no one step of the whole image: each tile's steps and seconds are in settings['tiles']
    timings = {"setup_s": 0.0, "fit_s": seconds, "tiles_fit_s": fit_s, "per_step_s": None,
               "eval_s": 0.0, "train_s": seconds, "total_s": seconds}
    return FitResult(image.astype(np.float32, copy=False), {}, max(steps), int(np.median(stop_steps)), reason,
                     timings, settings)
