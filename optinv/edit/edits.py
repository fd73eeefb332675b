"""Edit what was inverted: directions, interpolation, style mixing and spatial StyleMap blends.

Every saved latent becomes an :class:`Editable`: W, W+ and Z+ become W+ (Z+ through its
mapping, as rendered), StyleMaps stay spatial. A W+ code is a 1×1 map wherever it meets a
map, and a W+ direction moves every pixel of a map.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from optinv.engine.bounds import check_styles
from optinv.errors import OptinvError
from optinv.engine.generator import Generator
from optinv.io.latents import LatentRecord, codes, record_from_codes
from optinv.io.ranges import to_unit


@dataclass
class Editable:
    """One image's latent: ``wplus`` [L, D] or ``maps`` (list of L tensors [D, h, w]) + its noise."""

    wplus: torch.Tensor | None
    maps: list[torch.Tensor] | None
    noise: list[torch.Tensor]

    @property
    def n_layers(self) -> int:
        return len(self.maps) if self.maps is not None else int(self.wplus.shape[0])

    @property
    def is_spatial(self) -> bool:
        return self.maps is not None

    def as_maps(self, sizes: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Maps (a W+ code broadcast to 1×1, or to ``sizes``), resized bilinearly when asked."""
        maps = self.maps if self.maps is not None else [v[:, None, None] for v in self.wplus]
        if sizes is None:
            return list(maps)
        return [resize_map(m, s) for m, s in zip(maps, sizes)]

    def layer_vectors(self) -> torch.Tensor:
        return self.wplus if self.maps is None else torch.stack([m.mean(dim=(1, 2)) for m in self.maps])


def resize_map(m: torch.Tensor, size: int) -> torch.Tensor:
    if m.shape[-1] == size and m.shape[-2] == size:
        return m
    if m.shape[-1] == 1 and m.shape[-2] == 1:
        return m.expand(-1, size, size).clone()
    return F.interpolate(m[None], size=(size, size), mode="bilinear", align_corners=False)[0]


def from_latent(latent: LatentRecord) -> Editable:
    """A saved latent record (NAME.latent.pt) as an Editable."""
    wplus, maps, noise = codes(latent)
    return Editable(wplus, maps, noise)


def to_latent(e: Editable, template: LatentRecord) -> LatentRecord:
    """An Editable as a latent record for the template's model (W+ or StyleMap space)."""
    return record_from_codes(template, e.noise, wplus=e.wplus, maps=e.maps)


def render(g: Generator, items: Sequence[Editable], noise_from: Editable | None = None) -> torch.Tensor:
    """Render editables as a batch → [B, 3, R, R] in [0, 1]. Noise: each item's own (or one shared)."""
    dev = g.w_avg.device
    spatial = any(e.is_spatial for e in items)
    if spatial:
        sizes = [max(e.as_maps()[i].shape[-1] for e in items) for i in range(g.n_latent)]
        styles = [torch.stack([e.as_maps(sizes)[i] for e in items]).to(dev) for i in range(g.n_latent)]
        styles = [s[:, :, 0, 0] if s.shape[-1] == 1 else s for s in styles]
    else:
        styles = torch.stack([e.wplus for e in items]).to(dev)
    check_styles(g, styles, "the edited latent", maps=spatial)
    src = [noise_from or e for e in items]
    noise = [torch.stack([s.noise[i] for s in src]).to(dev) for i in range(g.num_layers)]

    def one(k: int) -> torch.Tensor:
        st = styles[k:k + 1] if isinstance(styles, torch.Tensor) else [s[k:k + 1] for s in styles]
        return g.synthesis(st, noise=[n[k:k + 1] for n in noise])

    # one image at a time, as every latent is rendered: a batched convolution may round differently in
    # the last bit (seen at 1024²), and a picture of a latent must be what `generate --latent` renders
    with torch.no_grad():
        return to_unit(torch.cat([one(k) for k in range(len(items))])).clamp(0, 1)


def check_editable(g: Generator, e: Editable) -> None:
    """The latent an edit produced is finite and plausible for ``g`` (what :func:`render` also checks),
    for callers that save it without rendering it."""
    check_styles(g, e.maps if e.is_spatial else e.wplus, "the edited latent", maps=e.is_spatial)


def parse_layers(spec: str | Sequence[int] | None, n_latent: int) -> list[int]:
    """``"0-6"``, ``"0,2,5-7"`` or None (all layers) → sorted layer indices."""
    if spec is None or spec == "" or spec == "all":
        return list(range(n_latent))
    if not isinstance(spec, str):
        layers = sorted(set(int(i) for i in spec))
    else:
        layers = []
        try:
            for part in spec.split(","):
                if "-" in part:
                    a, b = part.split("-")
                    layers += list(range(int(a), int(b) + 1))
                else:
                    layers.append(int(part))
        except ValueError:
            raise OptinvError(f"layers must look like '0-6' or '0,2,5-7', got {spec!r}") from None
        layers = sorted(set(layers))
    if not layers or layers[0] < 0 or layers[-1] >= n_latent:
        raise OptinvError(f"layers must lie in 0..{n_latent - 1}, got {spec!r}")
    return layers


def apply_direction(e: Editable, n: torch.Tensor, alpha: float, layers: Sequence[int] | None = None) -> Editable:
    """Move the latent by alpha·n on the chosen layers (every map pixel for StyleMaps).

    ``n`` is a [D] direction in W; ``layers`` index the L latent layers (None: all).

    >>> import torch
    >>> e = Editable(torch.zeros(4, 3), None, [])
    >>> apply_direction(e, torch.tensor([1.0, 0.0, 0.0]), 2.0, layers=[0, 1]).wplus[:, 0].tolist()
    [2.0, 2.0, 0.0, 0.0]
    """
    n = n.to(torch.float32).reshape(-1)
    layers = list(range(e.n_layers)) if layers is None else list(layers)
    if e.maps is None:
        w = e.wplus.clone()
        w[layers] += alpha * n
        return replace(e, wplus=w)
    maps = [m + alpha * n[:, None, None] if i in layers else m.clone() for i, m in enumerate(e.maps)]
    return replace(e, maps=maps)


def interpolate(a: Editable, b: Editable, ts: Sequence[float]) -> list[Editable]:
    """Linear interpolation; exactly a at t=0 and b at t=1 (maps aligned to the larger size).

    >>> import torch
    >>> a, b = Editable(torch.zeros(2, 3), None, []), Editable(torch.ones(2, 3), None, [])
    >>> [float(e.wplus.mean()) for e in interpolate(a, b, [0, 0.25, 1])]
    [0.0, 0.25, 1.0]
    """
    out = []
    if a.maps is None and b.maps is None:
        for t in ts:
            out.append(Editable(torch.lerp(a.wplus, b.wplus, float(t)), None, a.noise if t < 0.5 else b.noise))
        return out
    sizes = [max(x.shape[-1], y.shape[-1]) for x, y in zip(a.as_maps(), b.as_maps())]
    ma, mb = a.as_maps(sizes), b.as_maps(sizes)
    for t in ts:
        maps = [ma[i] if t == 0 else mb[i] if t == 1 else torch.lerp(ma[i], mb[i], float(t)) for i in range(len(ma))]
        out.append(Editable(None, maps, a.noise if t < 0.5 else b.noise))
    return out


def mix(a: Editable, b: Editable, layers: Sequence[int]) -> Editable:
    """Style mixing: ``layers`` from b, the rest from a (noise from a).

    >>> import torch
    >>> a, b = Editable(torch.zeros(4, 2), None, []), Editable(torch.ones(4, 2), None, [])
    >>> mix(a, b, [0, 1]).wplus[:, 0].tolist()
    [1.0, 1.0, 0.0, 0.0]
    """
    layers = set(layers)
    if a.maps is None and b.maps is None:
        w = a.wplus.clone()
        w[sorted(layers)] = b.wplus[sorted(layers)]
        return Editable(w, None, a.noise)
    ma, mb = a.as_maps(), b.as_maps()
    return Editable(None, [mb[i].clone() if i in layers else ma[i].clone() for i in range(len(ma))], a.noise)


def vertical_mask(size: int = 64, softness: float = 0.1) -> torch.Tensor:
    """Top half 0 (first image), bottom half 1 (second), with a smooth vertical ramp."""
    y = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    ramp = torch.clamp((y - 0.5) / max(softness, 1e-6) + 0.5, 0, 1)
    return ramp[:, None].expand(size, size).clone()


# The side of a blended map: the mask at 64² (the layers above it get it upsampled, a ramp of at least
# 1/64 of the image). Maps at each layer's own side were 5.7 GB per latent for config-f at 1024².
BLEND_MAX_SIDE = 64


def blend_maps(a: Editable, b: Editable, mask: torch.Tensor, layers: Sequence[int] | None = None,
               feature_sizes: Sequence[int] | None = None) -> Editable:
    """Per-pixel blend of two codes' style maps: mask 0 → a, 1 → b (resized to each map).

    W+ codes are 1×1 maps upsampled first (to ``feature_sizes``, the layer's own resolution,
    at most ``BLEND_MAX_SIDE``: the generator upsamples a map to its layer as it would have been
    upsampled here). An all-zero mask returns a's maps exactly, all-one b's.
    """
    base = [min(s, BLEND_MAX_SIDE) for s in feature_sizes or [1] * a.n_layers]
    sizes = [max(x.shape[-1], y.shape[-1], base[i]) for i, (x, y) in enumerate(zip(a.as_maps(), b.as_maps()))]
    ma, mb = a.as_maps(sizes), b.as_maps(sizes)
    layers = set(range(len(ma)) if layers is None else layers)
    m = mask.to(torch.float32)
    out = []
    for i, (x, y) in enumerate(zip(ma, mb)):
        if i not in layers:
            out.append(x.clone())
            continue
        mi = F.interpolate(m[None, None], size=x.shape[-2:], mode="area")[0]
        out.append(torch.where(mi == 0, x, torch.where(mi == 1, y, x * (1 - mi) + y * mi)))
    return Editable(None, out, a.noise)


# --------------------------------------------------------------------------- directions
def difference_direction(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unit vector from the mean of latents ``a`` to the mean of ``b`` (e.g. black → blonde hair)."""
    d = _as_vectors(b).mean(0) - _as_vectors(a).mean(0)
    return (d / d.norm().clamp_min(1e-12)).float()


def _as_vectors(x: torch.Tensor) -> torch.Tensor:
    """[N, D] or W+ [N, L, D] (layers averaged) → [N, D] float64."""
    x = x.detach().double()
    return x.mean(1) if x.dim() == 3 else x


def fit_direction(latents: torch.Tensor, labels: torch.Tensor | np.ndarray, l2: float = 1e-3,
                  steps: int = 300) -> torch.Tensor:
    """Unit normal of a linear boundary: logistic regression for 0/1 labels, ridge otherwise.

    The latents are standardised first so the fit is well conditioned; the normal is mapped
    back to latent coordinates, so ``w + α·n`` moves along the attribute in W.
    """
    x = _as_vectors(latents)
    y = torch.as_tensor(np.asarray(labels, dtype=np.float64)).reshape(-1)
    if x.shape[0] != y.shape[0] or x.shape[0] < 4:
        raise OptinvError(f"need ≥ 4 latents with one label each, got {x.shape[0]} latents and {y.shape[0]} labels")
    if not bool((x.std(0) > 0).any()):
        raise OptinvError(f"all {x.shape[0]} latents are the same: a direction needs latents that differ")
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    xs = (x - mu) / sd
    binary = bool(((y == 0) | (y == 1)).all())
    if binary:
        if y.min() == y.max():
            raise OptinvError("all labels are the same; a boundary needs both classes")
        coef = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
        bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([coef, bias], max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(xs @ coef + bias, y) + l2 * coef.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        beta = coef.detach()
    else:
        y = y / y.abs().max()  # the normal does not depend on the labels' scale; ±1e300 would overflow
        yc = y - y.mean()
        a = xs.t() @ xs + l2 * x.shape[0] * torch.eye(x.shape[1], dtype=torch.float64)
        beta = torch.linalg.solve(a, xs.t() @ yc)
    n = beta / sd  # standardised coefficients → latent coordinates
    n = (n / n.norm().clamp_min(1e-12)).float()
    if not (torch.isfinite(n).all() and n.abs().sum() > 0):
        raise OptinvError("the fit found no direction (the labels do not vary with the latents)")
    return n


def reinversion_encoder(g: Generator, options) -> Callable[[torch.Tensor], list[Editable]]:
    """E(x) by optimisation: invert images (tensors in [0, 1]) with the given JobOptions."""
    from optinv.engine.operators import Identity
    from optinv.engine.solve import solve

    def encode(images: torch.Tensor) -> list[Editable]:
        names = [f"x{i}" for i in range(images.shape[0])]
        return [from_latent(r.latent) for r in solve("invert", g, images, names, Identity(), options)]

    return encode


# --------------------------------------------------------------------------- consistency
def latent_distance_stats(a: Editable, b: Editable) -> dict[str, float]:
    """‖a − b‖ per latent vector: per layer for W+, per map pixel for StyleMaps → avg/min/max."""
    if a.maps is None and b.maps is None:
        d = (a.wplus - b.wplus).norm(dim=-1)
    else:
        sizes = [max(x.shape[-1], y.shape[-1]) for x, y in zip(a.as_maps(), b.as_maps())]
        d = torch.cat([(x - y).norm(dim=0).flatten() for x, y in zip(a.as_maps(sizes), b.as_maps(sizes))])
    return {"avg": float(d.mean()), "min": float(d.min()), "max": float(d.max())}


def latent_editing_consistency(g: Generator, items: list[Editable], direction: torch.Tensor, alpha: float,
                               encode: Callable[[torch.Tensor], list[Editable]]) -> dict[str, float]:
    """LEC(f) = E‖E(x) − f⁻¹(E(G(f(E(x)))))‖ for the edit f = +alpha·direction.

    ``items`` are the codes E(x); ``encode`` maps images in [0, 1] back to codes (an encoder,
    or re-inversion by optimisation). StyleMaps report avg/min/max over map pixels.
    """
    edited = [apply_direction(e, direction, alpha) for e in items]
    recoded = encode(render(g, edited))
    back = [apply_direction(r, direction, -alpha) for r in recoded]
    stats = [latent_distance_stats(a, b) for a, b in zip(items, back)]
    return {k: float(sum(s[k] for s in stats) / len(stats)) for k in ("avg", "min", "max")}
