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
from typing import Any, Mapping, Sequence

from .errors import InputError
from .images import ImageInfo, read_frames
from .kinds import KINDS

__all__ = ["load_scene", "expand_paths"]

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
                raise InputError(f"{text}: no file matches this pattern")
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
    receives lines for the user (how a mask was read).

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
    for kind in KINDS.values():
        paths = expand_paths(files.get(kind.name) or None)
        frames = [frame for path in paths for frame in read_frames(path)]
        _check_frames(kind.name, frames)
        values = {opt.dest: opt.default if options.get(opt.dest) is None else options[opt.dest]
                  for opt in kind.options}
        extras: list[str] = []
        built = []
        for image, info in frames:
            obs, extra = kind.build(image, info, values, notes)
            if kind.name in weights:
                obs = dataclasses.replace(obs, weight=weights[kind.name])
            built.append(obs)
            extras += [e for e in extra if e not in extras]
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
    if len({o.channels for o in observations}) > 1:
        raise InputError("observations mix greyscale and colour images; convert them to one kind")
    return observations, infos, inputs


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
