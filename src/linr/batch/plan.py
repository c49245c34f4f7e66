"""Which images a batch restores: input files found by folder or glob and paired by file stem.

A batch is a list of :class:`Job` s, one per scene. A single task has one observation file per
job; joint restoration pairs one file per observation kind by stem (``noisy/cat.png`` with
``lr/cat.png``). Bursts: a multi-image TIFF is one scene (its images the frames), and a folder
that holds no images but sub-folders of them is a folder of scenes, each sub-folder one scene
named by it (``bursts/cat/*.png``: the frames of ``cat``; it pairs with ``lr/cat.png``). Masks,
kernels and references are either one file for every job or a folder / glob paired by stem (``cat.png`` or ``cat_mask.png`` for masks, ``cat_kernel.*`` for kernels).
Pure file-name logic (and, for scene folders, the frames' headers, for their sizes): nothing here
reads pixels, so planning is instant and fails early.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import InputError
from ..scene import other_case_hint
from ..kinds import KINDS as KIND_REGISTRY

__all__ = [
    "Job", "KINDS", "IMAGE_SUFFIXES", "find_files", "find_scene_folders", "pair_by_stem", "plan_jobs",
    "fingerprint",
    "settings_diff",
]

KINDS = KIND_REGISTRY
"""The registered observation kinds (:data:`linr.kinds.KINDS`), in their order."""
GZIPPED_SUFFIXES = (".fits.gz", ".fit.gz", ".fts.gz")
"""Names of two suffixes that are one image file: gzip-compressed FITS, as archives deliver it."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".fits", ".fit", ".fts",
                  *GZIPPED_SUFFIXES)
"""What a batch finds in a folder or glob: the image files `linr restore` reads (an animated GIF,
PNG or WebP, like a multi-image TIFF, is one scene: its images the frames)."""
KERNEL_SUFFIXES = (".npy", *IMAGE_SUFFIXES)


def image_suffix(path: Path) -> str:
    """A file's suffix, lower-case, as an image's: ``.fits.gz`` for gzipped FITS, else the last one."""
    name = path.name.lower()
    return next((s for s in GZIPPED_SUFFIXES if name.endswith(s)), path.suffix.lower())


def image_stem(path: Path) -> str:
    """A file's name without its image suffix (:func:`image_suffix`): ``m51`` of ``m51.fits.gz``."""
    return path.name[: len(path.name) - len(image_suffix(path))] if image_suffix(path) else path.name


_SHOWN = 8
"""How many unmatched names an error lists before '... and N more'."""


@dataclass(frozen=True)
class Job:
    """One scene to restore: its name (the common stem) and every file it reads or writes."""

    name: str
    observations: dict[str, str | list[str]]
    """Observation kind -> image path (a multi-image TIFF: a burst), or the frame paths of a
    scene folder, in :data:`KINDS` order."""
    output: str
    mask: str | None = None
    kernel: str | None = None
    """A kernel spec (``gaussian:W:S``) or a kernel file."""
    reference: str | None = None

    @property
    def inputs(self) -> list[str]:
        """Every file the job reads (never to be overwritten)."""
        files = [f for v in self.observations.values() for f in ([v] if isinstance(v, str) else v)]
        files += [p for p in (self.mask, self.reference) if p is not None]
        if self.kernel is not None and Path(self.kernel).exists():
            files.append(self.kernel)
        return files

    def input_stamps(self) -> dict[str, list[int]]:
        """``{absolute path: [size in bytes, modification time in ns]}`` of every file the restoration reads
        (not the reference: it only adds metrics), so that a resumed batch notices an input
        replaced since its image was done; a file that cannot be read is left out."""
        stamps = {}
        for path in self.inputs:
            if path == self.reference:
                continue
            try:
                stat = os.stat(path)
            except OSError:
                continue
            stamps[os.path.abspath(path)] = [stat.st_size, stat.st_mtime_ns]  # as the fingerprint names it
        return stamps


