"""The attribute predictor: a small CNN from an image to attribute values in [0, 1].

It names discovered paths (by the attribute a path moves most) and judges edits (commutativity
and side effects are measured in its units, as % of each attribute's range). It is trained on
labelled renders (``scripts/train_attributes.py``); this module only reads labels as plain dicts
so the engine does not depend on the renderer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from optinv.errors import OptinvError
from optinv.io.fileio import atomic_torch_save, first_line, load_tagged

FORMAT = "optinv-attributes"
ATTRIBUTES: tuple[str, ...] = ("smile", "hair_colour", "hair_length", "bangs", "glasses", "skin_tone",
                               "head_tilt", "head_x", "background")
BINARY = ("bangs", "glasses")


def _luma(rgb: Sequence[float]) -> float:
    r, g, b = (float(c) / 255.0 for c in rgb)
    return 0.299 * r + 0.587 * g + 0.114 * b


def attribute_vector(labels: dict[str, Any]) -> list[float]:
    """The renderer's label dict → ATTRIBUTES values in [0, 1] (hair colour and background as lightness)."""
    pose = labels["pose"]
    return [
        (float(labels["smile"]) + 1.0) / 2.0,
        _luma(labels["hair_rgb"]),
        float(labels["hair_length"]),
        float(bool(labels["bangs"])),
        float(bool(labels["glasses"])),
        float(labels["skin_tone"]),
        (float(pose["tilt_deg"]) + 12.0) / 24.0,
        (float(pose["dx"]) + 0.06) / 0.12,
        _luma(labels["background"]),
    ]


class AttributePredictor(nn.Module):
    """Image [B, 3, S, S] in [-1, 1] → attribute values [B, A] in [0, 1]."""

    def __init__(self, names: Sequence[str] = ATTRIBUTES, width: int = 24, size: int = 32):
        super().__init__()
        self.names, self.width, self.size = tuple(names), width, size
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(b, b, 3, stride=2, padding=1),
                       nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1] * 4, len(self.names))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        h = F.adaptive_avg_pool2d(self.features(x), 2).flatten(1)
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
        self.eval()
        return torch.cat([self(images[i:i + batch]) for i in range(0, len(images), batch)])


def save_predictor(p: AttributePredictor, path: str | os.PathLike, card: dict[str, Any] | None = None) -> Path:
    obj = {"format": FORMAT, "version": 1, "names": list(p.names), "width": p.width, "size": p.size,
           "state": p.state_dict(), "card": card or {}}
    return atomic_torch_save(obj, path)


def load_predictor(path: str | os.PathLike) -> AttributePredictor:
    obj = load_tagged(path, FORMAT, "attribute predictor", "scripts/train_attributes.py")
    p = AttributePredictor(obj["names"], int(obj["width"]), int(obj["size"]))
    try:
        p.load_state_dict(obj["state"])
    except RuntimeError as e:
        raise OptinvError(f"{path}: attribute predictor weights do not fit ({first_line(e, 120)})") from None
    p.card = obj.get("card", {})
    return p.eval().requires_grad_(False)


def shipped_predictor_path(g) -> Path:
    from optinv.io.checkpoints import SAMPLES_MODELS, card_name

    return SAMPLES_MODELS / f"{card_name(g, '')}.attributes.pt"
