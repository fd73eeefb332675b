"""The reconstructor R: from an image pair (G(x), G(φ_k(x, t))) predict which path k and how far t.

Why: if a small CNN can tell the paths apart from their images, the paths make distinct,
visible changes (Voynov & Babenko, ICML 2020) — no labels needed.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Reconstructor(nn.Module):
    """A small strided CNN on the 6-channel pair → (K logits, K shift predictions)."""

    def __init__(self, k: int, width: int = 32, size: int = 64):
        super().__init__()
        self.k, self.width, self.size = k, width, size
        chans = [6, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], 2 * k)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([a, b], 1)
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        h = self.features(x).mean(dim=(2, 3))
        logits, shifts = self.head(h).split(self.k, dim=1)
        return logits, shifts


def reconstruction_loss(r: Reconstructor, a: torch.Tensor, b: torch.Tensor, k: torch.Tensor, t: torch.Tensor,
                        shift_weight: float = 0.25) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on k plus ``shift_weight``·L1 on t (the prediction of the true path)."""
    logits, shifts = r(a, b)
    ce = F.cross_entropy(logits, k)
    l1 = (shifts.gather(1, k[:, None])[:, 0] - t).abs().mean()
    acc = (logits.argmax(1) == k).float().mean()
    return ce + shift_weight * l1, {"ce": ce.item(), "shift_l1": l1.item(), "accuracy": acc.item()}