def find_files(spec: str, *, what: str, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Files named by ``spec``: a folder or a glob (their files with ``suffixes``; a folder is not
    searched recursively, a glob's ``**`` matches any depth of folders), or one file.

    Hidden files (names starting with '.', such as half-written temporary files) are skipped.
    """
    path = Path(spec)
    if path.is_dir():
        found = [p for p in path.iterdir() if p.is_file() and image_suffix(p) in suffixes]
    elif path.is_file():
        found = [path]
    else:
        if not glob.has_magic(spec):
            raise InputError(f"{what} {spec}: no such file or folder")
        # like a folder, a glob such as 'noisy/*' yields its image files only (not notes.txt);
        # '**' any depth of folders, as a shell's globstar
        found = [Path(p) for p in glob.glob(spec, recursive=True)
                 if Path(p).is_file() and image_suffix(Path(p)) in suffixes]
    found = sorted(p for p in found if not p.name.startswith("."))
    if not found:
        raise InputError(f"{what} {spec}: matches no files ({', '.join(suffixes)})"
                         + other_case_hint(spec, lambda p: image_suffix(p) in suffixes))
    return found


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and image_suffix(p) in IMAGE_SUFFIXES and not p.name.startswith("."))


def find_scene_folders(spec: str, *, what: str, output_dir: str | os.PathLike,
                       notes: list[str] | None = None) -> dict[str, list[Path]] | None:
    """Burst scenes of ``spec``: when it is a folder holding no image files but sub-folders that
    do, each such sub-folder is a scene named by it, its image files (sorted) the frames. None
    when ``spec`` is not such a folder (a folder of images: one scene per image, as before; a
    line goes to ``notes`` when sub-folders with images are then left unread).

    Hidden sub-folders and the output folder (or one that holds it) are not scenes; an output
    folder that already holds frames and no batch manifest is refused.
    """
    from .manifest import MANIFEST_NAME

    folder = Path(spec)
    if not folder.is_dir():
        return None
    out = Path(output_dir).resolve()
    subs = [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if _images_in(folder):
        unread = [d.name for d in subs if _images_in(d)]
        if unread and notes is not None:
            notes.append(f"{what} {spec}: its images are restored one by one; its {len(unread)} "
                         f"sub-folder(s) with images ({_listed(unread)}) are not read (a folder of "
                         "scene sub-folders, with no images of its own, restores each as a burst)")
        return None
    scenes, deeper = {}, []
    for sub in subs:
        frames = _images_in(sub)
        if not frames:  # a folder of folders: read two levels down only by a glob
            deeper += [(f"{sub.name}/{d.name}", _images_in(d)[0]) for d in sorted(sub.iterdir())
                       if d.is_dir() and not d.name.startswith(".") and _images_in(d)
                       and not (d.resolve() == out or d.resolve() in out.parents)]  # not this batch's outputs
        ours = sub.resolve() == out or sub.resolve() in out.parents
        if ours and frames and not (out / MANIFEST_NAME).exists():
            raise InputError(f"-o {output_dir}: a scene folder of {what} {spec} (it holds frames); "
                             "choose another -o folder")
        if frames and not ours:
            _check_frame_sizes(sub, frames, what=what)
            scenes[sub.name] = frames
    if deeper:
        where = (f"{len(deeper)} folder(s) two levels down hold images ({_listed([n for n, _ in deeper])}) and "
                 f"are not read (a folder is read one level deep: give such a folder itself, or each image "
                 f"on its own with a glob such as '{Path(spec) / '**' / ('*' + image_suffix(deeper[0][1]))}')")
        if not scenes:
            raise InputError(f"{what} {spec}: no images, nor sub-folders of images; {where}")
        if notes is not None:
            notes.append(f"{what} {spec}: {where}")
    return scenes or None


def _check_frame_sizes(folder: Path, frames: Sequence[Path], *, what: str) -> None:
    """A scene's frames must share their size: read from the files' headers (no pixels), so that
    a bad scene stops the batch before anything runs. Files whose header PIL cannot read are
    left to the reader (their scene then fails alone, in one line)."""
    from PIL import Image

    sizes = []
    for frame in frames:
        try:
            with Image.open(frame) as im:
                sizes.append((frame, im.size))
        except Exception:  # noqa: BLE001 - e.g. a float TIFF: checked when it is read
            continue
    for frame, size in sizes[1:]:
        if size != sizes[0][1]:
            (first, (w0, h0)), (w, h) = sizes[0], size
            raise InputError(f"{what} scene {folder}: frames differ in size: {first.name} is {w0}x{h0}, "
                             f"{frame.name} is {w}x{h} (width x height)")


def _by_stem(files: Iterable[Path], *, what: str, strip: Sequence[str] = ()) -> dict[str, Path]:
    """Index files by stem; ``strip`` lists suffixes removed from a stem (``_mask``)."""
    index: dict[str, Path] = {}
    for f in files:
        stem = image_stem(f)
        for suffix in strip:
            if stem.endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                break
        if stem in index:
            raise InputError(f"{what}: two files share the name {stem!r}: {index[stem]} and {f} (choose "
                             f"one kind with a pattern, such as '{f.parent / ('*' + image_suffix(index[stem]))}')")
        index[stem] = f
    return index


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def pair_by_stem(groups: dict[str, dict[str, Any]]) -> list[str]:
    """The stems every group has; an error listing, per group, the stems the others lack. A name in
    either Unicode form (a Mac's copies are decomposed) pairs: each group's keys are respelt, in
    place, as the first group spells them."""
    first = next(iter(groups.values()))
    spelt = {unicodedata.normalize("NFC", k): k for k in first}
    for group in groups.values():
        respelt = {spelt.get(unicodedata.normalize("NFC", k), k): v for k, v in group.items()}
        group.clear()
        group.update(respelt)
    common = set.intersection(*(set(g) for g in groups.values()))
    problems = []
    for label, group in groups.items():
        extra = sorted(set(group) - common)
        if extra:
            files = [group[s].name if isinstance(group[s], Path) else f"{s}/" for s in extra]
            problems.append(f"{label}: {len(extra)} without a match ({_listed(files)})")
    if problems:
        raise InputError("files do not pair by name: " + "; ".join(problems))
    return sorted(common)


def _auxiliary(
    spec: str | None,
    files: Sequence[Path] | None,
    stems: Sequence[str],
    *,
    what: str,
    strip: Sequence[str],
    notes: list[str] | None = None,
    own: Callable[[str], bool] | None = None,
) -> dict[str, str | None]:
    """One shared file for every stem, or ``files`` (those of a folder / glob) paired by stem.

    A stem without a file is an error, unless ``notes`` is given (optional files such as
    references): then it gets None and a note, and only a folder matching no stem is an error.
    A stem for which ``own`` says True needs no file either (a masked image that carries its own
    holes): it gets None.
    """
    if spec is None:
        return {s: None for s in stems}
    if files is None:  # one file for every image
        return {s: spec for s in stems}
    index = _by_stem(files, what=what, strip=strip)
    # one name in either Unicode form (a Mac's copies are decomposed): paired as the images' stems spell it
    composed = {unicodedata.normalize("NFC", k): v for k, v in index.items()}
    index = {s: composed[unicodedata.normalize("NFC", s)] for s in stems
             if s not in index and unicodedata.normalize("NFC", s) in composed} | index
    if own is not None and not any(s in index for s in stems):  # a folder for none of the images
        raise InputError(f"{what} {spec}: no file for any of the {len(stems)} image(s) "
                         f"({_listed(stems)}): name them like the images, such as {stems[0]}{strip[0] if strip else ''}.png")
    missing = [s for s in stems if s not in index and not (own is not None and own(s))]
    if missing and (notes is None or len(missing) == len(stems)):
        raise InputError(f"{what} {spec}: no file for {len(missing)} image(s): {_listed(missing)}")
    if missing and notes is not None:
        notes.append(f"{what} {spec}: no file for {len(missing)} image(s), so no metrics for them: "
                     f"{_listed(missing)}")
    return {s: str(index[s]) if s in index else None for s in stems}


def _may_hold_alpha(path: Path) -> bool:
    """Whether an image file has (or may have) an alpha channel, from its header: Pillow's mode or
    transparency, a TIFF's extra samples; True when the header cannot say (the image's own read
    will), and for FITS (whose undefined pixels are its holes)."""
    try:
        from PIL import Image

        from ..images import is_fits

        if is_fits(path):
            return True
        with Image.open(path) as img:
            if img.format == "TIFF":
                return bool(img.tag_v2.get(338))  # ExtraSamples
            return "A" in img.mode or "a" in img.mode or "transparency" in img.info
    except Exception:  # noqa: BLE001 - a header Pillow cannot read
        return True


def _own_holes(masked: Any) -> bool:
    """Whether a masked image file marks holes itself (some pixel of its alpha under one half, as
    :mod:`linr.kinds` reads holes), so that a folder of masks needs no file for it; False for a
    file that cannot be read (its own read names the problem) or a scene folder."""
    if not isinstance(masked, Path) or not _may_hold_alpha(masked):
        return False
    from ..images import read_stored

    try:
        return any(image.alpha is not None and bool((image.alpha < 0.5).any()) for image in read_stored(masked))
    except Exception:  # noqa: BLE001 - refused when the job reads it, with its own message
        return False


def _has_suffix(path: Path, suffix: str) -> bool:
    stem = image_stem(path)
    return stem.endswith(suffix) and len(stem) > len(suffix)


def plan_jobs(
    observations: dict[str, str],
    *,
    output_dir: str | os.PathLike,
    suffix: str | None = ".png",
    mask: str | None = None,
    kernel: str | None = None,
    reference_dir: str | None = None,
    notes: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> list[Job]:
    """Find and pair the files of a batch; one :class:`Job` per stem, sorted by name.

    Images without a reference are restored without metrics, with a line appended to ``notes``.

    ``observations`` maps a kind to a folder or glob. Masks, kernels and references may lie in
    the same folder as the observations, as ``linr degrade --keep`` writes ``x.png`` beside
    ``x_mask.png`` (``--masked holes/ --mask holes/``): a file that both specs match is a mask
    (kernel) when its name ends in ``_mask`` (``_kernel``), else an observation; a single
    mask/kernel/reference file, and any file a ``--reference-dir`` matches, is never an observation.
    ``labels`` names a kind's input in messages as the user gave it (default ``--KIND``; e.g.
    ``INPUT`` for the positional folder of ``--task``). ``suffix`` None: each output is a TIFF
    when its scene's first observation is one (its values, channels and metadata kept), else a PNG.
    """
    labels = labels or {}
    if not observations:
        raise InputError("give input images: INPUT with --task, or --noisy/--lowres/--masked/--blurred")
    scenes = {kind: find_scene_folders(spec, what=labels.get(kind, f"--{kind}"), output_dir=output_dir,
                                       notes=notes)
              for kind, spec in observations.items()}
    found = {kind: find_files(spec, what=labels.get(kind, f"--{kind}"))
             for kind, spec in observations.items() if scenes[kind] is None}
    is_kernel_spec = kernel is not None and kernel.startswith(("gaussian:", "gauss:"))
    # (option, spec, name suffix that marks its files, file suffixes)
    aux_specs = [("--mask", mask, "_mask", IMAGE_SUFFIXES),
                 ("--reference-dir", reference_dir, None, IMAGE_SUFFIXES)]
    if kernel is not None and not is_kernel_spec:
        aux_specs.append(("--kernel", kernel, "_kernel", KERNEL_SUFFIXES))
    observed = {f.resolve() for files in found.values() for f in files}
    aux_files: dict[str, list[Path] | None] = {}  # option -> its files; None: one file for all
    set_aside: set[Path] = set()  # files that are not observations
    for what, spec, marker, suffixes in aux_specs:
        if spec is None:
            continue
        if Path(spec).is_file():
            aux_files[what] = None
            set_aside.add(Path(spec).resolve())
            continue
        files = find_files(spec, what=what, suffixes=suffixes)
        if marker is not None:
            # matched by both: x_mask.png is the mask, x.png the image it belongs to
            files = [f for f in files if f.resolve() not in observed or _has_suffix(f, marker)]
        aux_files[what] = files
        set_aside |= {f.resolve() for f in files}
    groups: dict[str, dict[str, Any]] = {f"--{kind}": folders for kind, folders in scenes.items()
                                         if folders is not None}
    for kind, files in found.items():
        kept = [f for f in files if f.resolve() not in set_aside]
        if not kept:
            raise InputError(f"--{kind} {observations[kind]}: every file it matches is a mask, kernel "
                             "or reference")
        groups[f"--{kind}"] = _by_stem(kept, what=f"--{kind}")
        if kind == "masked" and mask is None and not any(_may_hold_alpha(f) for f in kept):
            marked = [f.name for f in kept if image_stem(f).endswith("_mask")]
            raise InputError(
                f"{labels.get(kind, '--masked')} {observations[kind]}: none of its {len(kept)} images has an "
                "alpha channel to mark its holes; give --mask (one file, or a folder or glob of x_mask.png "
                "named like the images)" + (f"; it holds masks such as {marked[0]}: --mask {observations[kind]}"
                                             if marked else ""))
    stems = pair_by_stem(groups)
    masks = _auxiliary(mask, aux_files.get("--mask"), stems, what="--mask", strip=("_mask",),
                       own=lambda s: _own_holes(groups.get("--masked", {}).get(s)))
    own_holes = [s for s in stems if masks[s] is None and mask is not None]
    if own_holes and notes is not None:
        notes.append(f"--mask {mask}: no file for {len(own_holes)} image(s), which mark their holes by their "
                     f"own transparent pixels: {_listed(own_holes)}")
    refs = _auxiliary(reference_dir, aux_files.get("--reference-dir"), stems, what="--reference-dir",
                      strip=(), notes=[] if notes is None else notes)
    if is_kernel_spec:
        kernels: dict[str, str | None] = {s: kernel for s in stems}
    else:
        kernels = _auxiliary(kernel, aux_files.get("--kernel"), stems, what="--kernel", strip=("_kernel",))
    out = Path(output_dir)
    jobs = [
        Job(
            name=s,
            observations={k: _as_input(groups[f"--{k}"][s]) for k in KINDS if f"--{k}" in groups},
            output=str(out / f"{s}{suffix or _suffix_like(groups, s)}"),
            mask=masks[s],
            kernel=kernels[s],
            reference=refs[s],
        )
        for s in stems
    ]
    _check_no_overwrite(jobs)
    specs = {f"--{kind}": spec for kind, spec in observations.items()}
    specs.update((what, spec) for what, spec, _, _ in aux_specs if aux_files.get(what) is not None)
    _check_not_read_back(jobs, specs, output_dir)
    return jobs


def _suffix_like(groups: dict[str, dict[str, Path | list[Path]]], stem: str) -> str:
    """``.tif`` when the scene's first observation file is a TIFF (by its content, as it is read:
    a TIFF named .png too), ``.fits`` when it is a FITS file, else ``.png``."""
    from ..images import is_fits, is_tiff

    first = next(groups[f"--{k}"][stem] for k in KINDS if f"--{k}" in groups)
    path = first if isinstance(first, Path) else first[0]
    try:
        return ".tif" if is_tiff(path) else ".fits" if is_fits(path) else ".png"
    except OSError:  # unreadable: its own read fails in one line later
        return {".tif": ".tif", ".tiff": ".tif", ".fits": ".fits", ".fit": ".fits", ".fts": ".fits"}.get(
            image_suffix(path).removesuffix(".gz"), ".png")


def _as_input(found: Path | list[Path]) -> str | list[str]:
    return str(found) if isinstance(found, Path) else [str(p) for p in found]


def _check_no_overwrite(jobs: Sequence[Job]) -> None:
    inputs = {Path(p).resolve() for job in jobs for p in job.inputs}
    clash = [job.output for job in jobs if Path(job.output).resolve() in inputs]
    if clash:
        raise InputError(f"output {clash[0]} would overwrite an input file; choose another -o folder")


def _check_not_read_back(jobs: Sequence[Job], specs: dict[str, str], output_dir: str | os.PathLike) -> None:
    """Refuse outputs that a folder or glob of this batch would find on its next run (e.g.
    ``-o noisy/ --format tif`` beside ``noisy/x.png``): resuming would then take them as inputs."""
    for what, spec in specs.items():
        suffixes = KERNEL_SUFFIXES if what == "--kernel" else IMAGE_SUFFIXES
        folder = Path(spec).resolve() if Path(spec).is_dir() else None
        pattern = None if folder is not None else os.path.abspath(spec)
        for job in jobs:
            output = Path(job.output)
            if image_suffix(output) not in suffixes:
                continue
            if folder is not None:
                hit = output.parent.resolve() == folder
            else:
                hit = fnmatch.fnmatchcase(os.path.abspath(output), pattern)
            if hit:
                raise InputError(f"-o {output_dir}: its outputs (such as {output.name}) would be read as "
                                 f"{what} files when the batch is rerun to resume; choose another -o folder")


BY_INPUT = "by input"
"""The batch's ``format`` setting where ``--format`` is not given: each output a TIFF for a TIFF
input, a FITS file for a FITS input, else a PNG (:func:`plan_jobs`)."""


def fingerprint(job: Job, settings: dict[str, Any], *, reference: str | None = None,
                batch_format: bool = False) -> str:
    """A short hash of what determines a job's output: its input files and the batch settings.

    A manifest record made under another fingerprint is not reused. The reference is not part of
    it (it only adds metrics); ``reference`` recomputes the key of older manifests, which hashed
    the reference path too. Without ``--format`` (:data:`BY_INPUT`) a job's PNG output is keyed
    as ``--format png`` keys it, so that a TIFF added to or taken from the folder changes no
    other image's key; ``batch_format`` recomputes the key of older manifests, which keyed every
    image by the batch's format (``by input`` where any output was a TIFF).
    """
    if settings.get("format") == BY_INPUT and not batch_format and job.output.endswith(".png"):
        settings = {**settings, "format": "png"}
    files = {k: os.path.abspath(v) if isinstance(v, str) else [os.path.abspath(f) for f in v]
             for k, v in job.observations.items()}
    extra = {k: os.path.abspath(v) if v and Path(v).exists() else v
             for k, v in (("mask", job.mask), ("kernel", job.kernel), ("reference", reference))}
    data = {"observations": files, **extra, "settings": settings}
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def settings_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the settings that differ between two settings dicts (for error messages)."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
