"""Edit directions from other projects' files, and SeFa's closed-form directions.

- InterfaceGAN boundary ``.npy``: one unit normal [1, w_dim] (moves are in units of the
  boundary's signed distance; ±3 is a typical range).
- GANSpace ``.npz``: ``lat_comp`` [K, 1, w_dim] (unit principal directions), ``lat_mean``
  [1, w_dim], ``lat_stdev`` [K]. Component k is read as ``lat_comp[k] · lat_stdev[k]``, so an
  alpha of 1 is one standard deviation along it, as GANSpace's own sliders count.
- SeFa (Shen & Zhou 2021): the eigenvectors of AᵀA, where A stacks the (column-normalised)
  style-modulation weights of the chosen layers: the directions of w that change the layers'
  styles most. No data, no training: a few milliseconds.

Everything is read with ``np.load(allow_pickle=False)``: no object arrays, no code.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from optinv.errors import OptinvError
from optinv.io.fileio import atomic_write, first_line
from optinv.engine.generator import Generator


def _load(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise OptinvError(f"{path}: not a readable numpy file ({first_line(e)})") from None


def read_interfacegan(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """An InterfaceGAN ``boundary.npy`` ([1, w_dim]) → one direction named after the file."""
    path = Path(path)
    arr = _load(path)
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.floating) or arr.ndim not in (1, 2) \
            or (arr.ndim == 2 and arr.shape[0] != 1):
        raise OptinvError(f"{path}: an InterfaceGAN boundary is a float array [1, w_dim], got "
                          f"{getattr(arr, 'shape', '?')} {getattr(arr, 'dtype', '')}")
    vec = torch.from_numpy(arr.reshape(-1).astype(np.float32))
    return {path.stem: {"vector": vec, "method": "interfacegan"}}


def write_interfacegan(vector: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save one direction as InterfaceGAN does: float32 [1, w_dim] (normalised to unit length)."""
    path = Path(path)
    v = vector.detach().float().cpu().reshape(1, -1)
    v = v / v.norm().clamp_min(1e-12)
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, v.numpy())

    return atomic_write(path, write)


def read_ganspace(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """A GANSpace ``.npz`` → directions ``pc0`` … ``pcK-1`` (each scaled by its standard deviation)."""
    path = Path(path)
    with _load(path) as z:
        missing = [k for k in ("lat_comp", "lat_stdev") if k not in z.files]
        if missing:
            raise OptinvError(f"{path}: not a GANSpace file (lacks {', '.join(missing)}; has {', '.join(z.files)})")
        comp, std = np.asarray(z["lat_comp"]), np.asarray(z["lat_stdev"]).reshape(-1)
    comp = comp.reshape(comp.shape[0], -1) if comp.ndim in (2, 3) else None
    if comp is None or comp.shape[0] != std.shape[0]:
        raise OptinvError(f"{path}: lat_comp [K, 1, w_dim] and lat_stdev [K] do not match")
    return {f"pc{k}": {"vector": torch.from_numpy((comp[k] * std[k]).astype(np.float32)), "method": "ganspace",
                       "stdev": float(std[k])} for k in range(comp.shape[0])}


def write_ganspace(components: torch.Tensor, stdev: torch.Tensor, mean: torch.Tensor,
                   path: str | os.PathLike) -> Path:
    """Save K unit directions [K, w_dim], their standard deviations [K] and the mean [w_dim] as GANSpace does."""
    path = Path(path)
    comp = components.detach().float().cpu()
    comp = comp / comp.norm(dim=1, keepdim=True).clamp_min(1e-12)
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, lat_comp=comp[:, None].numpy(), lat_stdev=stdev.detach().float().cpu().numpy(),
                     lat_mean=mean.detach().float().cpu().reshape(1, -1).numpy())

    return atomic_write(path, write)


def read_foreign_directions(path: str | os.PathLike) -> dict[str, dict[str, Any]] | None:
    """InterfaceGAN (.npy) or GANSpace (.npz) directions, or None for any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return read_interfacegan(path)
    if suffix == ".npz":
        return read_ganspace(path)
    return None


# ----------------------------------------------------------------------------- SeFa
_CONV = re.compile(r"^(conv1|convs\.(\d+))\.conv\.modulation\.weight$")


def modulation_weights(g: Generator, layers: Sequence[int] | None = None) -> list[tuple[int, torch.Tensor]]:
    """(latent layer, weight [out, w_dim]) of every style-modulated conv; toRGB layers are left out."""
    found = []
    for name, p in g.named_parameters():
        m = _CONV.match(name)
        if m:
            layer = 0 if m.group(1) == "conv1" else int(m.group(2)) + 1
            if layers is None or layer in layers:
                found.append((layer, p.detach().float().cpu()))
    if not found:
        raise OptinvError(f"no modulated conv layer among {list(layers or [])} (the model has layers 0-{g.n_latent - 1})")
    return sorted(found, key=lambda x: x[0])


def sefa(g: Generator, k: int = 10, layers: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-``k`` SeFa directions [k, w_dim] (unit, sign fixed: largest entry positive) and eigenvalues."""
    if k < 1:
        raise OptinvError(f"`k` must be ≥ 1, got {k}")
    a = torch.cat([w for _, w in modulation_weights(g, layers)], 0).double()  # [Σ out, w_dim]
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)  # each style channel counts once, whatever its scale
    vals, vecs = torch.linalg.eigh(a.T @ a)
    order = torch.argsort(vals, descending=True)[: min(k, a.shape[1])]
    vecs = vecs[:, order].T
    sign = torch.sign(vecs.gather(1, vecs.abs().argmax(1, keepdim=True)))
    return (vecs * sign).float(), vals[order].float()


def sefa_directions(g: Generator, k: int = 10, layers: Sequence[int] | None = None,
                    named: dict[str, torch.Tensor] | None = None, min_cos: float = 0.3) -> dict[str, dict[str, Any]]:
    """SeFa directions as a directions table; with ``named`` (e.g. the model's labelled directions), each
    gets the name it is most aligned with (|cos| ≥ ``min_cos``) as a label, sign chosen to match it."""
    vecs, vals = sefa(g, k, layers)
    table: dict[str, dict[str, Any]] = {}
    for i, (v, e) in enumerate(zip(vecs, vals)):
        entry: dict[str, Any] = {"vector": v.clone(), "method": "sefa", "eigenvalue": float(e),
                                 "layers": list(layers) if layers is not None else "all"}
        name = f"sefa{i}"
        if named:
            cos = {n: float(torch.nn.functional.cosine_similarity(v, d.float().reshape(-1), dim=0))
                   for n, d in named.items() if d.numel() == v.numel()}
            best = max(cos, key=lambda n: abs(cos[n]), default=None)
            if best is not None and abs(cos[best]) >= min_cos:
                entry["vector"] = v * (1 if cos[best] > 0 else -1)
                entry["label"], entry["cosine"] = best, abs(cos[best])
                name = f"sefa{i}_{best}"
        table[name] = entry
    return table


__all__ = ["read_interfacegan", "write_interfacegan", "read_ganspace", "write_ganspace", "read_foreign_directions",
           "modulation_weights", "sefa", "sefa_directions"]
