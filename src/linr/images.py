"""Image files: read to float arrays on [0, 1], write back safely.

Formats: PNG, JPEG, TIFF, BMP; 8- and 16-bit, and float TIFF; greyscale, RGB, and either with
alpha. Pixel data is returned as (H, W, C) float32 with C = 1 (grey) or 3 (RGB). Alpha is not
restored: it is set aside in :class:`ImageInfo` and written back unchanged (resized with PIL
bicubic when the output size differs, as in super-resolution). Palette and CMYK images are
converted to RGB. A JPEG's or TIFF's EXIF orientation is applied on reading (the pixels come
back upright, as viewers show them), so the output is written upright with no orientation tag.

A multi-image TIFF (pages, or an ImageJ time / depth stack) is read by :func:`read_frames`
as one image per frame (a burst of observations); :func:`read_image` refuses it.

Arrays handed to the Python API go through :func:`as_float_image`: integer images are scaled by
their dtype's range (uint8 / 255, uint16 / 65535), as scikit-image's ``img_as_float`` does, and
ambiguous shapes (channels first) are refused.

Writes are atomic (a temporary file in the same folder, then a rename), never replace an
existing file unless ``force=True``, and never replace a file listed in ``protect`` (the inputs)
at all.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError

__all__ = ["ImageInfo", "read_image", "read_frames", "read_mask", "write_image", "check_output_path",
           "check_writable_folder", "written_bit_depth", "as_float_image", "WRITE_FORMATS"]

WRITE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp"}


@dataclass
class ImageInfo:
    """How an image was stored, so that the output can be stored the same way."""

    path: str
    bit_depth: int
    """8, 16, or 32 for a float image (written back as float32 to TIFF, as 16-bit elsewhere)."""
    channels: int
    """1 or 3, not counting alpha."""
    alpha: np.ndarray | None = None
    """(H, W) float32 on [0, 1], or None."""


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as fh:
        head = fh.read(26)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 25:
        return head[24]
    return 8


def _read_png16(path: Path) -> np.ndarray:
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    data = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return data.reshape(height, width, planes)


def _from_pil(img: Image.Image) -> np.ndarray:
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
    elif img.mode == "CMYK" or img.mode == "YCbCr":
        img = img.convert("RGB")
    elif img.mode == "1":
        img = img.convert("L")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.int64)
        if arr.max(initial=0) > 65535 or arr.min(initial=0) < 0:
            raise InputError("unsupported 32-bit integer image")
        return arr.astype(np.uint16)
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32)
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")
    return np.asarray(img)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, ImageInfo]:
    """Read an image file. Returns ``(pixels, info)``: pixels (H, W, C) float32 on [0, 1].
    A multi-image TIFF (a stack) is refused here; :func:`read_frames` reads one."""
    path = Path(path)
    arrays = _read_arrays(path)
    if len(arrays) > 1:
        raise InputError(f"{path}: a TIFF stack of {len(arrays)} images where one image is expected")
    return _normalise(arrays[0], path)


def read_frames(path: str | os.PathLike) -> list[tuple[np.ndarray, ImageInfo]]:
    """Every image of a file as :func:`read_image` returns one: one for most files, one per
    image of a multi-image TIFF (its pages, or the planes of a stacked series such as ImageJ's
    time or depth axis); those frames are named ``FILE[i]`` (from 1) in their info and messages."""
    path = Path(path)
    arrays = _read_arrays(path)
    if len(arrays) == 1:
        return [_normalise(arrays[0], path)]
    return [_normalise(arr, f"{path}[{i}]") for i, arr in enumerate(arrays, start=1)]


def _read_arrays(path: Path) -> list[np.ndarray]:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file")
    try:
        suffix = path.suffix.lower()
        if suffix in (".tif", ".tiff"):
            return _tiff_arrays(path)
        if suffix == ".png" and _png_bit_depth(path) == 16:
            return [_read_png16(path)]
        from PIL import ImageOps

        with Image.open(path) as img:
            img.load()
            return [_from_pil(ImageOps.exif_transpose(img))]
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from exc
    except Exception as exc:  # decoders raise many kinds of errors on corrupt files
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__})") from exc


def _tiff_arrays(path: Path) -> list[np.ndarray]:
    """The images of a TIFF, each (H, W[, S]): one per series, a series with one axis before
    its rows (pages, time, depth) split along it; samples (colour) last, as planar files store
    them first."""
    import tifffile

    arrays = []
    with tifffile.TiffFile(str(path)) as tif:
        for series in tif.series:
            data, axes = series.asarray(), series.axes
            if "S" in axes and axes.index("S") != len(axes) - 1:
                at = axes.index("S")
                data, axes = np.moveaxis(data, at, -1), axes[:at] + axes[at + 1:] + "S"
            lead = axes[: axes.index("Y")] if "Y" in axes else ""
            if not lead:
                arrays.append(data)
            elif len(lead) > 1 or lead == "C":
                raise InputError(f"{path}: a TIFF with axes {axes} (shape {data.shape}); only stacks "
                                 "of single images along one axis (pages, time or depth) are read")
            else:
                arrays += list(data)
    if not arrays:
        raise InputError(f"{path}: a TIFF with no image")
    return arrays


def _normalise(arr: np.ndarray, path: Path | str) -> tuple[np.ndarray, ImageInfo]:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"{path}: unsupported image layout {arr.shape} (need grey or RGB, optional alpha)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{path}: image has zero size")
    if arr.dtype == np.uint8:
        bit_depth, pixels = 8, arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        bit_depth, pixels = 16, arr.astype(np.float32) / 65535.0
    elif arr.dtype.kind == "f":
        pixels = arr.astype(np.float32)
        if not np.isfinite(pixels).all():
            raise InputError(f"{path}: image contains non-finite values")
        if pixels.min() < 0 or pixels.max() > 1:
            raise InputError(f"{path}: float image values must lie in [0, 1]")
        bit_depth = 32
    else:
        raise InputError(f"{path}: unsupported pixel type {arr.dtype}")
    alpha = None
    if pixels.shape[2] in (2, 4):
        alpha = pixels[..., -1].copy()
        pixels = pixels[..., :-1]
    info = ImageInfo(str(path), bit_depth, pixels.shape[2], alpha)
    return np.ascontiguousarray(pixels), info


def read_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None, *,
              notes: list[str] | None = None) -> np.ndarray:
    """Read a keep-mask: white (>= 0.5) = observed. Returns (H, W) bool.

    A mask with a transparency channel that is not fully opaque is read from its alpha (opaque
    = observed), the way an image editor's eraser marks holes; otherwise a colour mask is reduced
    to its mean over channels. Grey values are thresholded at 0.5: when there are any, a line
    saying so (and how many pixels are kept) is appended to ``notes``, as is the use of alpha.
    ``shape`` (H, W) is checked if given.
    """
    pixels, info = read_image(path)
    if info.alpha is not None and info.alpha.min() < 0.5:
        values, source = info.alpha, "its alpha channel (opaque = observed)"
    else:
        values, source = pixels.mean(axis=2), None
    mask = values >= 0.5
    if shape is not None and mask.shape != tuple(shape):
        raise InputError(
            f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
            f"{shape[1]}x{shape[0]} (width x height)"
        )
    if not mask.any():
        raise InputError(f"{path}: mask keeps no pixels (white = observed)")
    if notes is not None:
        if source is not None:
            notes.append(f"{path}: mask read from {source}")
        grey = np.count_nonzero((values > 1e-3) & (values < 1 - 1e-3))
        if grey:
            notes.append(f"{path}: {grey} grey mask pixels thresholded at 50%; {mask.mean():.1%} "
                         "of pixels count as observed")
    return mask


def as_float_image(array: object, name: str = "image") -> np.ndarray:
    """An array from the Python API as (H, W, C) float32 on [0, 1].

    Accepts (H, W) and (H, W, C). uint8 and uint16 are scaled by their range (255, 65535), bool
    to 0/1, floats are taken as they are (values must lie roughly in [0, 1]: a few noisy pixels
    beyond it are fine, 0-255 data is not). Refused with a one-line error: other integer types,
    channels-first (C, H, W) or batched (N, C, H, W) layouts, and non-finite values.
    """
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    elif arr.dtype.kind in "iu":
        raise InputError(f"{name}: integer type {arr.dtype} is ambiguous; pass uint8 (0-255), "
                         "uint16 (0-65535) or floats on [0, 1]")
    elif arr.dtype.kind != "f":
        raise InputError(f"{name}: unsupported array type {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim == 4:
        raise InputError(f"{name}: got a batch of shape {arr.shape}; pass one image as (H, W) or "
                         "(H, W, C)")
    if arr.ndim != 3 or 0 in arr.shape:
        raise InputError(f"{name}: must be a non-empty (H, W) or (H, W, C) array, got shape {arr.shape}")
    if arr.shape[0] <= 4 and arr.shape[2] > 4:
        raise InputError(f"{name}: shape {arr.shape} looks channels-first (C, H, W); pass "
                         "image.transpose(1, 2, 0)")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: contains non-finite values")
    low, high = float(arr.min()), float(arr.max())
    if high > 2.0 or low < -1.0:
        raise InputError(f"{name}: float values must lie in [0, 1], got {low:g} to {high:g}"
                         + (" (0-255 data? divide by 255 or pass uint8)" if high > 2.0 else ""))
    return np.ascontiguousarray(arr)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(
    path: str | os.PathLike, *, force: bool = False, protect: Iterable[str | os.PathLike] = ()
) -> Path:
    """Validate an output path before any work is done: known extension, not an input, and
    not an existing file unless ``force``."""
    path = Path(path)
    if path.suffix.lower() not in WRITE_FORMATS:
        raise InputError(f"{path}: unknown output format (use {', '.join(sorted(WRITE_FORMATS))})")
    for other in protect:
        other = Path(other)
        if _same_file(path, other) or path.resolve() == other.resolve():
            raise InputError(f"{path}: refusing to overwrite an input file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder")
    if path.exists() and not force:
        raise InputError(f"{path}: exists (use --force to overwrite)")
    check_writable_folder(path)
    return path


def check_writable_folder(path: str | os.PathLike) -> None:
    """Fail now, not after a long fit, when ``path`` could not be written: the nearest existing
    folder above it must be a folder in which a file can be created (tried, then removed)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{path}: cannot be written, {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot write in {folder} ({exc.strerror or exc})") from None


def written_bit_depth(path: str | os.PathLike, bit_depth: int) -> int:
    """What :func:`write_image` stores for ``bit_depth`` in ``path``'s format: JPEG and BMP are
    8-bit; 32 (float) stays float32 in TIFF and becomes 16-bit in PNG."""
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower())
    if fmt in ("jpeg", "bmp"):
        return 8
    if bit_depth == 32 and fmt != "tiff":
        return 16
    return bit_depth


