"""Other projects' latent files, read into optinv's latent record and written back out.

- NVIDIA stylegan2-ada-pytorch ``projector.py`` → ``projected_w.npz``: one array ``w`` of shape
  [1, num_ws, w_dim] (what its ``generate.py --projected-w`` renders, with the model's constant
  noise). Read with ``np.load(allow_pickle=False)``.
- rosinality stylegan2-pytorch ``projector.py`` → a ``.pt`` dict {image path: {"img": [3, H, W]
  in [-1, 1], "latent": [w_dim] (W) or [n_latent, w_dim] (W+), "noise": [[1, 1, h, w], …]}}.
  Read with ``torch.load(weights_only=True)``.

Both carry W/W+ codes only: a StyleMap or Z+ record is exported as the W+ vectors it renders
(exact for W, W+ and Z+; a StyleMap's spatial detail is averaged away, and the writer says so).
Readers return a :class:`Foreign` (the code, its noise and where it came from);
:mod:`optinv.io.latents` owns the latent record and turns that into one (``latents.open_latent``).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optinv.errors import OptinvError
from optinv.io.fileio import atomic_torch_save, atomic_write, first_line, load_error
from optinv.engine.generator import Generator

FORMATS = ("npz", "rosinality")


def _model_noise(g: Generator) -> list[torch.Tensor]:
    return [n.detach().cpu().clone().reshape(1, 1, *n.shape[-2:]) for n in g.noise_list()]


def _check_width(layers: int | None, dim: int, g: Generator, path: Path) -> None:
    if dim != g.style_dim or (layers is not None and layers != g.n_latent):
        have = f"{layers} layers × {dim}" if layers is not None else f"{dim} dimensions"
        raise OptinvError(f"{path}: the latent has {have}; the model has {g.n_latent} layers × {g.style_dim} "
                          f"(pass the `model` it was projected with)")


@dataclass
class Foreign:
    """A latent read from another project's file: what a latent record needs besides the model."""

    space: str                          # "w" or "wplus"
    tensors: dict[str, torch.Tensor]    # {"w": [1, D]} or {"wplus": [1, L, D]}
    wplus: torch.Tensor                 # [L, D], as rendered
    noise: list[torch.Tensor]           # [1, 1, h, w] per noise input
    source: str                         # "nvidia projected_w.npz" | "rosinality projector"
    file: str


def _record(g: Generator, space: str, tensors: dict[str, torch.Tensor], wplus: torch.Tensor,
            noise: list[torch.Tensor], source: str, path: Path) -> Foreign:
    return Foreign(space, tensors, wplus.float().clone(), noise, source, path.name)


def read_nvidia_npz(path: str | os.PathLike, g: Generator) -> Foreign:
    """``projected_w.npz`` → a W+ record for ``g`` (noise: the model's constant noise, as NVIDIA renders)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "w" not in z.files:
                raise OptinvError(f"{path}: no array 'w' (has {', '.join(z.files) or 'nothing'}); "
                                  f"NVIDIA's projector writes projected_w.npz with w [1, num_ws, 512]")
            w = np.asarray(z["w"])
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise OptinvError(f"{path}: not a readable .npz ({first_line(e)})") from None
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[0] < 1 or not np.issubdtype(w.dtype, np.floating):
        raise OptinvError(f"{path}: 'w' has shape {w.shape} and dtype {w.dtype}; expected float [1, num_ws, w_dim]")
    _check_width(w.shape[1], w.shape[2], g, path)
    t = torch.from_numpy(w[:1].astype(np.float32))
    if not torch.isfinite(t).all():
        raise OptinvError(f"{path}: 'w' contains NaN or Inf values")
    return _record(g, "wplus", {"wplus": t}, t[0], _model_noise(g), "nvidia projected_w.npz", path)


def rosinality_entries(path: str | os.PathLike) -> dict[str, Any] | None:
    """The {image: {"latent", "noise", …}} dict of a rosinality projector file, or None if it is not one."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise OptinvError(f"{path}: not a readable latent file ({load_error(e, path=path)})") from None
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) and "latent" in v for v in obj.values()):
        return obj
    return None


