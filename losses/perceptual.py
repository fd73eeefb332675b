"""LPIPS from the ``lpips`` package, without any download.

``lpips`` ships its linear heads but builds its backbone with torchvision, which would
download ImageNet weights. We only let that happen from the local torch cache, or load the
backbone from a file the user gives (``--lpips-backbone`` or ``OPTINV_LPIPS_BACKBONE``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from optinv.errors import OptinvError

BACKBONE_WEIGHTS = {"vgg": "VGG16_Weights", "alex": "AlexNet_Weights", "squeeze": "SqueezeNet1_1_Weights"}


class LPIPSUnavailable(OptinvError):
    """The LPIPS backbone weights are not on this machine."""


def backbone_cache_path(net: str) -> Path:
    """Where torchvision would look for the ImageNet backbone of ``net`` (no download)."""
    import torchvision.models as tvm

    weights = getattr(tvm, BACKBONE_WEIGHTS[net]).IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _load_backbone_into(model, net: str, path: Path) -> None:
    """Copy a torchvision ``features`` state dict into lpips' slice modules (same indices)."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise LPIPSUnavailable(f"cannot read LPIPS backbone {path}: {str(e).splitlines()[0][:120]}") from None
    target = model.net.state_dict()
    mapped = {}
    for key in target:
        _slice, idx, param = key.split(".", 2)
        src = f"features.{idx}.{param}"
        if src not in sd:
            raise LPIPSUnavailable(f"{path} is not a torchvision {net} checkpoint (missing {src})")
        mapped[key] = sd[src]
    model.net.load_state_dict(mapped)


def make_lpips(net: str = "vgg", backbone: str | os.PathLike | None = None, random_backbone: bool = False):
    """Build ``lpips.LPIPS`` with its shipped linear heads and a local backbone.

    ``random_backbone=True`` gives untrained backbone weights: it exercises the plumbing
    (tests) and is *not* a perceptual metric.
    """
    import lpips

    if net not in BACKBONE_WEIGHTS:
        raise OptinvError(f"unknown LPIPS network {net!r} (known: {', '.join(BACKBONE_WEIGHTS)})")
    backbone = backbone or os.environ.get("OPTINV_LPIPS_BACKBONE")
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=`; nothing to act on
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = _build(lpips, net, backbone, random_backbone)
    return model.eval().requires_grad_(False)


def _build(lpips, net: str, backbone: str | os.PathLike | None, random_backbone: bool):
    """The lpips model with its backbone from a file, from torchvision's local cache, or untrained."""
    if random_backbone or backbone:
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        if backbone:
            _load_backbone_into(model, net, Path(backbone))
    else:
        cached = backbone_cache_path(net)
        if not cached.exists():
            raise LPIPSUnavailable(
                f"LPIPS needs the ImageNet {net} backbone, which is not on this machine: put it at {cached} "
                f"or pass --lpips-backbone FILE (torchvision {BACKBONE_WEIGHTS[net]}.IMAGENET1K_V1), "
                f"or use a recipe without LPIPS")
        model = lpips.LPIPS(net=net, pretrained=True, verbose=False)
    return model


class LPIPSLoss(torch.nn.Module):
    """Per-image LPIPS on [0, 1] images; above 256² both are average-pooled to 256² (rosinality),
    below 64² both are bilinearly enlarged to 64² (AlexNet's pooling stack needs at least that)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape[-1] > 256:
            k = pred.shape[-1] // 256
            pred, target = F.avg_pool2d(pred, k), F.avg_pool2d(target, k)
        elif pred.shape[-1] < 64:
            pred, target = (F.interpolate(t, size=(64, 64), mode="bilinear", align_corners=False) for t in (pred, target))
        return self.model(pred * 2 - 1, target * 2 - 1).flatten()
