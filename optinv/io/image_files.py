"""Reading and writing images: every odd-but-valid file is converted, every bad one is refused clearly."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from optinv.errors import InputImageError
from optinv.io.fileio import atomic_write, first_line
from optinv.io.ranges import to_signed, to_unit

MAX_PIXELS = 36_000_000  # decoded in full before any resize (~110 MB as RGB): a 6000×6000 photo
MIN_SIDE = 4


@contextlib.contextmanager
def _pillow_notes(notes: list[str]) -> Iterator[None]:
    """Pillow's warnings about a file (odd EXIF, palette transparency…) become the file's notes,
    not lines on the terminal; the decompression-bomb warning stays an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield
    for w in caught:
        text = first_line(w.message) if isinstance(w.message, BaseException) else str(w.message)
        if text not in notes:
            notes.append(text)


def _open(path: Path) -> Image.Image:
    """Open and decode, refusing files over :data:`MAX_PIXELS` *before* decoding them (a JPEG is
    decoded at a reduced scale instead, which costs nothing)."""
    if not path.exists():
        raise InputImageError(f"{path}: no such file")
    if path.is_dir():
        raise InputImageError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise InputImageError(f"{path}: empty file")
    return _decode(path, path)


def _decode(fp: Path | IO[bytes], path: Path) -> Image.Image:
    """Decode a file or an in-memory image (``path`` names it in messages) with the size checks."""
    try:
        im = Image.open(fp)
        w, h = im.size
        if w * h > MAX_PIXELS and im.format == "JPEG":
            k = 1
            while (w // (2 * k)) * (h // (2 * k)) > MAX_PIXELS // 4 and k < 8:  # JPEG scales 1/2, 1/4, 1/8
                k *= 2
            im.draft(im.mode, (w // (2 * k), h // (2 * k)))
        if im.size[0] * im.size[1] > MAX_PIXELS:
            raise InputImageError(f"{path}: {w}×{h} is too large to decode here (limit {MAX_PIXELS // 1_000_000} "
                                  f"megapixels); resize it first")
        im.load()
    except InputImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputImageError(f"{path}: not a readable image ({type(e).__name__})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputImageError(f"{path}: damaged or truncated image ({first_line(e, 120)})") from None
    if min(im.size) < MIN_SIDE:
        raise InputImageError(f"{path}: {im.size[0]}×{im.size[1]} is too small (need at least {MIN_SIDE}×{MIN_SIDE})")
    return im


def _declared_max(im: Image.Image) -> float:
    """The largest value the file's declared sample format can hold (not the largest it holds:
    a dark 16-bit image must stay dark)."""
    if im.mode.startswith("I;16"):
        return 65535.0
    tags = getattr(im, "tag_v2", None) or {}
    bits = tags.get(258, 32)
    bits = int(bits[0] if isinstance(bits, (tuple, list)) else bits)
    fmt = tags.get(339, 1)
    signed = int(fmt[0] if isinstance(fmt, (tuple, list)) else fmt) == 2 or (im.mode == "I" and bits == 32 and 339 not in tags)
    return float(2 ** (bits - 1) - 1 if signed else 2 ** bits - 1)


def _high_depth_to_8bit(im: Image.Image, path: Path, notes: list[str]) -> Image.Image:
    """16/32-bit integers by their declared depth; floats as 0–1 (or 0–255 when they exceed 1)."""
    arr = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        bad = int((~np.isfinite(arr)).sum())
        if bad:
            raise InputImageError(f"{path}: {bad} pixel(s) are NaN or infinite; fix or mask them before using it")
        top = 1.0
        if arr.max() > 1.0:
            top = 255.0
            notes.append("float pixels above 1: read as 0–255")
        if arr.min() < 0 or arr.max() > top:
            notes.append(f"float pixels outside 0–{top:g} clipped")
    else:
        top = _declared_max(im)
    notes.append("converted from high bit depth to 8 bits")
    return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")


def _to_8bit_rgba(im: Image.Image, notes: list[str], path: Path | None = None) -> Image.Image:
    """Normalise mode: EXIF orientation, 16-bit, palette, CMYK, grayscale → RGB or RGBA."""
    with _pillow_notes(notes):
        transposed = ImageOps.exif_transpose(im)
    if transposed is not None and transposed.size != im.size:
        notes.append("rotated by its EXIF orientation")
    im = transposed if transposed is not None else im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        im = _high_depth_to_8bit(im, path or Path(im.filename or "image"), notes)
    with _pillow_notes(notes):
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        if im.mode == "LA":
            im = im.convert("RGBA")
        if im.mode in ("CMYK", "YCbCr", "LAB", "HSV", "1", "L"):
            im = im.convert("RGB")
        if im.mode not in ("RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    return im


CROP_HINT = "pass `crop` center (or pad)"


def fit_square(im: Image.Image, path: Path, crop: str, hint: str = CROP_HINT, size: int | None = None) -> Image.Image:
    """A square image: cropped, padded or refused. With ``size``, a padded image larger than
    ``size`` is shrunk first, so a 20000×4 strip never becomes a 20000² canvas (16 GB)."""
    w, h = im.size
    if w == h:
        return im
    if crop == "pad" and size is not None and max(w, h) > size:
        k = size / max(w, h)
        im = im.resize((max(1, round(w * k)), max(1, round(h * k))), Image.LANCZOS, reducing_gap=None)
        w, h = im.size
    if crop == "center":
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        return im.crop((left, top, left + s, top + s))
    if crop == "pad":
        s = max(w, h)
        canvas = Image.new(im.mode, (s, s))
        canvas.paste(im, ((s - w) // 2, (s - h) // 2))
        return canvas
    raise InputImageError(f"{path}: image is {w}×{h}, not square; {hint}")


def read_image_bytes(data: bytes, name: str, notes: list[str] | None = None) -> Image.Image:
    """:func:`read_image` for an image held in memory (an upload, a painted canvas): the same checks and
    conversions, ``name`` in the messages, no file written."""
    notes = notes if notes is not None else []
    if not data:
        raise InputImageError(f"{name}: empty file")
    with _pillow_notes(notes):
        raw = _decode(io.BytesIO(data), Path(name))
    return _to_8bit_rgba(raw, notes, Path(name))


def read_image(path: str | os.PathLike, notes: list[str] | None = None) -> Image.Image:
    """Decode an image file once: 8-bit RGB or RGBA PIL at its own size (EXIF-rotated, 16-bit, palette,
    CMYK and grayscale converted, each conversion said in ``notes``). Unreadable, truncated or
    absurdly large files raise :class:`InputImageError` with one line."""
    path = Path(path)
    notes = notes if notes is not None else []
    with _pillow_notes(notes):
        raw = _open(path)
    return _to_8bit_rgba(raw, notes, path)


def image_to_tensor(im: Image.Image, path: str | os.PathLike, size: int | None = None, keep_alpha: bool = False,
                    crop: str = "none", notes: list[str] | None = None, hint: str = CROP_HINT) -> torch.Tensor:
    """A decoded image (:func:`read_image`) → float tensor [C, H, W] in [0, 1]: RGB, or RGBA if ``keep_alpha``.

    ``crop`` makes it square (``none`` refuses a non-square image, saying how); ``size`` resizes
    (Lanczos, antialiased) to size×size; ``path`` only names the image in messages.
    """
    path = Path(path)
    notes = notes if notes is not None else []
    if im.mode == "RGBA" and not keep_alpha:
        notes.append("alpha channel dropped (it has no meaning for this job)")
        im = im.convert("RGB")
    elif im.mode == "RGB" and keep_alpha:
        raise InputImageError(f"{path}: no alpha channel; a paint reference needs RGBA (alpha 0 = unconstrained)")
    im = fit_square(im, path, crop, hint, size)
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.LANCZOS, reducing_gap=None)
    arr = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0
    rgb = to_unit(to_signed(arr[:3]))  # rounded as every earlier version did, so results keep their bits
    return torch.cat([rgb, arr[3:]], 0) if keep_alpha else rgb


def load_image(path: str | os.PathLike, size: int | None = None, keep_alpha: bool = False,
               crop: str = "none", notes: list[str] | None = None, hint: str = CROP_HINT) -> torch.Tensor:
    """Image file → float tensor [C, H, W] in [0, 1] (RGB; RGBA if ``keep_alpha``).

    :func:`read_image` then :func:`image_to_tensor`; ``notes`` collects one-line remarks about
    conversions (alpha dropped, EXIF rotation, bit depth) for the caller to print.

    >>> import tempfile, PIL.Image
    >>> path = tempfile.mkdtemp() + "/grey.png"
    >>> PIL.Image.new("RGB", (8, 8), (255, 128, 0)).save(path)
    >>> x = load_image(path, size=4)
    >>> tuple(x.shape), round(float(x[0].max()), 3), float(x[2].min())
    ((3, 4, 4), 1.0, 0.0)
    """
    notes = notes if notes is not None else []
    return image_to_tensor(read_image(path, notes), path, size, keep_alpha, crop, notes, hint)


def load_photo(path: str | os.PathLike, notes: list[str] | None = None) -> Image.Image:
    """A photograph as 8-bit RGB PIL at its own size (EXIF-rotated; alpha dropped): what face alignment reads."""
    path = Path(path)
    notes = notes if notes is not None else []
    with _pillow_notes(notes):
        raw = _open(path)
    im = _to_8bit_rgba(raw, notes, path)
    return im.convert("RGB") if im.mode != "RGB" else im


def to_pil(x: torch.Tensor) -> Image.Image:
    """[3, H, W] RGB or [4, H, W] RGBA in [0, 1] → 8-bit PIL image (values outside [0, 1] are clipped).

    The one tensor → picture conversion: every PNG optinv writes goes through it.
    """
    if x.dim() != 3 or x.shape[0] not in (3, 4):
        raise ValueError(f"to_pil takes [3|4, H, W] in [0, 1], got shape {tuple(x.shape)}")
    x = x.detach().float().cpu()
    signed = to_signed(x[:3]).clamp(-1, 1)  # the rounding every earlier version used: PNGs keep their bytes
    rgb = ((signed + 1.0) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)
    if x.shape[0] == 4:
        a = (x[3:4].clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        return Image.fromarray(torch.cat([rgb, a]).permute(1, 2, 0).numpy(), "RGBA")
    return Image.fromarray(rgb.permute(1, 2, 0).numpy(), "RGB")


def atomic_save_image(im: Image.Image, path: str | os.PathLike, **kw) -> Path:
    """Write via a temporary file and rename, so a killed run never leaves a half image."""
    path = Path(path)
    fmt = kw.pop("format", None) or path.suffix.lstrip(".").upper().replace("JPG", "JPEG")
    return atomic_write(path, lambda tmp: im.save(tmp, format=fmt, **kw))


def make_grid(images: Iterable[Image.Image], cols: int, scale: int = 1, pad: int = 2,
              background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Tile same-size images into a grid (nearest upscaling keeps pixels honest)."""
    ims = [im.convert("RGB") for im in images]
    w, h = ims[0].size
    w, h = w * scale, h * scale
    rows = (len(ims) + cols - 1) // cols
    grid = Image.new("RGB", (cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad), background)
    for i, im in enumerate(ims):
        if scale != 1:
            im = im.resize((w, h), Image.NEAREST)
        r, c = divmod(i, cols)
        grid.paste(im, (pad + c * (w + pad), pad + r * (h + pad)))
    return grid


def save_grid(images: Iterable[Image.Image], path: str | os.PathLike, cols: int, scale: int = 1) -> Path:
    return atomic_save_image(make_grid(images, cols, scale), path)


def checkerboard_composite(rgba: Image.Image, cell: int = 4) -> Image.Image:
    """Show an RGBA reference over a checkerboard so unconstrained (alpha 0) pixels are visible."""
    w, h = rgba.size
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // cell + xx // cell) % 2)[..., None] == 0, 200, 150).astype(np.uint8)
    bg = Image.fromarray(np.repeat(board, 3, axis=2), "RGB")
    bg.paste(rgba, (0, 0), rgba)
    return bg
