"""Encoders that predict a warm start: pSp-style W+ and StyleMap encoders, sized by the generator.

Both share a small residual backbone with a feature pyramid (like pSp's FPN over IR-SE50,
scaled down): coarse styles are read from the deepest features, medium from the middle,
fine from the shallowest. Outputs are offsets added to w_avg, so an untrained encoder
already predicts the mean face. The StyleMap encoder's Map2Map heads keep space: they pool
features to the map size (2×2 coarse, 4×4 medium) instead of to a vector.

An iterative W+ encoder (``passes`` > 1, ReStyle-style) adds a refiner to a one-pass
encoder: the first pass predicts codes from the target alone, then each further pass renders
the current codes and a second network, seeing target and reconstruction side by side (6
channels), predicts a correction. The refiner's output layers start at zero, so an untrained
refiner leaves the first pass's answer unchanged and training can only start from it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from optinv.errors import CheckpointError
from optinv.io.fileio import atomic_torch_save, first_line, load_tagged
from optinv.engine.generator import Generator
from optinv.io.ranges import to_signed

FORMAT = "optinv-encoder"


class ResidualDown(nn.Module):
    """conv-lrelu-conv(stride 2) + 1×1 stride-2 shortcut: halves the resolution."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(cout, cout, 3, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.skip = nn.Conv2d(cin, cout, 1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.body(x) + self.skip(x)) / math.sqrt(2)


