"""Unusual but valid images are converted; the values that come out are the right ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from optinv.errors import InputImageError
from optinv.io.image_files import load_image

RED = (200, 30, 40)


def _rgb(path: Path, **kw) -> Path:
    Image.new("RGB", (16, 16), RED).save(path, **kw)
    return path


def _cmyk_jpeg(d: Path) -> Path:
    p = d / "cmyk.jpg"
    Image.new("RGB", (16, 16), RED).convert("CMYK").save(p, quality=100)
    return p


def _png16(d: Path) -> Path:
    p = d / "g16.png"
    Image.fromarray(np.full((16, 16), 40000, dtype=np.uint16)).save(p)
    return p


def _palette(d: Path) -> Path:
    p = d / "pal.png"
    Image.new("RGB", (16, 16), RED).quantize(4).save(p)
    return p


def _gray(d: Path) -> Path:
    p = d / "gray.png"
    Image.new("L", (16, 16), 128).save(p)
    return p


def _webp(d: Path) -> Path:
    return _rgb(d / "x.webp", lossless=True)


CASES = {
    "cmyk jpeg": (_cmyk_jpeg, RED, 6),
    "16-bit png": (_png16, (156, 156, 156), 1),
    "palette png": (_palette, RED, 1),
    "grayscale": (_gray, (128, 128, 128), 0),
    "webp": (_webp, RED, 0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unusual_images_are_converted(case: str, tmp_path: Path) -> None:
    make, colour, tol = CASES[case]
    t = load_image(make(tmp_path))
    assert t.shape == (3, 16, 16)
    rgb = t[:, 8, 8] * 255
    assert torch.allclose(rgb, torch.tensor(colour, dtype=torch.float32), atol=tol + 0.5), rgb


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((8, 16, 3), np.uint8)
    arr[:, :8] = 255  # left half white, landscape 16×8
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90° CW to display"
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif, quality=100)
    notes: list[str] = []
    t = load_image(p, crop="pad", notes=notes)
    assert any("EXIF" in n for n in notes)
    # displayed upright it is portrait 8×16 with the white half on top; padded to 16×16
    top, bottom = t[:, 2:6, 6:10].mean(), t[:, 10:14, 6:10].mean()
    assert top > 0.75 and bottom < 0.25


def test_rgba_alpha_is_dropped_with_a_note_or_kept(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    Image.new("RGBA", (8, 8), (10, 20, 30, 128)).save(p)
    notes: list[str] = []
    assert load_image(p, notes=notes).shape == (3, 8, 8)
    assert any("alpha" in n for n in notes)
    kept = load_image(p, keep_alpha=True)
    assert kept.shape == (4, 8, 8) and abs(float(kept[3].mean()) - 128 / 255) < 1e-6


def test_resize_is_antialiased(tmp_path: Path) -> None:
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[:, ::2] = 255  # 1-pixel stripes average to grey when downscaled
    p = tmp_path / "stripes.png"
    Image.fromarray(arr).save(p)
    t = load_image(p, size=16)
    assert t.shape == (3, 16, 16)
    assert t.std() < 0.05 and abs(float(t.mean()) - 0.5) < 0.05


def test_paint_reference_without_alpha_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputImageError, match="alpha"):
        load_image(_rgb(tmp_path / "rgb.png"), keep_alpha=True)
