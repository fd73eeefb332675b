"""Latent parametrisations searched by the optimiser: w, wplus, zplus (PULSE) and stylemap.

Each space holds one independent latent per image (batch rows never interact), renders
through ``to_styles()`` and may re-project after every step (``project_()``).
"""

from __future__ import annotations

import math
import pickle
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from optinv.errors import OptinvError
from optinv.io.fileio import CACHE_ENV, atomic_torch_save, cache_dir, first_line
from optinv.engine.generator import Generator

SPACES = ("w", "wplus", "zplus", "stylemap")


def expand_wplus(w: torch.Tensor, n_latent: int) -> torch.Tensor:
    """[B, D] → [B, n_latent, D]; W+ passes through."""
    return w[:, None, :].expand(-1, n_latent, -1) if w.dim() == 2 else w


# ------------------------------------------------------------------ PULSE's gaussian fit
@torch.no_grad()
def gaussian_fit(g: Generator, n: int = 1_000_000, seed: int = 0, chunk: int = 65536,
                 cache: bool = True) -> dict[str, torch.Tensor]:
    """Per-dimension mean/std of lrelu_5(mapping(z)) over ``n`` z, in chunks (PULSE's OOM fix).

    ``lrelu_5`` undoes the final lrelu_0.2 so the statistics are of a near-Gaussian variable.
    Cached per model (keyed by a hash of the mapping weights) under
    ``fileio.cache_dir()/gaussian_fit`` because 1e6 samples take a while.
    """
    path = gaussian_fit_cache() / f"{_mapping_key(g, n, seed)}.pt"
    fit = _read_cached_fit(path, g.style_dim) if cache else None
    if fit is None:
        fit = _compute_fit(g, n, seed, chunk)
        if cache:
            _write_cached_fit(fit, path)
    return {k: v.to(g.w_avg.device) for k, v in fit.items()}


def gaussian_fit_cache() -> Path:
    return cache_dir() / "gaussian_fit"


def _compute_fit(g: Generator, n: int, seed: int, chunk: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    s1 = torch.zeros(g.style_dim, dtype=torch.float64)
    s2 = torch.zeros(g.style_dim, dtype=torch.float64)
    done = 0
    while done < n:
        m = min(chunk, n - done)
        z = torch.randn(m, g.style_dim, generator=gen).to(g.w_avg.device)
        x = F.leaky_relu(g.mapping(z), 5.0).double().cpu()
        s1 += x.sum(0)
        s2 += x.pow(2).sum(0)
        done += m
    mean = s1 / n
    std = (s2 / n - mean.pow(2)).clamp_min(0).sqrt()
    return {"mean": mean.float(), "std": std.float()}


def _read_cached_fit(path: Path, dim: int) -> dict[str, torch.Tensor] | None:
    """The cached fit, or None when there is none or it is unusable (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        fit = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # unreadable, truncated, or not a tensor file
        return None
    ok = isinstance(fit, dict) and all(isinstance(fit.get(k), torch.Tensor) and fit[k].shape == (dim,)
                                       for k in ("mean", "std"))
    return fit if ok and all(torch.isfinite(fit[k]).all() for k in ("mean", "std")) else None


def _write_cached_fit(fit: dict[str, torch.Tensor], path: Path) -> None:
    """Keep the fit for next time, and say so; a cache that cannot be written only costs time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(fit, path)
    except (OSError, OptinvError) as e:  # atomic_torch_save reports OSError as OptinvError
        reason = e.strerror if isinstance(e, OSError) and e.strerror else first_line(e)
        print(f"optinv: could not cache the Gaussian fit in {path.parent} ({reason}); "
              f"set {CACHE_ENV} to a writable folder", file=sys.stderr)
        return
    print(f"optinv: cached the Gaussian fit of this model's mapping in {path}", file=sys.stderr)


def _mapping_key(g: Generator, n: int, seed: int) -> str:
    import hashlib

    h = hashlib.sha1()
    for k, v in g.style.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    return f"{h.hexdigest()[:16]}_{n}_{seed}"


# ------------------------------------------------------------------ spaces
class LatentSpace(nn.Module):
    """Base: subclasses own the trainable tensors (first dim = batch)."""

    name = "base"

    def __init__(self, g: Generator):
        super().__init__()
        self.n_latent, self.style_dim = g.n_latent, g.style_dim

    def to_styles(self) -> torch.Tensor | list[torch.Tensor]:
        raise NotImplementedError

    def render(self, g: Generator, styles, noise) -> torch.Tensor:
        """The image [B, 3, R, R] in [-1, 1] of these styles (ILO's space starts at a later layer)."""
        return g.synthesis(styles, noise=noise)

    def layer_vectors(self) -> torch.Tensor:
        """Per-layer latent vectors [B, L, D] (for GEOCROSS, WAVG, editing as W+)."""
        raise NotImplementedError

    def style_maps(self) -> list[torch.Tensor]:
        return []

    @property
    def n_vectors(self) -> int:
        return self.n_latent

    @torch.no_grad()
    def project_(self) -> None:
        """Re-projection after an optimiser step (a no-op unless constrained)."""

    def jitter(self, styles, std: float, gen: torch.Generator | None = None):
        """Styles plus N(0, std²) noise (rosinality's latent noise ramp); one draw per free vector."""
        if isinstance(styles, torch.Tensor):
            shape = (styles.shape[0], 1 if self.n_vectors == 1 else styles.shape[1], styles.shape[2])
            return styles + torch.randn(shape, generator=gen).to(styles) * std
        return [s + torch.randn(s.shape, generator=gen).to(s) * std for s in styles]

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.named_parameters()}

    def take_rows(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.detach()[rows].clone() for k, v in self.named_parameters()}