class Backbone(nn.Module):
    """Image → three feature maps at 1/4, 1/8 and 1/16 of the input side (FPN-merged)."""

    def __init__(self, size: int, width: int = 64, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width // 2, 3, padding=1), nn.LeakyReLU(0.2))
        self.down = nn.ModuleList([ResidualDown(width // 2, width), ResidualDown(width, width),
                                   ResidualDown(width, width * 2), ResidualDown(width * 2, width * 2)])
        self.lat_fine, self.lat_mid = nn.Conv2d(width, width * 2, 1), nn.Conv2d(width * 2, width * 2, 1)
        self.width = width * 2

    def forward(self, x: torch.Tensor, detail: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``detail``: features a ``DetailStem`` read from a larger input, added to the stem's."""
        h = self.stem(x)
        if detail is not None:
            h = h + detail
        feats = []
        for block in self.down:
            h = block(h)
            feats.append(h)
        fine, mid, coarse = feats[1], feats[2], feats[3]  # 1/4, 1/8, 1/16
        mid = self.lat_mid(mid) + F.interpolate(coarse, size=mid.shape[-2:], mode="bilinear", align_corners=False)
        fine = self.lat_fine(fine) + F.interpolate(mid, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return coarse, mid, fine


class DetailStem(nn.Module):
    """A larger input (``factor``× the backbone's side) → features added to the backbone's stem.

    How an encoder trained at 64² learns to read 256² inputs without forgetting: the backbone
    still sees the area-downscaled image, and this branch adds what the downscale threw away.
    Its last layer starts at zero, so a freshly grown encoder answers exactly as its parent.
    """

    def __init__(self, cin: int, cout: int, factor: int, width: int = 16):
        super().__init__()
        if factor < 2 or factor & (factor - 1):
            raise ValueError(f"the input must be a power-of-two multiple of the encoder's side (got ×{factor})")
        layers: list[nn.Module] = [nn.Conv2d(cin, width, 3, padding=1), nn.LeakyReLU(0.2)]
        c = width
        while factor > 1:
            layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c, factor = c * 2, factor // 2
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(c, cout, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class Map2Style(nn.Module):
    """Features → one style vector (strided convs down to 1×1, then a linear layer)."""

    def __init__(self, cin: int, style_dim: int, side: int):
        super().__init__()
        layers: list[nn.Module] = []
        while side > 1:
            layers += [nn.Conv2d(cin, cin, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            side = (side + 1) // 2
        self.convs = nn.Sequential(*layers)
        self.linear = nn.Linear(cin, style_dim)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pooled(x))


class Map2Map(nn.Module):
    """Features → a style map of side ``out_side`` (pooled, then a 1×1 projection)."""

    def __init__(self, cin: int, style_dim: int, out_side: int):
        super().__init__()
        self.out_side = out_side
        self.conv = nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1), nn.LeakyReLU(0.2))
        self.proj = nn.Conv2d(cin, style_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.adaptive_avg_pool2d(self.conv(x), self.out_side))


def layer_groups(n_latent: int) -> list[str]:
    """pSp's split scaled to n_latent: coarse 0–2, medium 3–6, fine 7–17 of 18."""
    from optinv.engine.spaces import default_map_sizes

    sizes = default_map_sizes(n_latent, coarse=2, medium=4, fine=1)
    return ["coarse" if s == 2 else "medium" if s == 4 else "fine" for s in sizes]


class Encoder(nn.Module):
    """kind 'wplus' → [B, L, D]; kind 'stylemap' → list of L maps ([B, D, h, h], fine as 1×1)."""

    def __init__(self, size: int, n_latent: int, style_dim: int, kind: str = "wplus", width: int = 64,
                 passes: int = 1, layers: int | None = None, input_size: int | None = None,
                 top_heads: bool = False):
        super().__init__()
        if kind not in ("wplus", "stylemap"):
            raise ValueError(f"encoder kind must be 'wplus' or 'stylemap', got {kind!r}")
        if passes < 1 or (passes > 1 and kind != "wplus"):
            raise ValueError(f"passes must be 1, or > 1 for a 'wplus' encoder (got {passes} for {kind!r})")
        self.config = {"size": size, "n_latent": n_latent, "style_dim": style_dim, "kind": kind, "width": width}
        if passes > 1:  # one-pass files keep their old config
            self.config["passes"] = passes
        layers = layers or n_latent
        if layers < n_latent:
            raise ValueError(f"layers ({layers}) must be at least n_latent ({n_latent})")
        if layers != n_latent:
            self.config["layers"] = layers
        self.layers = layers
        self.input_size = input_size or size
        if self.input_size != size:
            self.config["input_size"] = self.input_size
        if top_heads and layers == n_latent:
            raise ValueError("top_heads needs layers beyond n_latent")
        if top_heads:
            self.config["top_heads"] = True
        self.kind, self.n_latent, self.style_dim, self.size, self.passes = kind, n_latent, style_dim, size, passes
        self.backbone = Backbone(size, width)
        c = self.backbone.width
        sides = {"coarse": size // 16, "medium": size // 8, "fine": size // 4}
        self.groups = layer_groups(n_latent)
        heads = []
        for grp in self.groups:
            if kind == "stylemap" and grp != "fine":
                heads.append(Map2Map(c, style_dim, 2 if grp == "coarse" else 4))
            else:
                heads.append(Map2Style(c, style_dim, max(1, sides[grp])))
        self.heads = nn.ModuleList(heads)
        factor = self.input_size // size
        n_top = layers - n_latent if top_heads else 0
        self.detail = DetailStem(3, width // 2, factor) if factor > 1 else None
        self.top_heads = nn.ModuleList(nn.Linear(c, style_dim) for _ in range(n_top))
        self.register_buffer("w_avg", torch.zeros(style_dim))
        if passes > 1:
            self.refine_backbone = Backbone(size, width, in_channels=6)
            self.refine_heads = nn.ModuleList(Map2Style(c, style_dim, max(1, sides[grp])) for grp in self.groups)
            for head in self.refine_heads:  # an untrained refiner corrects nothing
                nn.init.zeros_(head.linear.weight)
                nn.init.zeros_(head.linear.bias)
            self.refine_detail = DetailStem(6, width // 2, factor) if factor > 1 else None
            self.refine_top_heads = nn.ModuleList(nn.Linear(c, style_dim) for _ in range(n_top))

    @property
    def iterative(self) -> bool:
        return self.passes > 1

    def forward(self, img: torch.Tensor, previous: torch.Tensor | None = None,
                codes: torch.Tensor | None = None) -> torch.Tensor | list[torch.Tensor]:
        """img [B, 3, S, S] in [0, 1] (resized to the input size if needed) → latent codes. Given the
        current W+ ``codes`` and their rendering ``previous`` (in [0, 1]), an iterative encoder
        returns the refined codes instead."""
        img = self._at_input_size(img)
        if previous is not None:
            if not self.iterative or codes is None:
                raise ValueError("a refinement pass needs an iterative encoder, the current codes and their image")
            pair = to_signed(torch.cat([img, self._at_input_size(previous)], 1))
            feats = self._features(self.refine_backbone, self.refine_detail, pair)
            delta = torch.stack(self._read(feats, self.refine_heads, self.refine_top_heads), 1)
            return codes + self._extend(delta)
        feats = self._features(self.backbone, self.detail, to_signed(img))
        outs = self._read(feats, self.heads, self.top_heads)
        if self.kind == "wplus":
            return self._extend(torch.stack(outs, 1) + self.w_avg)
        maps = [o + self.w_avg[:, None, None] if o.dim() == 4 else (o + self.w_avg)[:, :, None, None] for o in outs]
        return maps + [maps[-1]] * (self.layers - len(maps))

    def _at_input_size(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[-1] != self.input_size:
            img = F.interpolate(img, size=(self.input_size, self.input_size), mode="area")
        return img

    def _features(self, backbone: Backbone, detail: DetailStem | None, x: torch.Tensor) -> dict[str, torch.Tensor]:
        small = x if detail is None else F.interpolate(x, size=(self.size, self.size), mode="area")
        extra = None if detail is None else detail(x)
        return dict(zip(("coarse", "medium", "fine"), backbone(small, extra)))

    def _read(self, feats: dict[str, torch.Tensor], heads: nn.ModuleList, top: nn.ModuleList) -> list[torch.Tensor]:
        """One code per head; the grown layers' heads are linear readouts of the last (finest) head's
        pooled features: a few parameters each, and a copy of its readout is the parent's answer."""
        outs = [head(feats[grp]) for head, grp in zip(heads[:-1], self.groups)]
        last = heads[-1].pooled(feats[self.groups[-1]])
        return outs + [heads[-1].linear(last)] + [linear(last) for linear in top]

    def _extend(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, n, D] → [B, layers, D]: grown blocks without their own heads take the last code."""
        extra = self.layers - codes.shape[1]
        return torch.cat([codes, codes[:, -1:].expand(-1, extra, -1)], 1) if extra else codes


def build_for(g: Generator, kind: str, width: int = 64, passes: int = 1) -> Encoder:
    enc = Encoder(g.size, g.n_latent, g.style_dim, kind, width, passes)
    enc.w_avg.copy_(g.w_avg.detach().cpu())
    return enc


def grow_encoder(enc: Encoder, layers: int, input_size: int | None = None) -> Encoder:
    """The same encoder for a generator grown from its own (more layers on top, same style space).

    The grown blocks only sharpen what the lower ones draw, and a model grown from another keeps
    its lower layers, so the encoder's codes stay valid there and the new layers start from the
    last one's code, as a w repeated across W+ would. Without ``input_size`` its input is resized
    to the size it was trained at. With it (a larger power-of-two multiple), the result is the
    start of training at that input: a ``DetailStem`` reads the full-size image, and the new
    layers get their own heads, copies of the last one, so before training the answer is
    unchanged (``optinv train-encoder --init`` grows a parent's encoder this way).
    """
    if input_size is None:
        grown = Encoder(**{**enc.config, "layers": layers}).to(enc.w_avg.device)
        grown.load_state_dict(enc.state_dict())
        grown.card = dict(getattr(enc, "card", {}), grown_to_layers=layers)
        return grown.eval().requires_grad_(False)
    if enc.layers != enc.n_latent or enc.input_size != enc.size:
        raise ValueError("grow an encoder from its own trained size, not from a grown one")
    grown = Encoder(**{**enc.config, "layers": layers, "input_size": input_size, "top_heads": layers > enc.n_latent})
    missing, unexpected = grown.load_state_dict(enc.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("detail.", "refine_detail.", "top_heads.", "refine_top_heads."))
                                  for k in missing), (missing, unexpected)
    for linear in grown.top_heads:
        linear.load_state_dict(enc.heads[-1].linear.state_dict())
    if grown.iterative:
        for linear in grown.refine_top_heads:
            linear.load_state_dict(enc.refine_heads[-1].linear.state_dict())
    grown.card = dict(getattr(enc, "card", {}))
    return grown.to(enc.w_avg.device)


def widen_to_iterative(one_pass: Encoder, passes: int) -> Encoder:
    """An iterative encoder whose first pass is ``one_pass`` and whose refiner starts as a copy of
    its backbone reading the difference target − reconstruction (stem weights [W, −W]), with
    zero output layers: before training it returns exactly the first pass's codes."""
    cfg = {**one_pass.config, "passes": passes}
    enc = Encoder(**cfg)
    enc.load_state_dict(one_pass.state_dict(), strict=False)
    sd = {k: v.clone() for k, v in one_pass.backbone.state_dict().items()}
    stem = sd["stem.0.weight"]
    sd["stem.0.weight"] = torch.cat([stem, -stem], 1)
    enc.refine_backbone.load_state_dict(sd)
    for mine, theirs in zip(enc.refine_heads, one_pass.heads):
        mine.convs.load_state_dict(theirs.convs.state_dict())
    return enc


def iterate(enc: Encoder, render, img: torch.Tensor, passes: int | None = None) -> torch.Tensor | list[torch.Tensor]:
    """Run an encoder to its answer: one call for a one-pass encoder; for an iterative one, the
    first pass, then ``passes`` − 1 (default: as trained) rounds of codes ← enc(img, render(codes),
    codes). ``render`` maps W+ codes to images in [0, 1]."""
    codes = enc(img)
    if not enc.iterative:
        return codes
    for _ in range((passes or enc.passes) - 1):
        codes = enc(img, render(codes), codes)
    return codes


def save_encoder(enc: Encoder, path: str | os.PathLike, card: dict[str, Any] | None = None,
                 half: bool = False) -> Path:
    """``half`` stores float16 (a shipped encoder under half the size; loading restores float32)."""
    sd = {k: v.detach().cpu() for k, v in enc.state_dict().items()}
    if half:
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    obj = {"format": FORMAT, "version": 1, "config": enc.config, "card": card or {}, "state_dict": sd}
    return atomic_torch_save(obj, path)


def load_encoder(path: str | os.PathLike, device: str | torch.device = "cpu") -> Encoder:
    obj = load_tagged(path, FORMAT, "encoder", "optinv train-encoder", CheckpointError)
    try:
        enc = Encoder(**obj["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: not a valid encoder config ({first_line(e, limit=None)})") from None
    try:
        enc.load_state_dict({k: v.float() for k, v in obj["state_dict"].items()})
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the encoder config ({first_line(e, limit=None)})") from None
    enc.card = obj.get("card", {})
    return enc.eval().requires_grad_(False).to(device)
