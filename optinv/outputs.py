"""Write a job's results: NAME.png, NAME.latent.pt, NAME.compare.png, NAME.json [, NAME.gif].

Every file is written to a temporary name and renamed, so an interrupted run leaves either
a complete result or nothing, and never overwrites a finished file with half of one.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .errors import OptinvError
from .fileio import atomic_write, atomic_write_text
from .imageio import atomic_save_image, checkerboard_composite, make_grid, tensor_to_pil
from .latents import load_latent, save_latent  # noqa: F401  (load_latent: kept importable from here)


def ensure_out_dir(out: str | os.PathLike) -> Path:
    """Create the output folder, or fail clearly before any work is done."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".optinv_write_probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OptinvError(f"cannot write to output folder {path}: {e.strerror or e}") from None
    return path


def to_pil01(x: torch.Tensor) -> Image.Image:
    """[3|4, H, W] with RGB in [0, 1] (alpha in [0, 1]) → PIL."""
    if x.shape[0] == 4:
        return tensor_to_pil(torch.cat([x[:3] * 2 - 1, x[3:]]))
    return tensor_to_pil(x * 2 - 1)


def _upscale_to(im: Image.Image, size: int) -> Image.Image:
    return im if im.size == (size, size) else im.resize((size, size), Image.NEAREST)


def compare_strip(item: Any) -> Image.Image:
    """input | result | result as the observation sees it (all shown at model resolution)."""
    r = item.image.shape[-1]
    target = to_pil01(item.target)
    shown_input = checkerboard_composite(target) if target.mode == "RGBA" else target
    panels = [_upscale_to(shown_input, r), to_pil01(item.image), _upscale_to(to_pil01(item.observed), r)]
    scale = max(1, 256 // r)
    return make_grid(panels, cols=3, scale=scale)


def jsonable(v: Any) -> Any:
    """Plain JSON values: tensors become lists, NaN becomes null and ±inf a string (strict JSON has neither)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.tolist()
    return v


def save_gif(frames: list[torch.Tensor], final: torch.Tensor, path: Path, ms: int = 80) -> None:
    ims = [to_pil01(f.clamp(0, 1)) for f in frames] + [to_pil01(final)]
    r = ims[-1].size[0]
    ims = [_upscale_to(im, max(r, 128)) for im in ims]
    atomic_write(path, lambda tmp: ims[0].save(tmp, format="GIF", save_all=True, append_images=ims[1:],
                                               duration=ms, loop=0))


def write_item(item: Any, out: Path, gif: bool = False) -> dict[str, str]:
    """Write every output of one result; returns {kind: path}."""
    paths = {"image": out / f"{item.name}.png", "latent": out / f"{item.name}.latent.pt",
             "compare": out / f"{item.name}.compare.png", "json": out / f"{item.name}.json"}
    atomic_save_image(to_pil01(item.image), paths["image"])
    save_latent(item.latent, paths["latent"])
    atomic_save_image(compare_strip(item), paths["compare"])
    if gif and item.frames:
        paths["gif"] = out / f"{item.name}.gif"
        save_gif(item.frames, item.image, paths["gif"])
    record = {"name": item.name, "job": item.job, "metrics": item.metrics, "notes": item.notes,
              "model": item.latent["model"], "settings": item.latent["settings"],
              "outputs": {k: str(p.name) for k, p in paths.items() if k != "json"}}
    atomic_write_text(json.dumps(jsonable(record), indent=2) + "\n", paths["json"])
    return {k: str(p) for k, p in paths.items()}