def _quantise(x: np.ndarray, bit_depth: int) -> np.ndarray:
    if bit_depth == 32:
        return np.clip(x, 0.0, 1.0).astype(np.float32)
    top = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.round(np.clip(x, 0.0, 1.0) * top).astype(dtype)


def _resize_alpha(alpha: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(alpha.astype(np.float32))
    out = img.resize((shape[1], shape[0]), Image.BICUBIC)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def write_image(
    path: str | os.PathLike,
    image: np.ndarray,
    *,
    bit_depth: int = 8,
    alpha: np.ndarray | None = None,
    force: bool = False,
    protect: Iterable[str | os.PathLike] = (),
) -> Path:
    """Write ``image`` ((H, W) or (H, W, C), values clipped to [0, 1]) atomically.

    ``bit_depth`` 8, 16 or 32 (float32, TIFF only; 16-bit in PNG); JPEG and BMP are always
    8-bit (see :func:`written_bit_depth`). Parent folders are created.
    """
    if bit_depth not in (8, 16, 32):
        raise ValueError(f"bit_depth must be 8, 16 or 32, got {bit_depth}")
    path = check_output_path(path, force=force, protect=protect)
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if not np.isfinite(image).all():
        raise InputError(f"{path}: refusing to write an image with non-finite values")
    if alpha is not None:
        if alpha.shape != image.shape[:2]:
            alpha = _resize_alpha(alpha, image.shape[:2])
        image = np.concatenate([image, alpha[..., None].astype(np.float32)], axis=2)
    fmt = WRITE_FORMATS[path.suffix.lower()]
    bit_depth = written_bit_depth(path, bit_depth)
    if fmt == "jpeg" and image.shape[2] in (2, 4):
        image = image[..., :-1]  # JPEG has no alpha channel
    data = _quantise(image, bit_depth)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        if fmt == "tiff":
            import tifffile

            tifffile.imwrite(tmp, data[..., 0] if data.shape[2] == 1 else data)
        elif fmt == "png" and bit_depth == 16:
            import png

            h, w, c = data.shape
            mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c] + ";16"
            png.from_array(data.reshape(h, w * c), mode).save(tmp)
        else:
            arr = data[..., 0] if data.shape[2] == 1 else data
            Image.fromarray(arr).save(tmp, format=fmt.upper(), **({"quality": 95} if fmt == "jpeg" else {}))
        plain_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def plain_mode(path: str | os.PathLike) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the permissions a plain ``open()`` would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files that :func:`write_image` left beside ``path`` when its process was killed
    mid-write (``.NAME.XXXXXXXX.SUFFIX``). Only a caller that knows no other process is writing
    ``path`` (e.g. ``linr batch``, which holds its folder's lock) may delete them."""
    import re

    path = Path(path)
    pattern = re.compile(re.escape(_temp_prefix(path)) + r"[A-Za-z0-9_]{8}" + re.escape(path.suffix) + "$")
    try:
        return sorted(p for p in path.parent.iterdir() if pattern.match(p.name) and p.is_file())
    except OSError:
        return []
