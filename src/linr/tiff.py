"""TIFF as microscopes, ImageJ and OME write it: any channel count, stacks, and the metadata that
says what a pixel is (resolution, ImageJ units and spacing, OME physical sizes, channel names).

Reading (:func:`read_tiff`) gives each image of a file as (H, W, C) in its stored type, channels
last whether the file stores them as samples of a pixel (``S``: RGB, or any count with
``ExtraSamples``) or as planes (``C``: ImageJ hyperstacks, OME), and whether its last sample is
alpha (only when the file's ``ExtraSamples`` tag says so: a fourth fluorescence channel is not
transparency). One axis before the rows (pages, time, depth) makes a stack of images; more are
refused. The file's layout and metadata come back as a :class:`TiffLayout`, which
:func:`write_tiff` uses to store the output the same way (ImageJ as ImageJ, OME as OME, plain as
plain), with the pixel size scaled when the output has another size than the input.

This module sits at the bottom beside :mod:`linr.images`, which calls it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["TiffLayout", "read_tiff", "write_tiff"]

IMAGEJ_KEYS = ("unit", "spacing", "finterval", "fps", "tunit", "mode", "Info", "Ranges", "LUTs",
               "Properties", "Labels", "min", "max")
"""ImageJ metadata carried to the output (tifffile writes them back); its counts are recomputed."""

OME_KEYS = ("PhysicalSizeX", "PhysicalSizeXUnit", "PhysicalSizeY", "PhysicalSizeYUnit",
            "PhysicalSizeZ", "PhysicalSizeZUnit", "TimeIncrement", "TimeIncrementUnit")
"""OME ``Pixels`` attributes carried to the output, plus the channel names."""

_ALPHA = (1, 2)  # ExtraSamples: associated, unassociated alpha


@dataclass(frozen=True)
class TiffLayout:
    """How a TIFF stored its images, and what it said about them."""

    style: str
    """'plain', 'imagej' or 'ome'."""
    channel_axis: str
    """'S' (samples of a pixel, as RGB) or 'C' (one plane per channel, as ImageJ and OME)."""
    stack_axis: str | None
    """The axis along which the file stacks images ('T', 'Z', 'I', 'Q'...), None for one image."""
    frames: int
    """Images in the file."""
    size: tuple[int, int]
    """(height, width) of each image: what the resolution and pixel sizes refer to."""
    resolution: tuple[float, float] | None = None
    """(x, y) pixels per resolution unit (the XResolution / YResolution tags)."""
    resolution_unit: int | None = None
    """ResolutionUnit tag: 1 none, 2 inch, 3 centimetre."""
    description: str | None = None
    """A plain file's ImageDescription (not tifffile's own, not ImageJ's or OME's)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """ImageJ: :data:`IMAGEJ_KEYS` found; OME: :data:`OME_KEYS` found and ``ChannelNames``."""
    planar: bool = False
    """A plain file's samples stored plane by plane (PlanarConfiguration 2, axes SYX): written so."""

    def for_size(self, height: int, width: int) -> "TiffLayout":
        """The layout of an output of ``height`` x ``width`` over the same field of view: the
        resolution (pixels per unit) grows with the size and the OME pixel size shrinks."""
        sy, sx = height / self.size[0], width / self.size[1]
        if (sy, sx) == (1.0, 1.0):
            return self
        resolution = None if self.resolution is None else (self.resolution[0] * sx,
                                                           self.resolution[1] * sy)
        metadata = dict(self.metadata)
        for key, scale in (("PhysicalSizeX", sx), ("PhysicalSizeY", sy)):
            if key in metadata:
                metadata[key] = float(metadata[key]) / scale
        return dataclasses.replace(self, size=(height, width), resolution=resolution, metadata=metadata)

    def describe(self) -> dict[str, Any]:
        """JSON-ready (arrays, such as ImageJ's LUTs, as ``{"ndarray": [...], "dtype": ...}``):
        the layout in a report or a model file."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_description(cls, data: dict[str, Any]) -> "TiffLayout":
        """The inverse of :meth:`describe`."""
        data = _arrays(dict(data))
        data["size"] = tuple(data["size"])
        if data.get("resolution") is not None:
            data["resolution"] = tuple(data["resolution"])
        return cls(**data)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _arrays(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "dtype"}:
            return np.asarray(value["ndarray"], dtype=value["dtype"])
        return {k: _arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_arrays(v) for v in value]
    return value


def read_tiff(path: Path) -> tuple[list[np.ndarray], list[bool], TiffLayout]:
    """The images of a TIFF, each (H, W, C) in its stored type with channels last, whether each
    one's last channel is alpha, and the file's layout (from its first series)."""
    import tifffile

    arrays: list[np.ndarray] = []
    alphas: list[bool] = []
    layout = None
    with tifffile.TiffFile(str(path)) as tif:
        for series in tif.series:
            page = series.pages[0] if series.pages else tif.pages[0]
            if int(getattr(page, "photometric", 0)) == 5:
                raise InputError(f"{path}: a CMYK TIFF; convert it to RGB first")
            _refuse_channels_as_pages(path, tif, series)
            data, axes = series.asarray(), series.axes
            if int(getattr(page, "photometric", 0)) == 3:  # palette: indices into its colour map
                data, axes = _palette_colours(path, page, data, axes)
            if data.dtype == np.bool_:  # bilevel, 1 bit a pixel (document and fax scans): 0 and 255
                data = data.astype(np.uint8) * np.uint8(255)
            data, axes, channel_axis = _channels_last(path, data, axes)
            extras = tuple(int(e) for e in getattr(page, "extrasamples", ()) or ())
            if int(getattr(page, "photometric", 1)) == 0:  # min-is-white: 0 is white (scans)
                if data.dtype.kind != "u":
                    raise InputError(f"{path}: a min-is-white TIFF of {data.dtype} values; save it min-is-black")
                data = data.copy()
                colour = data[..., :data.shape[-1] - len(extras)] if channel_axis == "S" and extras else data
                colour[...] = np.iinfo(data.dtype).max - colour  # its extra samples (alpha) as they are
            alpha = channel_axis == "S" and bool(extras) and extras[-1] in _ALPHA
            lead = axes[: axes.index("Y")] if "Y" in axes else ""
            if len(lead) > 1:
                raise InputError(f"{path}: a TIFF with axes {series.axes} (shape {series.shape}); only "
                                 "stacks of images along one axis (pages, time or depth), with "
                                 "channels, are read")
            turn = _orientation(page)
            images = [as_shown(img, turn) for img in ([data] if not lead else list(data))]
            arrays += [img if img.ndim == 3 else img[..., None] for img in images]
            alphas += [alpha] * len(images)
            if layout is None:
                layout = _layout(tif, page, channel_axis, lead or None, images[0].shape[:2],
                                 swapped=turn in _SWAPS_AXES)
    if not arrays or layout is None:
        raise InputError(f"{path}: a TIFF with no image")
    return arrays, alphas, dataclasses.replace(layout, frames=len(arrays))


def _refuse_channels_as_pages(path: Path, tif: Any, series: Any) -> None:
    """A one-line error for an (H, W, C) array that ``tifffile.imwrite`` stored as H pages of
    W x C pixels (its default for C other than 3 or 4): a 'shaped' file with no axes named (the
    generic ``QYX``) whose pages are a few pixels wide, far fewer than its rows and pages, is
    taken for that rather than restored as a stack of strips."""
    shape = tuple(int(n) for n in series.shape)
    if not getattr(tif, "is_shaped", False) or series.axes != "QYX" or len(shape) != 3:
        return  # axes the writer named (a time or depth stack, ImageJ, OME) are taken as they say
    pages, rows, width = shape
    if width <= MAX_CHANNELS_AS_WIDTH and min(pages, rows) >= 4 * width:
        raise InputError(
            f"{path}: {pages} pages of {width}x{rows} px, which is how tifffile.imwrite stores an array of "
            f"shape ({pages}, {rows}, {width}); if it is one {rows}x{pages} image with {width} channels, write "
            "it with tifffile.imwrite(path, array, photometric='minisblack', planarconfig='contig'); if it is "
            "a stack of narrow frames, name its axes: metadata={'axes': 'TYX'}")


MAX_CHANNELS_AS_WIDTH = 8
"""Pages at most this wide in a 'shaped' TIFF (and at least 4 times fewer than its rows and
pages) are taken for the channels of an (H, W, C) array (:func:`_refuse_channels_as_pages`)."""


ORIENTATIONS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
"""The TIFF / EXIF Orientation tag's values: how the stored (H, W, ...) array turns into the image
as it is shown (as Pillow's ``ImageOps.exif_transpose``)."""

_SWAPS_AXES = (5, 6, 7, 8)


def _orientation(page: Any) -> int:
    """A page's Orientation tag (1, as stored, when absent or not one of the eight)."""
    tag = page.tags.get("Orientation") if hasattr(page, "tags") else None
    try:
        value = int(tag.value) if tag is not None else 1
    except (TypeError, ValueError):
        return 1
    return value if value in ORIENTATIONS else 1


def as_shown(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` (H, W, ...) turned as its Orientation tag says it is shown (:data:`ORIENTATIONS`)."""
    return np.ascontiguousarray(ORIENTATIONS[orientation](image))


def _palette_colours(path: Path, page: Any, data: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    """A palette TIFF's indices replaced by their colours (RGB samples last: 8-bit when the
    colour map holds 8-bit colours, scaled to 16 bits by 257 or 256 as writers store them, or
    unscaled; else 16-bit)."""
    colormap = getattr(page, "colormap", None)
    if colormap is None or np.asarray(colormap).ndim != 2 or np.asarray(colormap).shape[0] != 3:
        raise InputError(f"{path}: a palette TIFF without a readable colour map; save it as RGB")
    colormap = np.asarray(colormap)
    if data.dtype.kind not in "ui" or int(data.max(initial=0)) >= colormap.shape[1] or int(data.min(initial=0)) < 0:
        raise InputError(f"{path}: a palette TIFF whose pixels are not indices into its colour map")
    colours = colormap.T.astype(np.uint16)
    if int(colours.max()) <= 255:  # 8-bit colours stored unscaled (as libtiff tolerates)
        colours = colours.astype(np.uint8)
    elif (colours % 257 == 0).all():  # 8-bit colours scaled to 16 bits (v * 257)
        colours = (colours // 257).astype(np.uint8)
    elif (colours % 256 == 0).all():  # ... or shifted (v * 256, as Pillow writes them)
        colours = (colours // 256).astype(np.uint8)
    return colours[data], axes + "S"


def _channels_last(path: Path, data: np.ndarray, axes: str) -> tuple[np.ndarray, str, str]:
    """Move the samples (S) or channel planes (C) axis last; return the data, its axes with that
    axis last (or none), and which one it was."""
    has_s = "S" in axes and data.shape[axes.index("S")] > 1
    if "C" in axes and has_s:
        raise InputError(f"{path}: a TIFF with both channel planes and samples per pixel (axes "
                         f"{axes}); save the channels one way")
    name = "C" if "C" in axes else "S"
    if name in axes:
        at = axes.index(name)
        data = np.moveaxis(data, at, -1)
        axes = axes[:at] + axes[at + 1:] + name
    return data, axes, name


def _layout(tif: Any, page: Any, channel_axis: str, stack_axis: str | None,
            size: tuple[int, int], swapped: bool = False) -> TiffLayout:
    """The layout of a file whose images are ``size`` as shown (``swapped``: their stored rows
    were its columns, by the Orientation tag, so the x and y resolutions trade places)."""
    size = (int(size[0]), int(size[1]))
    frames = 1  # set by the caller once every series is read
    resolution, unit = None, None
    if "XResolution" in page.tags and "YResolution" in page.tags:
        try:
            x_res, y_res = (float(v) for v in page.resolution)
            if swapped:
                x_res, y_res = y_res, x_res
            if x_res > 0 and y_res > 0:
                resolution, unit = (x_res, y_res), int(page.resolutionunit)
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    if tif.is_ome:
        metadata = _ome_metadata(tif)
        if swapped:  # the pixel sizes follow the turn, as the resolution does
            for a, b in (("PhysicalSizeX", "PhysicalSizeY"), ("PhysicalSizeXUnit", "PhysicalSizeYUnit")):
                if a in metadata or b in metadata:
                    metadata[a], metadata[b] = metadata.pop(b, None), metadata.pop(a, None)
                    metadata = {k: v for k, v in metadata.items() if v is not None}
        return TiffLayout("ome", channel_axis, stack_axis, frames, size, resolution, unit, metadata=metadata)
    if tif.is_imagej:
        found = tif.imagej_metadata or {}
        metadata = {k: found[k] for k in IMAGEJ_KEYS if k in found}
        return TiffLayout("imagej", channel_axis, stack_axis, frames, size, resolution, unit,
                          metadata=metadata)
    return TiffLayout("plain", channel_axis, stack_axis, frames, size, resolution, unit,
                      description=_user_description(page),
                      planar=int(getattr(page, "planarconfig", 1)) == 2 and int(getattr(page, "samplesperpixel", 1)) > 1)


def _user_description(page: Any) -> str | None:
    """The ImageDescription a person wrote, not the JSON shape tifffile writes by default."""
    text = getattr(page, "description", "") or ""
    if not text:
        return None
    try:
        if isinstance(json.loads(text), dict) and "shape" in json.loads(text):
            return None
    except ValueError:
        pass
    return text


def _ome_metadata(tif: Any) -> dict[str, Any]:
    import tifffile

    try:
        ome = tifffile.xml2dict(tif.ome_metadata)["OME"]
        image = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
        pixels = image["Pixels"]
    except (KeyError, TypeError, ValueError, IndexError):
        return {}
    out = {k: pixels[k] for k in OME_KEYS if k in pixels}
    channels = pixels.get("Channel")
    channels = channels if isinstance(channels, list) else [channels] if channels else []
    names = [c.get("Name") for c in channels if isinstance(c, dict)]
    if names and all(isinstance(n, str) for n in names):
        out["ChannelNames"] = names
    return out


def write_tiff(path: str | Path, data: np.ndarray, *, alpha: bool, layout: TiffLayout | None,
               icc_profile: bytes | None = None, dpi: tuple[float, float] | None = None,
               text_tags: dict[int, bytes] | None = None) -> None:
    """Write ``data`` (N, H, W, S) of N images (N = 1: one image; S = channels, plus alpha last
    when ``alpha``) in the layout of an input (None: a plain TIFF). Plain TIFF stores channels
    as samples of each pixel (RGB when there are three, ``ExtraSamples`` marking alpha), one page
    per image; ImageJ and OME keep their metadata, and store channels as planes. ``dpi``: (x, y)
    pixels per inch, written when the layout has no resolution of its own (a PNG's or JPEG's).
    ``text_tags``: text tags by number (Artist, Copyright... as ASCII; XMP, 700, as bytes), on the
    first page."""
    import tifffile

    frames, height, width, samples = data.shape
    channels = samples - int(alpha)
    style = layout.style if layout is not None else "plain"
    if style == "imagej" and (alpha or data.dtype not in (np.uint8, np.uint16, np.float32)):
        style = "plain"  # ImageJ holds no alpha channel
    options: dict[str, Any] = {}
    if icc_profile:  # InterColorProfile, UNDEFINED bytes, on every page
        options["extratags"] = [(34675, 7, len(icc_profile), icc_profile, False)]  # False: not only the first
    for code, value in (text_tags or {}).items():  # ASCII (2; UTF-8 bytes as many writers store them), XMP BYTE (1)
        options.setdefault("extratags", []).append((code, 1 if code == 700 else 2, len(value) if code == 700 else 0,
                                                    value, True))
    if layout is not None and layout.resolution is not None:
        options["resolution"] = layout.resolution
        if layout.resolution_unit is not None:
            options["resolutionunit"] = layout.resolution_unit
    elif dpi is not None:
        options["resolution"], options["resolutionunit"] = tuple(dpi), 2  # inch
    if style == "plain":
        rgb = channels == 3
        if alpha:
            extra = ["unassalpha"] if rgb else ["unspecified"] * (channels - 1) + ["unassalpha"]
            options["extrasamples"] = extra
        if layout is not None and layout.description:
            options["description"] = layout.description
        array = data if frames > 1 else data[0]
        planar = samples > 1 and layout is not None and layout.planar
        if samples == 1:
            array = array[..., 0]
        elif planar:  # as the input stored them: a plane per sample
            array = np.moveaxis(array, -1, -3)
        tifffile.imwrite(path, array, photometric="rgb" if rgb else "minisblack",
                         planarconfig=None if samples == 1 else "separate" if planar else "contig", metadata=None,
                         **options)
        return
    assert layout is not None
    planes = layout.channel_axis == "C" or channels != 3 or (style == "imagej" and data.dtype != np.uint8)
    stack = "" if frames == 1 else (layout.stack_axis if layout.stack_axis in ("T", "Z") else "T")
    if planes:
        array = np.moveaxis(data, -1, 1)  # (N, C, H, W)
        axes = stack + ("C" if channels > 1 else "") + "YX"
        array = array.reshape([s for s, a in zip(array.shape, "NCYX") if a in "YX" or
                               (a == "N" and stack) or (a == "C" and channels > 1)])
    else:
        array, axes = (data if stack else data[0]), stack + "YXS"
    metadata: dict[str, Any] = {"axes": axes}
    if style == "imagej":
        # one image of a stack restored as one scene: no time interval (nor frame rate), no depth step
        single = {"T": ("finterval", "fps", "tunit"), "Z": ("spacing",)}.get(layout.stack_axis or "", ()) \
            if frames == 1 else ()
        metadata.update({k: v for k, v in layout.metadata.items()
                         if (k != "Labels" or len(v) == frames * channels) and k not in single})
        tifffile.imwrite(path, array, imagej=True, metadata=metadata,
                         photometric="minisblack" if planes else "rgb", **options)
    else:
        metadata.update({k: v for k, v in layout.metadata.items() if k in OME_KEYS})
        names = layout.metadata.get("ChannelNames")
        if names and len(names) == channels:
            metadata["Channel"] = {"Name": list(names)}
        tifffile.imwrite(path, array, ome=True, metadata=metadata,
                         photometric="minisblack" if planes else "rgb", **options)
