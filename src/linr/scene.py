"""Loading a scene from files: the one reader that ``linr restore``, ``linr batch`` and Python
callers share.

    >>> observations, infos, inputs = load_scene({"noisy": "shot.png", "lowres": "small.png"},
    ...                                          {"factor": 4})          # doctest: +SKIP
    >>> load_scene({"noisy": ["a.png", "b.png"]})      # a burst: two noisy frames, doctest: +SKIP
    >>> load_scene({"noisy": "burst/*.png"})           # a glob, doctest: +SKIP
    >>> load_scene({"noisy": "stack.tif"}, {"noise": "poisson", "peak": 30})  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .errors import InputError
from .images import (GIVEN_RANGE_SLACK, ImageInfo, ValueRange, choose_value_ranges, dim_integer_range,
                     own_units_note, partial_range_note, read_stored, refuse_one_pixel, refuse_undefined, to_unit)
from .kinds import DIM_INTEGERS_BELOW, KINDS, left_out_where_transparent

__all__ = ["load_scene", "expand_paths", "split_frames", "default_frames", "read_references"]

def other_case_hint(spec: str, keep: Callable[[Path], bool] = lambda _: True) -> str:
    """A hint where a glob matches no file (that ``keep`` keeps) but would with its letters' case
    ignored (a glob is case-sensitive: 'photos/*.jpg' misses IMG_0001.JPG); else ''. The same glob,
    each letter either case (``[jJ][pP][gG]``): the same folders and depth; a glob with sets of its
    own (``[...]``) gets no hint."""
    if not glob.has_magic(spec) or "[" in spec:
        return ""
    either = "".join(f"[{c.lower()}{c.upper()}]" if c.lower() != c.upper() else c for c in spec)
    hits = sorted(p for p in map(Path, glob.glob(either, recursive=True)) if p.is_file() and keep(p))
    return f"; a glob is case-sensitive, and {len(hits)} file(s) such as {hits[0]} match it with case ignored" \
        if hits else ""


def expand_paths(spec: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[str]:
    """The files one kind names: a path, a quoted glob (``burst/*.png``, sorted matches), or a
    list of them, in order. A glob that matches no file is an error, as is a file named twice."""
    if spec is None:
        return []
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    paths: list[str] = []
    for item in specs:
        text = os.fspath(item)
        if glob.has_magic(text) and not os.path.exists(text):
            matches = sorted(p for p in glob.glob(text) if os.path.isfile(p))
            if not matches:
                raise InputError(f"{text}: no file matches this pattern{other_case_hint(text)}")
            paths += matches
        else:
            paths.append(text)
    seen: set[str] = set()
    for path in paths:
        key = os.path.realpath(path)
        if key in seen:
            raise InputError(f"{path}: named twice (each frame is one observation)")
        seen.add(key)
    return paths


def load_scene(files: Mapping[str, str | os.PathLike | Sequence[str | os.PathLike] | None],
               options: Mapping[str, Any] | None = None,
               *, weights: Mapping[str, float] | None = None, notes: list[str] | None = None,
               value_range: "str | tuple[float, float] | None" = None,
               ) -> tuple[list[Any], list[ImageInfo], list[str]]:
    """The observations of one scene from image files.

    ``files`` maps a registered kind (:data:`linr.kinds.KINDS`) to its image file, a glob, or a
    list of them (None: not given); every frame is its own observation of that kind (a burst),
    and each image of a multi-image TIFF is a frame. A kind's frames must agree in size and
    channels. ``options`` maps the kinds' option names (``factor``, ``mask``, ``kernel``, ...) to
    values (None or absent: the option's default), the same for every frame of the kind.
    ``weights`` sets data-term weights per kind (each frame gets it).
    Each kind builds its observation from the image and its options (e.g. a masked image whose
    alpha marks its holes is its own mask, and its alpha is dropped from its info). ``notes``
    receives lines for the user (how a mask was read, how values were scaled).
    ``value_range``: how stored values map to the fit's [0, 1], one rule for every frame (None:
    the default rule, 'auto', or (LO, HI) in the inputs' units; see
    :func:`linr.images.choose_value_ranges`).

    Returns the observations (in the registry's order), each one's
    :class:`~linr.images.ImageInfo` (bit depth, alpha to write back) and every input file read
    (never to be overwritten).
    """
    options = dict(options or {})
    weights = dict(weights or {})
    notes = [] if notes is None else notes
    unknown = [name for name in files if name not in KINDS]
    if unknown:
        raise InputError(f"unknown observation kind(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(KINDS)}")
    observations, infos, inputs = [], [], []
    stored = {kind.name: [(path, read_stored(path)) for path in expand_paths(files.get(kind.name) or None)]
              for kind in KINDS.values()}
    _each_file_one_kind(stored)
    everything = [(path, im) for found in stored.values() for path, images in found for im in images]
    values_of = {kind.name: {opt.dest: opt.default if options.get(opt.dest) is None else options[opt.dest]
                             for opt in kind.options} for kind in KINDS.values()}
    chosen = choose_value_ranges([im for _, im in everything], value_range)
    if own := own_units_note(everything, chosen, value_range, "every input's sample type holds"):
        notes.append(own)
    if value_range is None:
        chosen = _dim_integers_on_their_bits(stored, everything, chosen, values_of, notes)
    _note_ranges(everything, chosen, notes)
    ranges = iter(chosen)
    for kind in KINDS.values():
        paths = [path for path, _ in stored[kind.name]]
        frames = [to_unit(im, next(ranges)) for _, images in stored[kind.name] for im in images]
        _check_frames(kind.name, frames)
        _note_degenerate(kind.name, frames, notes)
        values = values_of[kind.name]
        extras: list[str] = []
        built = []
        if kind.transparent == "filled":  # what is measured and fitted: the opaque pixels' values
            frames = filled_from_each_other(frames)
        for image, info in frames:
            if info.converted and (line := f"{info.path}: {info.converted}") not in notes:  # a CMYK JPEG's colours
                notes.append(line)
            obs, extra = kind.build(image, info, values, notes)
            if kind.transparent == "left-out" and info.fits is None:  # filled once, here (the builders read
                obs = left_out_where_transparent(obs, info.alpha)  # no values); a FITS file's undefined ones are refused
            if kind.name in weights:
                obs = dataclasses.replace(obs, weight=weights[kind.name])
            built.append(obs)
            extras += [e for e in extra if e not in extras]
        _note_transparent(kind.name, frames, notes, left_out=kind.transparent == "left-out")
        _note_fits_colour(frames, notes)
        if kind.frame_notes is not None:
            notes += kind.frame_notes(built, [info for _, info in frames], values)
        observations += built
        infos += [info for _, info in frames]
        inputs += paths + extras
    for kind in weights:
        if not any(o.kind == kind for o in observations):
            raise InputError(f"--weight {kind}=... given without a --{kind} observation")
    if not observations:
        raise InputError("give at least one of " + ", ".join(f"--{name}" for name in KINDS))
    if options.get("factor") is None and any(o.kind == "lowres" for o in observations) and len(observations) > 1:
        from .kinds import DEFAULT_FACTOR
        from .problem import clean_shape

        try:  # a size that disagrees because the factor was assumed: say so with the disagreement
            clean_shape(observations)
        except InputError as exc:
            raise InputError(f"{exc}; --factor was not given, so the low-res image was taken as x{DEFAULT_FACTOR}: "
                             "give its factor (--factor N)") from None
    counts = sorted({o.channels for o in observations})
    if len(counts) > 1:
        kinds = "greyscale and colour images" if counts == [1, 3] else \
            f"images of {' and '.join(map(str, counts))} channels"
        raise InputError(f"observations mix {kinds}; convert them to one kind")
    return observations, infos, inputs


def _dim_integers_on_their_bits(stored: Mapping[str, list], everything: Sequence[tuple[str, Any]],
                                chosen: list[ValueRange], values_of: dict[str, dict[str, Any]],
                                notes: list[str]) -> list[ValueRange]:
    """``chosen``, or for dim integer photos (:func:`linr.images.dim_integer_range`) that a given
    kind's data term needs on the fit's whole scale (:attr:`linr.kinds.Kind.on_dim_integers`) the
    range of the few low bits they fill, for every image of the scene (one rule for a scene), with
    those kinds' options in ``values_of`` converted to it and a note saying so."""
    bits = dim_integer_range([im for _, im in everything], chosen, DIM_INTEGERS_BELOW)
    if bits is None:
        return chosen
    white, why = chosen[0].high, []
    for kind in KINDS.values():
        if stored[kind.name] and kind.on_dim_integers is not None and \
                (done := kind.on_dim_integers(values_of[kind.name], white, bits.high)) is not None:
            values_of[kind.name], line = done
            why.append(line)
    if not why:
        return chosen
    files = list(dict.fromkeys(path for path, _ in everything))
    top = max(int(np.max(im.values)) for _, im in everything)
    notes.append(f"values of {', '.join(files)} ({everything[0][1].type_name}) reach only {top} of {white:g}: mapped "
                 f"{bits.describe()}, as {'; '.join(why)}; its PSNR is on that range (linr metrics maps such files by "
                 f"their type's: --range 0:{bits.high:g} there measures them as here)")
    return [bits] * len(chosen)


def _note_ranges(images: Sequence[tuple[str, Any]], ranges: Sequence[Any], notes: list[str]) -> None:
    """A line for each value range that is not a sample type's default, naming its files."""
    seen: dict[Any, list[tuple[str, Any]]] = {}
    by_type: dict[str, list[Any]] = {}  # images mapped by their type's range, per file
    for (path, im), vr in zip(images, ranges):
        if vr.rule in ("data", "given"):
            seen.setdefault(vr, []).append((path, im))
        elif vr.rule == "dtype":
            by_type.setdefault(path, []).append(im)
    for path, ims in by_type.items():  # 12-bit (or fewer) data in 16-bit files, as linr metrics notes it
        if partial := partial_range_note(path, ims):
            notes.append(partial)
    for vr, found in seen.items():
        files = list(dict.fromkeys(path for path, _ in found))
        ims = [im for _, im in found]
        outside = sum(int(np.count_nonzero((im.values < vr.low) | (im.values > vr.high))) for im in ims)
        line = f"values of {', '.join(files)} ({ims[0].type_name}) mapped {vr.describe()}"
        if outside:
            line += (f"; {outside} values lie outside the range (kept up to half the range beyond it, "
                     "clipped further out, and the output clipped to the range)")
        notes.append(line)


def read_references(path: str | os.PathLike | None, out: ImageInfo, count: int,
                    notes: list[str] | None = None) -> list[np.ndarray | None]:
    """The clean reference of each scene restored (None without one): one image, or for ``count``
    frames restored each on its own a stack of as many (another count: a one-line error); what
    ``linr restore --reference`` and ``linr batch --reference-dir`` read. In the inputs' units
    where a range other than a type's own maps them (``out.value_range``: their data's, a given one,
    the low bits of dim counts), but integers of another type whose values lie far beyond that range
    (an 8-bit PNG beside float inputs given ``--range 0:1``: its 0..255 read as 0..255 on the fit's
    scale gave PSNR -0.00 dB) by their own type's; where the inputs are integers mapped by their
    type's range and the reference holds floats in their own units (beyond [0, 1]: a float FITS or
    TIFF of the same counts), by the inputs' range too; each said in ``notes``, as is a 16-bit
    reference whose values reach only part of its range (as ``linr metrics`` notes it)."""
    if path is None:
        return [None] * count
    stored = read_stored(path)
    vr = out.value_range if out.value_range is not None and out.value_range.rule in ("data", "given", "bits") else None
    far = [im for im in stored if im.values.dtype.kind in "ui" and im.values.dtype.itemsize * 8 != out.bit_depth]
    if vr is not None and far and max(float(np.max(im.values)) for im in far) > \
            vr.high + GIVEN_RANGE_SLACK * (vr.high - vr.low):  # not in the inputs' units
        vr = None
        if notes is not None:
            notes.append(f"{path}: {far[0].type_name}, another sample type than the inputs', with values far beyond "
                         f"their range ({out.value_range.describe()}): read by its own type's range")
    own = choose_value_ranges(stored, vr)
    if vr is None and out.value_range is not None and out.value_range.rule == "dtype" and \
            any(r.rule == "data" for r in own):  # floats in their units beside integer inputs: the inputs' units
        own = [out.value_range] * len(stored)
        if notes is not None:
            notes.append(f"{path}: its float values are read in the inputs' units (mapped "
                         f"{out.value_range.describe()}), as the restored image is")
    elif notes is not None and vr is None and (partial := partial_range_note(str(path), stored)):
        notes.append(partial)
    frames = [to_unit(im, r) for im, r in zip(stored, own)]
    if len(frames) != count:
        raise InputError(f"{path}: {len(frames)} reference image(s) for {count} restored frame(s)")
    return [image for image, _ in frames]


def default_frames(infos: Sequence[ImageInfo]) -> tuple[str, str | None]:
    """How the frames of a scene are restored when ``--frames`` is left out, and a note saying why
    (None: nothing to say): 'separate' for a Z-stack (every frame a plane of TIFF stacks whose
    axes stack them along Z: planes at other depths, not shots of one scene, which 'joint' would
    average), else 'joint', said for a time series (axes T: a microscopist's three time points of
    moving cells came back as one image without a word). A defocus series came back as one plane."""
    axes = {info.tiff.stack_axis if info.tiff is not None else None for info in infos}
    if len(infos) < 2 or len(axes) != 1 or axes & {"Z", "T"} == set():
        return "joint", None
    files = ", ".join(sorted({_file_of(info.path) for info in infos}))
    if axes == {"Z"}:
        return "separate", (f"{files}: a Z-stack of {len(infos)} planes (its axes stack them along Z): each plane "
                            "restored on its own and written as a stack (--frames joint restores them as shots of one "
                            "scene)")
    return "joint", (f"{files}: a time series of {len(infos)} points (its axes stack them along T): restored as shots "
                     "of one scene, one image (--frames separate restores each time point, as a time series of "
                     "moving cells needs)")


def split_frames(observations: Sequence[Any], infos: Sequence[ImageInfo]
                 ) -> list[tuple[list[Any], list[ImageInfo]]]:
    """Scenes of one frame each (``--frames separate``): scene i holds frame i of every kind.
    Every kind must have the same number of frames (a kind with one frame is not shared)."""
    by_kind: dict[str, list[tuple[Any, ImageInfo]]] = {}
    for obs, info in zip(observations, infos):
        by_kind.setdefault(obs.kind, []).append((obs, info))
    counts = {kind: len(frames) for kind, frames in by_kind.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"--{kind} {count}" for kind, count in counts.items())
        raise InputError(f"separate frames need the same number of frames of every kind, got {listed}")
    count = next(iter(counts.values()))
    return [([frames[i][0] for frames in by_kind.values()], [frames[i][1] for frames in by_kind.values()])
            for i in range(count)]


def filled_transparent(image: np.ndarray, info: ImageInfo) -> np.ndarray:
    """A photo's values with its transparent pixels (alpha below one half; not a FITS file's
    undefined ones, which are refused) filled by :func:`linr.transparent.mirrored_fill`."""
    if info.fits is not None or info.alpha is None:
        return image
    from .transparent import mirrored_fill

    return mirrored_fill(image, info.alpha < 0.5)


def _file_of(path: str) -> str:
    """The file of a frame's path (a multi-image file's frames are FILE[k])."""
    return re.sub(r"\[\d+\]$", "", str(path))


def filled_from_each_other(frames: list[tuple[np.ndarray, ImageInfo]]) -> list[tuple[np.ndarray, ImageInfo]]:
    """Frames of one kind (a burst) with each one's transparent pixels filled by the mean of the
    frames of its size from other files that saw them (opaque there: the planes of one multi-image
    file, a Z-stack or an animation, are other scenes as often), and where none did by
    :func:`filled_transparent`: a frame's transparent block filled by its own pixels mirrored was
    averaged into the burst as if seen (a new user's two noisy frames, one with a 10 x 20 block
    transparent: 22.89 dB there against 35.1 with both opaque)."""
    out = []
    for k, (image, info) in enumerate(frames):
        if info.fits is None and info.alpha is not None and bool((info.alpha < 0.5).any()):
            holes = info.alpha < 0.5
            total = np.zeros(image.shape, np.float64)
            count = np.zeros(image.shape[:2], np.int64)
            for j, (other, other_info) in enumerate(frames):
                if j != k and other.shape == image.shape and _file_of(other_info.path) != _file_of(info.path):
                    seen = np.ones(image.shape[:2], bool) if other_info.alpha is None or other_info.fits is not None \
                        else other_info.alpha >= 0.5
                    total[seen] += other[seen]
                    count[seen] += 1
            covered = holes & (count > 0)
            if covered.any():
                image = image.copy()
                image[covered] = (total[covered] / count[covered][:, None]).astype(image.dtype)
                rest = holes & ~covered
                if rest.any():
                    from .transparent import mirrored_fill

                    image = mirrored_fill(image, rest)
                out.append((image, info))
                continue
        out.append((filled_transparent(image, info), info))
    return out


def _note_transparent(kind: str, frames: list[tuple[Any, ImageInfo]], notes: list[str], *,
                      left_out: bool = False) -> None:
    """One note per kind whose frames have transparent pixels, filled with the photo mirrored at
    their nearest opaque pixel (the alpha written back where the output holds one), and with
    ``left_out`` left out of the kind's data term too (:attr:`linr.kinds.Kind.transparent`); a
    kind whose alpha marks holes consumes the alpha in its builder, so it is never said of it."""
    for _, info in frames:
        file = _file_of(info.path)  # a frame of a stack: its file
        refuse_undefined(info, info.path, f"--{kind} needs a value for every pixel: restore it as an image with "
                                          f"missing pixels (--masked {file}) to fill them, or fill them first")
        if info.fits is not None:  # FITS has no alpha: an all-opaque one marks a whole frame of a series
            continue
        if info.alpha is not None and bool((info.alpha < 0.5).any()) and bool((info.alpha >= 0.5).any()):
            share = float((info.alpha < 0.5).mean())
            measured = " (so the noise is measured on the opaque ones)" if kind == "noisy" else ""
            burst = len({_file_of(i.path) for image, i in frames if np.shape(image) == np.shape(frames[0][0])}) > 1
            done = ("leaves them out of what the restoration must reproduce (filled with the photo mirrored at their "
                    "nearest opaque pixel where a filter reads it as an image)" if left_out else
                    "fills them with the other frames' values where those saw them, else with the photo mirrored at "
                    f"their nearest opaque pixel{measured}" if burst else
                    f"fills them with the photo mirrored at their nearest opaque pixel{measured}")
            notes.append(f"{info.path}: {share:.1%} of its pixels are transparent (alpha below one half); --{kind} "
                         f"{done}, and the output keeps the alpha where its format holds one and no input saw them "
                         "(--masked takes them as missing pixels to fill)")
            return
        if info.alpha is not None and not bool((info.alpha >= 0.5).any()):
            notes.append(f"{info.path}: every pixel is transparent (alpha below one half); --{kind} fits their "
                         "colours as data, and the output keeps the alpha where its format holds one")
            return


def _note_fits_colour(frames: list[tuple[Any, ImageInfo]], notes: list[str]) -> None:
    """A note for a FITS file whose third axis of 3 planes was read as colour (unlabelled, as a
    colour picture's; :mod:`linr.fits`): an exposure series of 3 would need its axis labelled."""
    for _, info in frames:
        if info.fits is not None and info.channels == 3 and not any(  # a CTYPE3 of 'RGB' says so itself
                card.startswith("CTYPE3  =") for card in info.fits.cards):
            notes.append(f"{info.path}: its 3 planes are read as the colours (red, green, blue) of one picture; "
                         "a series of 3 exposures is read as frames when its header labels the axis (CTYPE3, "
                         "e.g. 'TIME')")
            return


def _note_degenerate(kind: str, frames: list[tuple[Any, ImageInfo]], notes: list[str]) -> None:
    """A frame of one pixel is refused (nothing to restore, no neighbour to restore it from);
    constant ones are said in one note per kind (fitted all the same)."""
    for image, info in frames:
        refuse_one_pixel(image, info.path)
    flat = [(image, info) for image, info in frames if float(np.ptp(image)) == 0.0]
    if flat:
        image, info = flat[0]
        value = float(image.flat[0])
        what = info.path if len(frames) == 1 else f"{len(flat)} of the {len(frames)} frames (e.g. {info.path})"
        notes.append(f"{what} (--{kind}) is constant (every value {value:.4g} on the 0-1 scale): "
                     "there is no detail or noise in it to restore (the result comes back about the same constant)")


def _each_file_one_kind(stored: Mapping[str, list[tuple[str, Any]]]) -> None:
    """A one-line error for a file named as two kinds of observation (``--noisy a.png --blurred
    a.png``): one shot cannot be both, and fitting it as both restores neither (a new user's noisy
    photo given as blurred too came back 4 dB under the photo restored alone)."""
    kinds: dict[str, str] = {}
    for kind, found in stored.items():
        for path, _ in found:
            first = kinds.setdefault(os.path.realpath(path), kind)
            if first != kind:
                raise InputError(f"{path}: given as both {first} and {kind}; each file is one observation "
                                 "of one kind (name each shot once, as what it is)")


def _check_frames(kind: str, frames: list[tuple[Any, ImageInfo]]) -> None:
    """One kind's frames must share their size and channel count (one line naming two that differ)."""
    if not frames:
        return
    first, info = frames[0]
    for image, other in frames[1:]:
        if image.shape[:2] != first.shape[:2]:
            raise InputError(f"--{kind} frames differ in size: {info.path} is {first.shape[1]}x"
                             f"{first.shape[0]}, {other.path} is {image.shape[1]}x{image.shape[0]} "
                             "(width x height)")
        if image.shape[2] != first.shape[2]:
            raise InputError(f"--{kind} frames differ in channels: {info.path} has {first.shape[2]}, "
                             f"{other.path} has {image.shape[2]}")