class WSpace(LatentSpace):
    name = "w"

    def __init__(self, g: Generator, w: torch.Tensor):
        super().__init__(g)
        self.w = nn.Parameter(w.clone().float())

    @property
    def n_vectors(self) -> int:
        return 1

    def to_styles(self) -> torch.Tensor:
        return expand_wplus(self.w, self.n_latent)

    def layer_vectors(self) -> torch.Tensor:
        return self.to_styles()


class WPlusSpace(LatentSpace):
    name = "wplus"

    def __init__(self, g: Generator, wplus: torch.Tensor):
        super().__init__(g)
        self.wplus = nn.Parameter(expand_wplus(wplus, g.n_latent).clone().float())

    def to_styles(self) -> torch.Tensor:
        return self.wplus

    def layer_vectors(self) -> torch.Tensor:
        return self.wplus


class ZPlusSpace(LatentSpace):
    """PULSE: z_i on the sphere of radius sqrt(D); w_i = lrelu_0.2(z_i·std + mean).

    ``tile`` ties all layers to one z. ``mapping='exact'`` uses the real mapping network
    instead of the Gaussian fit (slower, exact prior).
    """

    name = "zplus"

    def __init__(self, g: Generator, z: torch.Tensor, tile: bool = False, mapping: str = "gaussian",
                 fit: dict[str, torch.Tensor] | None = None):
        super().__init__(g)
        if mapping not in ("gaussian", "exact"):
            raise OptinvError(f"zplus mapping must be 'gaussian' or 'exact', got {mapping!r}")
        self.tile, self.mapping_mode = tile, mapping
        self.z = nn.Parameter(z.clone().float())
        self._g = [g]  # not a submodule: its weights are not ours to train or save
        if mapping == "gaussian":
            fit = fit or gaussian_fit(g)
            self.register_buffer("fit_mean", fit["mean"].to(z.device))
            self.register_buffer("fit_std", fit["std"].to(z.device))
        self.project_()

    @property
    def n_vectors(self) -> int:
        return 1 if self.tile else self.n_latent

    def layer_vectors(self) -> torch.Tensor:
        if self.mapping_mode == "exact":
            w = self._g[0].mapping(self.z)
        else:
            w = F.leaky_relu(self.z * self.fit_std + self.fit_mean, 0.2)
        return expand_wplus(w[:, 0], self.n_latent) if self.tile else w

    def to_styles(self) -> torch.Tensor:
        return self.layer_vectors()

    @torch.no_grad()
    def project_(self) -> None:
        r = math.sqrt(self.style_dim)
        self.z.mul_(r / self.z.norm(dim=-1, keepdim=True).clamp_min(1e-8))


DEFAULT_MAP_SIDES = (4, 8, 1)


