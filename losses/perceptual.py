"""LPIPS from the ``lpips`` package, without any download.

``lpips`` ships its linear heads but builds its backbone with torchvision, which downloads the
ImageNet weights into the torch cache. The backbone comes from a file the user gives
(``--lpips-backbone`` or ``OPTINV_LPIPS_BACKBONE``), else from that cache; when it is not cached,
torchvision fetches it as usual if the machine is online (we say so once), and otherwise we stop
at once with the file's exact name, where it goes and where to get it. ``OPTINV_OFFLINE=1``
forbids the download (the test suite sets it).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from optinv.errors import OptinvError
from optinv.io.fileio import first_line
from optinv.io.ranges import to_signed

BACKBONE_WEIGHTS = {"vgg": "VGG16_Weights", "alex": "AlexNet_Weights", "squeeze": "SqueezeNet1_1_Weights"}
OFFLINE_ENV = "OPTINV_OFFLINE"
PROBE_SECONDS = 0.8
_announced: set[str] = set()


class LPIPSUnavailable(OptinvError):
    """The LPIPS backbone weights are not on this machine."""


# torchvision's IMAGENET1K_V1 files (tests check these against torchvision): known without importing
# torchvision, so a missing backbone is reported in milliseconds.
BACKBONE_URLS = {"vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
                 "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                 "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth"}


def backbone_url(net: str) -> str:
    return BACKBONE_URLS[net]


def backbone_cache_path(net: str) -> Path:
    """Where torchvision would look for the ImageNet backbone of ``net`` (no download)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(backbone_url(net))


def can_download(url: str, seconds: float = PROBE_SECONDS) -> bool:
    """Whether ``url``'s host answers within ``seconds`` (never longer: a hanging DNS lookup counts as offline)."""
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return False
    host = url.split("/")[2]
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=seconds).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(seconds)
    return bool(ok)


def _load_backbone_into(model, net: str, path: Path) -> None:
    """Copy a torchvision ``features`` state dict into lpips' slice modules (same indices)."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise LPIPSUnavailable(f"cannot read LPIPS backbone {path}: {first_line(e, 120)}") from None
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
    if net not in BACKBONE_WEIGHTS:
        raise OptinvError(f"unknown LPIPS network {net!r} (known: {', '.join(BACKBONE_WEIGHTS)})")
    backbone = backbone or os.environ.get("OPTINV_LPIPS_BACKBONE")
    if not (random_backbone or backbone):
        _ensure_backbone(net)  # before importing lpips/torchvision: an offline failure takes milliseconds
    import lpips

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
        model = lpips.LPIPS(net=net, pretrained=True, verbose=False)
    return model


def _ensure_backbone(net: str) -> None:
    """The cached backbone is there, or will be fetched (said once), or one clear error."""
    cached = backbone_cache_path(net)
    if cached.exists():
        return
    url = backbone_url(net)
    if not can_download(url):
        raise LPIPSUnavailable(
            f"LPIPS needs {cached.name} (torchvision {BACKBONE_WEIGHTS[net]}.IMAGENET1K_V1), not on this "
            f"machine and no network: put it at {cached} (from {url}) or pass `lpips_backbone` FILE, "
            f"or use a recipe without LPIPS")
    if net not in _announced:
        _announced.add(net)
        print(f"LPIPS: fetching {cached.name} into {cached.parent} with torchvision (once; "
              f"{OFFLINE_ENV}=1 forbids it)", file=sys.stderr)


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
        return self.model(to_signed(pred), to_signed(target)).flatten()
