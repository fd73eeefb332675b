"""Forward operators A: what the observation sees of a generated image.

The bicubic downscale is Keys' cubic (a = −0.5) stretched by the factor (so it antialiases),
separable, with reflect padding — the operator PULSE optimises through. The same operator
makes samples/lowres, so a generated image that downscales to the input is a real answer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def keys_cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def bicubic_taps(factor: int) -> tuple[torch.Tensor, int, int]:
    """1-D antialiased kernel for ×factor downscaling and its (left, right) padding."""
    centre = (factor - 1) / 2.0
    lo = math.floor(centre - 2 * factor) + 1
    hi = math.ceil(centre + 2 * factor) - 1
    pos = torch.arange(lo, hi + 1, dtype=torch.float64)
    k = keys_cubic((pos - centre) / factor)
    k = (k / k.sum()).float()
    left = -lo
    right = len(k) - factor - left
    return k, left, right


class Identity(nn.Module):
    """Inversion: the observation is the image itself."""

    factor = 1

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return img


class BicubicDownscale(nn.Module):
    """Antialiased Keys-bicubic downscale by an integer factor (PULSE's operator).

    Takes [B, C, H, W] (any range; H and W divisible by ``factor``) and returns [B, C, H/f, W/f].
    A constant image stays constant (the taps sum to 1):

    >>> import torch
    >>> op = BicubicDownscale(4)
    >>> y = op(torch.full((1, 3, 16, 16), 0.25))
    >>> tuple(y.shape), round(float(y.min()), 6), round(float(y.max()), 6)
    ((1, 3, 4, 4), 0.25, 0.25)
    >>> op(torch.zeros(1, 3, 10, 10))
    Traceback (most recent call last):
    ValueError: image 10×10 is not divisible by the scale 4
    """

    def __init__(self, factor: int):
        super().__init__()
        if factor < 1 or int(factor) != factor:
            raise ValueError(f"scale must be a positive integer, got {factor}")
        self.factor = int(factor)
        k, self.left, self.right = bicubic_taps(self.factor)
        self.register_buffer("taps", k)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return img
        b, c, h, w = img.shape
        f = self.factor
        if h % f or w % f:
            raise ValueError(f"image {h}×{w} is not divisible by the scale {f}")
        x = img.reshape(b * c, 1, h, w)
        k = self.taps.to(img.dtype)
        pad_mode = "reflect" if max(self.left, self.right) < min(h, w) else "replicate"
        x = F.pad(x, (self.left, self.right, 0, 0), mode=pad_mode)
        x = F.conv2d(x, k.view(1, 1, 1, -1), stride=(1, f))
        x = F.pad(x, (0, 0, self.left, self.right), mode=pad_mode)
        x = F.conv2d(x, k.view(1, 1, -1, 1), stride=(f, 1))
        return x.reshape(b, c, h // f, w // f)


def downscale_operator(model_size: int, observed_size: int, what: str = "input") -> BicubicDownscale:
    """The operator that maps model-resolution images to ``observed_size`` (or a clear error)."""
    from optinv.errors import InputImageError

    if observed_size > model_size or model_size % observed_size:
        raise InputImageError(
            f"{what} is {observed_size}×{observed_size} but the model makes {model_size}×{model_size}: "
            f"the size must divide {model_size} (e.g. {', '.join(str(model_size // f) for f in (4, 8, 16) if model_size // f >= 4)})")
    return BicubicDownscale(model_size // observed_size)


# ----------------------------------------------------------------------------- inverse problems
# Each operator maps [B, 3, H, W] images in [0, 1] to what the observation sees. Two hooks let
# them compose without the job knowing which ones it holds:
# - ``prepare(target)``: what the observation is once the operator is applied to it (a mask
#   blanks the unknown pixels, grayscale removes the colour; both are projections, so applying
#   them to an observation that already went through them changes nothing);
# - ``data_weight``: how much the data terms count against the prior (a noisy observation less).

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, what PIL's convert("L") uses
NOISE_REFERENCE = 0.02        # σ (in [0, 1] units) at which a recipe's data weight is halved


class Mask(nn.Module):
    """Inpainting: keeps the known pixels (mask 1), zeroes the unknown (mask 0).

    ``mask`` is [1 or B, 1, h, w] in [0, 1] (soft edges allowed). A pixel with mask 0 has no
    gradient, so the prior alone decides it. Inside :class:`Compose` the mask acts at its own
    size: before a downscale when it has the model's size, after it when it has the observation's.
    """

    factor = 1

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        if mask.dim() == 2:
            mask = mask[None, None]
        elif mask.dim() == 3:
            mask = mask[None]
        if mask.dim() != 4 or mask.shape[1] != 1:
            raise ValueError(f"a mask is [1, 1, h, w], got {tuple(mask.shape)}")
        if not torch.isfinite(mask).all() or float(mask.min()) < 0 or float(mask.max()) > 1:
            raise ValueError("mask values must lie in [0, 1]")
        if float(mask.max()) <= 0:
            raise ValueError("the mask is 0 everywhere: no pixel is known, so nothing constrains the result")
        self.register_buffer("mask", mask.float())

    @property
    def side(self) -> int:
        return self.mask.shape[-1]

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[-2:] != self.mask.shape[-2:]:
            raise ValueError(f"mask is {self.side}×{self.side} but the image is {img.shape[-2]}×{img.shape[-1]}")
        return img * self.mask.to(img.dtype)

    def prepare(self, target: torch.Tensor) -> torch.Tensor:
        return self(target) if target.shape[-2:] == self.mask.shape[-2:] else target

    def known_fraction(self) -> float:
        return float(self.mask.mean())


class Grayscale(nn.Module):
    """Colourisation: the observation is the luminance (BT.601), repeated in three channels so
    that gray observations stay ordinary RGB images for every loss term and picture."""

    factor = 1

    def __init__(self):
        super().__init__()
        self.register_buffer("weights", torch.tensor(LUMA).view(1, 3, 1, 1))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        y = (img * self.weights.to(img.dtype)).sum(1, keepdim=True)
        return y.expand(-1, img.shape[1], -1, -1)

    def prepare(self, target: torch.Tensor) -> torch.Tensor:
        return self(target)


class NoiseLevel(Identity):
    """Denoising: the observation is the image plus Gaussian noise of std ``sigma`` ([0, 1] units).

    The operator itself is the identity; what changes is how much the data terms may pull
    against the prior. With the recipe's weights set for a clean image, the posterior weight
    of a data term falls as ``σ₀² / (σ₀² + σ²)`` (σ₀ = NOISE_REFERENCE): 1 for a clean image,
    ½ at σ₀, 1/26 at σ = 0.1, so the prior decides more as the noise grows.
    """

    def __init__(self, sigma: float):
        super().__init__()
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"noise level must be a finite number ≥ 0, got {sigma}")
        self.sigma = float(sigma)
        self.data_weight = NOISE_REFERENCE ** 2 / (NOISE_REFERENCE ** 2 + self.sigma ** 2)


class Compose(nn.Module):
    """Operators applied left to right: ``Compose(Mask(m), BicubicDownscale(8))`` is the
    downscale of a masked image. ``factor`` and ``data_weight`` are the products of the parts'.

    >>> import torch
    >>> known = torch.zeros(16, 16); known[:8] = 1            # top half known
    >>> op = Compose(Mask(known), Grayscale(), BicubicDownscale(2))
    >>> op.factor, tuple(op(torch.rand(2, 3, 16, 16)).shape)
    (2, (2, 3, 8, 8))
    """

    def __init__(self, *ops: nn.Module):
        super().__init__()
        flat: list[nn.Module] = []
        for op in ops:
            flat.extend(op.ops if isinstance(op, Compose) else [op])
        self.ops = nn.ModuleList([op for op in flat if type(op) is not Identity])
        self.factor = math.prod(getattr(op, "factor", 1) for op in self.ops)
        self.data_weight = math.prod(getattr(op, "data_weight", 1.0) for op in self.ops)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            img = op(img)
        return img

    def prepare(self, target: torch.Tensor) -> torch.Tensor:
        return prepare_target(self.ops, target)

    def describe(self) -> str:
        return " ∘ ".join(describe(op) for op in reversed(self.ops)) or "identity"


def prepare_target(ops, target: torch.Tensor) -> torch.Tensor:
    """The observation as the operators see it (each one's ``prepare``, in order)."""
    for op in ops:
        fn = getattr(op, "prepare", None)
        if fn is not None:
            target = fn(target)
    return target


def prepare(op: nn.Module, target: torch.Tensor) -> torch.Tensor:
    fn = getattr(op, "prepare", None)
    return fn(target) if fn is not None else target


def data_weight(op: nn.Module) -> float:
    return float(getattr(op, "data_weight", 1.0))


def describe(op: nn.Module) -> str:
    """One short name per operator, as NAME.json reports it."""
    if isinstance(op, Compose):
        return op.describe()
    if isinstance(op, BicubicDownscale):
        return f"downscale×{op.factor}" if op.factor > 1 else "identity"
    if isinstance(op, Mask):
        return f"mask {op.side}² ({op.known_fraction():.0%} known)"
    if isinstance(op, Grayscale):
        return "gray"
    if isinstance(op, NoiseLevel):
        return f"noise σ={op.sigma:g}"
    return "identity"


OPERATORS = ("identity", "gray")


def load_mask(source: "str | torch.Tensor", what: str = "mask") -> torch.Tensor:
    """A mask file (white = known, black = unknown; the alpha channel when there is one) or a
    tensor [h, w] / [1, h, w] / [1, 1, h, w] in [0, 1] → [1, 1, h, w]."""
    from optinv.errors import InputImageError
    from optinv.io.image_files import load_image

    if isinstance(source, torch.Tensor):
        m = source.detach().float()
        while m.dim() < 4:
            m = m[None]
        if m.dim() != 4 or m.shape[:2] != (1, 1):
            raise InputImageError(f"{what} must be [h, w] or [1, 1, h, w], got {tuple(source.shape)}")
    else:
        from PIL import Image

        try:
            with Image.open(source) as im:
                has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
        except OSError:
            has_alpha = False  # load_image says what is wrong with the file
        x = load_image(source, keep_alpha=has_alpha)
        m = (x[3:4] if has_alpha else (x[:3] * torch.tensor(LUMA).view(3, 1, 1)).sum(0, keepdim=True))[None]
    if m.shape[-1] != m.shape[-2]:
        raise InputImageError(f"{what} is {m.shape[-1]}×{m.shape[-2]}; masks are square, like the images")
    if not torch.isfinite(m).all():
        raise InputImageError(f"{what} contains NaN or Inf values")
    m = m.clamp(0, 1)
    if float(m.max()) <= 0:
        raise InputImageError(f"{what} is 0 (black) everywhere: no pixel is known, so nothing constrains the result")
    return m


def job_operator(base: nn.Module, model_size: int, observed_size: int, *, mask: "str | torch.Tensor | None" = None,
                 operator: str | None = None, noise_level: float | None = None) -> nn.Module:
    """The job's forward operator (``base``: identity or a downscale) with the inverse-problem
    options composed around it; plain ``base`` when none is given.

    A mask of the model's size acts before the downscale, one of the observation's size after
    it; any other size is one clear error.
    """
    from optinv.errors import InputImageError

    if operator not in (None, *OPERATORS):
        raise InputImageError(f"unknown `operator` {operator!r} (known: {', '.join(OPERATORS)})")
    if mask is None and operator in (None, "identity") and not noise_level:
        return base
    before: list[nn.Module] = []
    after: list[nn.Module] = []
    if mask is not None:
        m = load_mask(mask, "the `mask`" if isinstance(mask, torch.Tensor) else f"mask {mask}")
        side = m.shape[-1]
        sizes = sorted({model_size, observed_size})
        if side not in sizes:
            raise InputImageError(f"the `mask` is {side}×{side}; it must be {' or '.join(f'{s}×{s}' for s in sizes)} "
                                  f"(the model's or the observation's size)")
        (before if side == model_size and side != observed_size else after).append(Mask(m))
    if operator == "gray":
        after.append(Grayscale())
    if noise_level:
        after.append(NoiseLevel(noise_level))
    return Compose(*before, base, *after)


def observed_mask(op: nn.Module, side: int) -> torch.Tensor | None:
    """The known-pixel mask [1, 1, side, side] an operator applies at the observation's size (or None):
    scores of a masked observation are taken over its known pixels only."""
    ops = op.ops if isinstance(op, Compose) else [op]
    for o in ops:
        if isinstance(o, Mask) and o.side == side:
            return o.mask
    return None