def default_map_sizes(n_latent: int, coarse: int = DEFAULT_MAP_SIDES[0], medium: int = DEFAULT_MAP_SIDES[1],
                      fine: int = DEFAULT_MAP_SIDES[2]) -> list[int]:
    """Map side per layer: pSp's coarse/medium/fine split (0–2 / 3–6 / 7–17 of 18), scaled.

    Default sides 4,8,1, chosen by measurement (docs/BENCHMARKS.md, map-size table). Spatial fine
    maps (4,8,4) add 3.5 dB on held-out renders for ~30 % more time per step, but on a real photo
    they absorb what the model cannot draw into off-manifold fine styles, and edits along
    directions then break (docs/stylemap_edits.png): fidelity is one flag away, edits are the default.
    """
    c_end = max(1, round(n_latent * 3 / 18))
    m_end = max(c_end + 1, round(n_latent * 7 / 18))
    return [coarse if i < c_end else medium if i < m_end else fine for i in range(n_latent)]


def parse_map_sizes(spec: str | None, n_latent: int) -> list[int]:
    """``"2,4,1"`` (coarse, medium, fine) or n_latent comma-separated sides."""
    if spec is None or spec == "":
        return default_map_sizes(n_latent)
    try:
        vals = [int(v) for v in str(spec).replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise OptinvError(f"`stylemap_res` must be integers like '2,4,1', got {spec!r}") from None
    if any(v < 1 or v > 256 for v in vals):
        raise OptinvError(f"`stylemap_res` sides must be between 1 and 256, got {spec!r}")
    if len(vals) == 3:
        return default_map_sizes(n_latent, *vals)
    if len(vals) == 1:
        return vals * n_latent
    if len(vals) == n_latent:
        return vals
    raise OptinvError(f"`stylemap_res` needs 1, 3 (coarse,medium,fine) or {n_latent} values, got {len(vals)}")


class StyleMapSpace(LatentSpace):
    """Spatial style maps S_i [B, D, h_i, h_i], upsampled bilinearly inside the generator."""

    name = "stylemap"

    def __init__(self, g: Generator, wplus: torch.Tensor, sizes: list[int]):
        super().__init__(g)
        if len(sizes) != g.n_latent:
            raise OptinvError(f"need {g.n_latent} map sizes, got {len(sizes)}")
        wplus = expand_wplus(wplus, g.n_latent).float()
        self.sizes = list(sizes)
        self.maps = nn.ParameterList([
            nn.Parameter(wplus[:, i, :, None, None].expand(-1, -1, s, s).clone()) for i, s in enumerate(sizes)])

    @classmethod
    def from_maps(cls, g: Generator, maps: list[torch.Tensor]) -> "StyleMapSpace":
        sp = cls(g, torch.zeros(maps[0].shape[0], g.style_dim), [m.shape[-1] for m in maps])
        with torch.no_grad():
            for p, m in zip(sp.maps, maps):
                p.copy_(m)
        return sp

    def to_styles(self) -> list[torch.Tensor]:
        # 1×1 maps are plain vectors: same image (tested), cheaper conv path
        return [m[:, :, 0, 0] if m.shape[-1] == 1 and m.shape[-2] == 1 else m for m in self.maps]

    def style_maps(self) -> list[torch.Tensor]:
        return list(self.maps)

    def layer_vectors(self) -> torch.Tensor:
        return torch.stack([m.mean(dim=(2, 3)) for m in self.maps], 1)

    def state(self) -> dict[str, torch.Tensor]:
        return {f"maps.{i}": m.detach().cpu().clone() for i, m in enumerate(self.maps)}


def make_space(name: str, g: Generator, init_wplus: torch.Tensor | None = None, *, batch: int = 1,
               tile: bool = False, zplus_mapping: str = "gaussian", map_sizes: list[int] | None = None,
               seed: int = 0, init_z: torch.Tensor | None = None) -> LatentSpace:
    """Build a space for ``batch`` images, starting from W+ codes (default: w_avg) or random z."""
    dev = g.w_avg.device
    if name not in SPACES:
        raise OptinvError(f"unknown space {name!r} (known: {', '.join(SPACES)})")
    if init_wplus is None:
        init_wplus = g.w_avg[None, None].expand(batch, g.n_latent, -1)
    init_wplus = expand_wplus(init_wplus.to(dev), g.n_latent)
    if name == "w":
        return WSpace(g, init_wplus.mean(1))
    if name == "wplus":
        return WPlusSpace(g, init_wplus)
    if name == "stylemap":
        return StyleMapSpace(g, init_wplus, map_sizes or default_map_sizes(g.n_latent))
    if init_z is None:
        gen = torch.Generator().manual_seed(seed)
        init_z = torch.randn(init_wplus.shape[0], 1 if tile else g.n_latent, g.style_dim, generator=gen)
    return ZPlusSpace(g, init_z.to(dev), tile=tile, mapping=zplus_mapping)
