"""Named edit directions stored beside a model: ``MODEL.directions.pt`` (weights_only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from optinv.io.checkpoints import SAMPLES_MODELS, card_name, model_id
from optinv.errors import OptinvError
from optinv.io.fileio import atomic_torch_save, load_error, load_tagged
from optinv.engine.generator import Generator

FORMAT = "optinv-directions"


def save_directions(found: dict[str, dict[str, Any]], g: Generator, path: str | os.PathLike) -> Path:
    obj = {"format": FORMAT, "version": 1, "model_id": model_id(g), "style_dim": g.style_dim,
           "directions": {k: {**v, "vector": v["vector"].float().cpu()} for k, v in found.items()}}
    return atomic_torch_save(obj, path)


def _read(path: Path) -> dict[str, Any]:
    """A directions file, a plain saved tensor (one direction named after the file), an InterfaceGAN
    boundary ``.npy`` or a GANSpace ``.npz`` (:mod:`optinv.edit.direction_formats`)."""
    from optinv.edit.direction_formats import read_foreign_directions

    foreign = read_foreign_directions(path)
    if foreign is not None:
        return {"directions": foreign}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise OptinvError(f"{path}: not a readable directions file ({load_error(e, path=path)})") from None
    if isinstance(obj, torch.Tensor):
        return {"directions": {path.stem: {"vector": obj.float().reshape(-1), "method": "file"}}}
    return load_tagged(path, FORMAT, "directions file", "scripts/fit_directions.py / optinv directions fit")


def shipped_directions_path(g: Generator) -> Path:
    return SAMPLES_MODELS / f"{card_name(g, '')}.directions.pt"


def load_direction(spec: str, g: Generator) -> tuple[str, torch.Tensor]:
    """A direction by file path (a tensor or a directions file, ``FILE:NAME``) or by shipped name."""
    path_part, _, name = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    p = Path(path_part)
    if p.exists():
        obj = _read(p)
        table = obj["directions"]
        if not name:
            if len(table) != 1:
                raise OptinvError(f"{p} holds several directions ({', '.join(table)}): use {p}:NAME")
            name = next(iter(table))
    else:
        shipped = shipped_directions_path(g)
        if not shipped.exists():
            raise OptinvError(f"no direction file {spec!r} and no named directions for model {g.card.get('name')!r}")
        table = _read(shipped)["directions"]
        name = spec
    if name not in table:
        raise OptinvError(f"unknown direction {name!r} (known: {', '.join(sorted(table))})")
    vec = table[name].get("vector") if isinstance(table[name], dict) else None
    if not isinstance(vec, torch.Tensor) or not vec.is_floating_point():
        raise OptinvError(f"direction {name!r} has no floating-point 'vector'")
    vec = vec.float().reshape(-1)
    if vec.numel() != g.style_dim:
        raise OptinvError(f"direction {name!r} has {vec.numel()} dimensions, the model's latents have {g.style_dim}")
    if not torch.isfinite(vec).all():
        raise OptinvError(f"direction {name!r} contains NaN or Inf values")
    if not vec.abs().sum() > 0:
        raise OptinvError(f"direction {name!r} is all zeros: it would change nothing")
    return name, vec


def shipped_directions(g: Generator) -> dict[str, torch.Tensor]:
    """Every named direction shipped beside the model, by name (empty when it has none): what a UI lists."""
    path = shipped_directions_path(g)
    if not path.exists():
        return {}
    return {name: load_direction(name, g)[1] for name in sorted(_read(path)["directions"])}