def read_rosinality(path: str | os.PathLike, g: Generator, key: str | None = None) -> Foreign:
    """One entry of a rosinality projector ``.pt`` → a W or W+ record for ``g``."""
    path = Path(path)
    entries = rosinality_entries(path)
    if entries is None:
        raise OptinvError(f"{path}: not a rosinality projector file ({{image: {{'img', 'latent', 'noise'}}}})")
    if key is None:
        if len(entries) > 1:
            raise OptinvError(f"{path} holds {len(entries)} projections ({', '.join(map(str, entries))}): "
                              f"use {path}:IMAGE to pick one")
        key = next(iter(entries))
    if key not in entries:
        raise OptinvError(f"{path}: no projection of {key!r} (has {', '.join(map(str, entries))})")
    e = entries[key]
    lat = e["latent"]
    if not isinstance(lat, torch.Tensor) or not lat.is_floating_point() or lat.dim() not in (1, 2):
        raise OptinvError(f"{path}[{key!r}]: 'latent' must be a float tensor [w_dim] or [n_latent, w_dim]")
    lat = lat.float()
    _check_width(lat.shape[0] if lat.dim() == 2 else None, lat.shape[-1], g, path)
    if not torch.isfinite(lat).all():
        raise OptinvError(f"{path}[{key!r}]: 'latent' contains NaN or Inf values")
    sizes = [tuple(n.shape[-2:]) for n in g.noise_list()]
    noise = e.get("noise")
    if noise is None:
        noise = _model_noise(g)
    elif (not isinstance(noise, (list, tuple)) or [tuple(n.shape[-2:]) for n in noise] != sizes
          or not all(isinstance(n, torch.Tensor) for n in noise)):
        raise OptinvError(f"{path}[{key!r}]: its noise maps do not fit the model ({len(sizes)} maps of sides "
                          f"{', '.join(str(s[0]) for s in sizes)})")
    else:
        noise = [n.float().reshape(1, 1, *n.shape[-2:]).clone() for n in noise]
    if lat.dim() == 1:
        return _record(g, "w", {"w": lat[None].clone()}, lat[None].expand(g.n_latent, -1), noise,
                       "rosinality projector", path)
    return _record(g, "wplus", {"wplus": lat[None].clone()}, lat, noise, "rosinality projector", path)


def sniff(path: str | os.PathLike) -> str:
    """'npz', 'rosinality' or 'optinv' (from the suffix, or for .pt the content)."""
    p = Path(path)
    if p.suffix.lower() == ".npz":
        return "npz"
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise OptinvError(f"{p}: not a readable latent file ({load_error(e, path=p)})") from None
    if isinstance(obj, dict) and obj.get("format") == "optinv-latent":
        return "optinv"
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) and "latent" in v for v in obj.values()):
        return "rosinality"
    raise OptinvError(f"{p}: not a latent file optinv knows (optinv NAME.latent.pt, NVIDIA projected_w.npz, "
                      f"rosinality projector .pt)")


def split_key(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """``FILE`` or ``FILE:IMAGE`` (an entry of a rosinality file holding several projections)."""
    s = os.fspath(spec)
    if Path(s).exists() or ":" not in s:
        return Path(s), None
    path, _, key = s.rpartition(":")
    return Path(path), key or None


def read_foreign(spec: str | os.PathLike, g: Generator) -> Foreign:
    """A foreign latent file (NVIDIA .npz or rosinality .pt, ``FILE:IMAGE`` for one of several), checked against ``g``."""
    path, key = split_key(spec)
    if not path.is_file():
        raise OptinvError(f"{path}: no such file")
    kind = sniff(path)
    if kind == "npz":
        return read_nvidia_npz(path, g)
    if kind == "rosinality":
        return read_rosinality(path, g, key)
    raise OptinvError(f"{path}: an optinv latent file, not a foreign one (read it with optinv.io.latents.load_latent)")


def _wplus_for_export(rec: dict[str, Any], notes: list[str] | None) -> torch.Tensor:
    if rec["space"] == "stylemap" and notes is not None:
        notes.append("a StyleMap latent is exported as its per-layer mean vectors (W+): spatial detail is lost")
    return rec["wplus"].detach().float().cpu()


def write_nvidia_npz(rec: dict[str, Any], path: str | os.PathLike, notes: list[str] | None = None) -> Path:
    """``projected_w.npz`` with ``w`` [1, num_ws, w_dim] float32 (noise is not part of the format)."""
    path = Path(path)
    w = _wplus_for_export(rec, notes).numpy()[None].astype(np.float32)
    if notes is not None and rec["space"] != "stylemap":
        notes.append("NVIDIA's generate.py renders with the model's constant noise, not this latent's noise maps")
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, w=w)

    return atomic_write(path, write)


def write_rosinality(rec: dict[str, Any], path: str | os.PathLike, key: str, image: torch.Tensor | None = None,
                     notes: list[str] | None = None) -> Path:
    """A rosinality projector file with one entry ``key``: latent, noise and (if given) the image in [-1, 1]."""
    wplus = _wplus_for_export(rec, notes)
    latent = rec["tensors"]["w"][0].float().cpu().clone() if rec["space"] == "w" else wplus.clone()
    entry: dict[str, Any] = {"latent": latent, "noise": [n.detach().float().cpu().clone() for n in rec["noise"]]}
    if image is not None:
        entry["img"] = (image.detach().float().cpu().reshape(3, *image.shape[-2:]) * 2 - 1).clone()
    return atomic_torch_save({key: entry}, path)


def write_foreign(rec: dict[str, Any], path: str | os.PathLike, fmt: str, key: str = "image.png",
                  image: torch.Tensor | None = None, notes: list[str] | None = None) -> Path:
    """Write ``rec`` as ``fmt`` ('npz' or 'rosinality'); ``image`` in [0, 1] for rosinality's "img"."""
    if fmt == "npz":
        return write_nvidia_npz(rec, path, notes)
    if fmt == "rosinality":
        return write_rosinality(rec, path, key, image, notes)
    raise OptinvError(f"unknown latent format {fmt!r} (known: {', '.join(FORMATS)})")


__all__ = ["FORMATS", "Foreign", "read_foreign", "read_nvidia_npz", "read_rosinality", "sniff", "split_key", "write_foreign",
           "write_nvidia_npz", "write_rosinality"]
