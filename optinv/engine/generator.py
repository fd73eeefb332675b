"""StyleGAN2 generator in pure PyTorch (no compiled ops), runs on CPU, CUDA and MPS.

Parameter and buffer names follow rosinality's ``stylegan2-pytorch`` ``Generator`` so its
checkpoints load with ``load_state_dict(strict=True)``. The modulated convolution is written
in the "modulate the activations, not the weights" form: ``conv(x * s, W) * d``. It is
mathematically identical to the grouped-conv form but uses one shared weight per layer,
which is faster on CPU and lets the same code take a per-pixel style map (StyleMaps).
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

STYLEGAN2_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)
SQRT2 = math.sqrt(2.0)


def default_channels(size: int, channel_multiplier: int = 2, channel_base: int | None = None,
                     channel_max: int = 512) -> dict[int, int]:
    """Channel widths per resolution: StyleGAN2 config-f by default, or base/res capped (small models)."""
    chans = {}
    for log in range(2, int(math.log2(size)) + 1):
        res = 2 ** log
        if channel_base is None:
            c = STYLEGAN2_CHANNELS.get(res, 16)
            if res >= 64:
                c *= channel_multiplier
        else:
            c = channel_base // res
        chans[res] = int(min(c, channel_max))
    return chans


def blur_kernel(gain: float = 1.0) -> torch.Tensor:
    """The normalised separable [1,3,3,1] FIR filter of StyleGAN2, scaled by ``gain``."""
    taps = torch.tensor(BLUR_TAPS)
    k = taps[:, None] * taps[None, :]
    return k / k.sum() * gain


def depthwise_fir(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Apply a 2-D FIR filter to every channel (upfirdn2d with up=down=1)."""
    c = x.shape[1]
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = kernel.flip(0, 1)[None, None].to(x.dtype).expand(c, 1, *kernel.shape)
    return F.conv2d(x, weight, groups=c)


def upsample_fir(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """×2 upsampling with the FIR filter (upfirdn2d up=2, pad (2,1)) as one transposed conv."""
    c = x.shape[1]
    weight = kernel[None, None].to(x.dtype).expand(c, 1, *kernel.shape)
    return F.conv_transpose2d(x, weight, stride=2, padding=1, groups=c)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate; the stored weight is ``randn / lr_mul``."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        if self.activate:
            out = F.leaky_relu(out, 0.2) * SQRT2
        return out


class Blur(nn.Module):
    def __init__(self, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", blur_kernel(gain))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_fir(x, self.kernel, self.pad)


class Upsample(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", blur_kernel(4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_fir(x, self.kernel)


@functools.lru_cache(maxsize=64)
def _linear_resize_matrix(src: int, dst: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[dst, src] matrix of 1-D linear resizing (align_corners=False, edges clamped): F.interpolate's
    weights, read off by resizing the identity."""
    eye = torch.eye(src, dtype=torch.float64)[None]
    m = F.interpolate(eye, size=dst, mode="linear", align_corners=False)[0].t()
    return m.to(dtype=dtype, device=device)


def _fit_style(style: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A style vector [B,C] becomes [B,C,1,1]; a style map is resized bilinearly to ``size``.

    Bilinear resizing is separable, so it is done as two small matrix products: the same numbers
    as ``F.interpolate(..., "bilinear")``, but its backward is a matrix product instead of CPU's
    scatter kernel, which took a sixth of a StyleMap step with spatial fine maps.
    """
    if style.dim() == 2:
        return style[:, :, None, None]
    h, w = style.shape[-2:]
    if (h, w) == tuple(size):
        return style
    rows = _linear_resize_matrix(h, size[0], style.dtype, style.device)
    cols = _linear_resize_matrix(w, size[1], style.dtype, style.device)
    b, c = style.shape[:2]
    # two plain 2-D GEMMs (batched tiny matmuls are several times slower on CPU); only the
    # small intermediate [B,C,w,H] is transposed, the full-size result comes out contiguous
    tall = (style.transpose(2, 3).reshape(-1, h) @ rows.t()).reshape(b, c, w, size[0])
    return (tall.transpose(2, 3).reshape(-1, w) @ cols.t()).reshape(b, c, size[0], size[1])


_no_op = contextlib.nullcontext
REDUCED_MIN_SIDE = 32  # under bf16 autocast, smaller layers stay fp32 (cheap; measured: half the PSNR gap)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype convolutions run in here: autocast's (bf16) when it is on for x's device, else x's."""
    dev = x.device.type
    if dev in ("cpu", "cuda") and torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return x.dtype


class ModulatedConv2d(nn.Module):
    """Modulated conv with optional demodulation; the style may be a vector or a spatial map.

    For a map, demodulation is per pixel, ``y = W*(s⊙x) · d`` with ``d = 1/sqrt(Σ_k W² · s² + eps)``
    from each pixel's own style (a 1×1 convolution). The textbook per-pixel term sums over the
    kernel's footprint, ``W² * s²`` with ``*`` a 3×3 convolution: a second full-size convolution
    per layer, which made spatial fine maps cost twice a W+ step. A style map is a smooth
    upsampling of a few pixels, so s barely changes across the footprint; a constant map still
    gives exactly the vector result, and a map rendered at its layer's size gives the same image
    whether it was upsampled before or inside the generator.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False):
        super().__init__()
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.demodulate = demodulate
        self.upsample = upsample
        if upsample:
            self.blur = Blur(pad=(1, 1), gain=4.0)

    def modulate(self, w: torch.Tensor) -> torch.Tensor:
        """Affine map of a latent (vector [B,D] or map [B,D,h,w]) to per-channel scales."""
        if w.dim() == 2:
            return self.modulation(w)
        b, d, h, wd = w.shape
        flat = w.permute(0, 2, 3, 1).reshape(-1, d)  # one GEMM, not a batch of small ones
        return self.modulation(flat).reshape(b, h, wd, -1).permute(0, 3, 1, 2)

    def frozen_weights(self, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(scaled weight, its [in, out] transpose for the up-conv, Σ_k w² as a 1×1 kernel [out, in, 1, 1]).

        ``dtype`` (bf16 under autocast): the two conv weights in it, cast once per cached weight
        instead of by autocast at every call; Σ_k w² stays in the weight's dtype (demodulation is
        computed in fp32).

        Inversion renders hundreds of times with the same weights: recomputing these every step
        cost ~10 % of a 64² step. They are cached while no gradient flows to the weight, keyed on
        the weight object itself (held, so its memory cannot be reused), its version counter
        (in-place updates), storage, dtype and device (``.to()``/``.half()``).
        """
        w = self.weight
        cacheable = not (w.requires_grad and torch.is_grad_enabled())  # else the weight must be in the graph
        dtype = dtype or w.dtype
        key = (w._version, w.data_ptr(), w.dtype, w.device, dtype)
        cache = self.__dict__.get("_weight_cache")
        if cacheable and cache is not None and cache[0] is w and cache[1] == key:
            return cache[2]
        weight = w[0] * self.scale
        w2 = weight.pow(2).sum(dim=(2, 3), keepdim=True)
        weight = weight.to(dtype)
        parts = (weight, weight.transpose(0, 1).contiguous() if self.upsample else None, w2)
        if cacheable:
            self.__dict__["_weight_cache"] = (w, key, parts)
        return parts

    def modulated(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The convolution of the style-scaled input, and the demodulation factor (None without).

        Under bf16 autocast the big maps and convolutions of layers at ``REDUCED_MIN_SIDE`` and above
        run in bf16 (cast here, explicitly, so they stay bf16 from layer to layer); styles and
        demodulation, which carry the latent's precision and cost little, stay fp32.
        """
        dtype = compute_dtype(x)
        reduced = dtype in (torch.bfloat16, torch.float16)
        if reduced and x.shape[-1] * (2 if self.upsample else 1) < REDUCED_MIN_SIDE:
            dtype = torch.float32
        with torch.autocast(x.device.type, enabled=False) if reduced else _no_op():
            weight, weight_t, w2 = self.frozen_weights(dtype)
            style = self.modulate(w.to(w2.dtype))
            if style.dim() == 4 and style.shape[-2:] == (1, 1):
                style = style[:, :, 0, 0]
            s = _fit_style(style, x.shape[-2:])
            if self.kernel_size == 1 and style.dim() == 2 and not self.upsample and x.shape[0] == style.shape[0]:
                # toRGB: scale the small [out, in] weight per sample, not the full-size input; one
                # batched matrix product replaces a full-size multiply and its two full-size backward
                # passes (~8 % of a 256² W+ step)
                b, c, h, wd = x.shape
                per_sample = weight[:, :, 0, 0][None] * style.to(dtype)[:, None, :]
                out = torch.bmm(per_sample, x.to(dtype).reshape(b, c, h * wd)).reshape(b, -1, h, wd)
            else:
                x = x.to(dtype) * s.to(dtype)
                if self.upsample:
                    out = self.blur(F.conv_transpose2d(x, weight_t, stride=2))
                else:
                    out = F.conv2d(x, weight, padding=self.padding)
            if not self.demodulate:
                return out, None
            if style.dim() == 2:
                d = torch.rsqrt(style.pow(2) @ w2[:, :, 0, 0].t() + 1e-8)[:, :, None, None]
            else:
                d = torch.rsqrt(F.conv2d(s.pow(2), w2) + 1e-8)  # a 1×1 conv: Σ_k W² · s²
                if d.shape[-2:] != out.shape[-2:]:
                    d = F.interpolate(d, size=out.shape[-2:], mode="nearest")
            return out, d.to(out.dtype)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        out, d = self.modulated(x, w)
        return out if d is None else out * d


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if noise is None:
            b, _, h, w = x.shape
            noise = x.new_empty(b, 1, h, w).normal_()
        return x + self.weight * noise


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * SQRT2


class StyledConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, upsample: bool = False,
                 clamp: float | None = None):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)
        self.clamp = clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """leaky(conv·d + nw·noise + bias)·√2 as one addcmul and one in-place leaky ReLU (√2 > 0
        moves inside): five full-size passes become two."""
        out, d = self.conv.modulated(x, w)
        if noise is None:
            b, _, h, wd = out.shape
            noise = out.new_empty(b, 1, h, wd).normal_()
        dt = out.dtype  # bf16 under autocast: the full-size maps stay in it
        shift = (self.noise.weight * SQRT2).to(dt) * noise.to(dt) + (self.activate.bias * SQRT2).to(dt)[None, :, None, None]
        out = F.leaky_relu_(torch.addcmul(shift, out, SQRT2 * d if d is not None else out.new_tensor(SQRT2)), 0.2)
        return out.clamp(-self.clamp, self.clamp) if self.clamp is not None else out


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True, clamp: float | None = None):
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.clamp = clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias
        if self.clamp is not None:
            out = out.clamp(-self.clamp, self.clamp)
        if skip is not None:
            # the image is summed in fp32 under autocast too (no context to enter on the fp32 path)
            with torch.autocast(skip.device.type, enabled=False) if compute_dtype(skip) != skip.dtype else _no_op():
                out = out + self.upsample(skip.float())
        return out


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


StyleInput = torch.Tensor | Sequence[torch.Tensor]


class Generator(nn.Module):
    """StyleGAN2 generator (rosinality layout). ``channels`` maps resolution → width.

    ``conv_clamp`` clamps activations after each conv and toRGB as NVIDIA's stylegan2-ada
    does (256 in its FFHQ configs); rosinality models use None.
    """

    def __init__(self, size: int, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                 channels: dict[int, int] | None = None, lr_mlp: float = 0.01, conv_clamp: float | None = None):
        super().__init__()
        log_size = int(math.log2(size))
        if size < 16 or 2 ** log_size != size:
            raise ValueError(f"resolution must be a power of two ≥ 16, got {size}")
        self.size, self.style_dim, self.n_mlp, self.lr_mlp = size, style_dim, n_mlp, lr_mlp
        self.conv_clamp = conv_clamp
        self.log_size = log_size
        self.channels = {int(k): int(v) for k, v in (channels or default_channels(size, channel_multiplier)).items()}
        # w_avg travels with the model card, not the rosinality state dict (hence non-persistent).
        self.register_buffer("w_avg", torch.zeros(style_dim), persistent=False)
        self.card: dict = {}
        self.style = nn.Sequential(PixelNorm(), *[
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True) for _ in range(n_mlp)])
        c4 = self.channels[4]
        self.input = ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, 3, style_dim, clamp=conv_clamp)
        self.to_rgb1 = ToRGB(c4, style_dim, upsample=False, clamp=conv_clamp)
        self.num_layers = (log_size - 2) * 2 + 1
        self.n_latent = log_size * 2 - 2
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))
        in_ch = c4
        for log in range(3, log_size + 1):
            out_ch = self.channels[2 ** log]
            self.convs.append(StyledConv(in_ch, out_ch, 3, style_dim, upsample=True, clamp=conv_clamp))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style_dim, clamp=conv_clamp))
            self.to_rgbs.append(ToRGB(out_ch, style_dim, clamp=conv_clamp))
            in_ch = out_ch

    # ----------------------------------------------------------------- latent side
    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., D] → w [..., D] through PixelNorm + the MLP."""
        shape = z.shape
        return self.style(z.reshape(-1, shape[-1])).reshape(shape)

    @torch.no_grad()
    def mean_latent(self, n: int = 10000, seed: int = 0, chunk: int = 4096) -> torch.Tensor:
        """Average w over ``n`` z (computed in chunks, seeded, so it is reproducible)."""
        gen = torch.Generator().manual_seed(seed)
        total = torch.zeros(self.style_dim, dtype=torch.float64)
        dev = self.input.input.device
        done = 0
        while done < n:
            m = min(chunk, n - done)
            z = torch.randn(m, self.style_dim, generator=gen).to(dev)
            total += self.mapping(z).double().sum(0).cpu()
            done += m
        return (total / n).float().to(dev)

    def noise_list(self) -> list[torch.Tensor]:
        """The stored (fixed) noise buffers, in layer order."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def layer_sizes(self) -> list[int]:
        """Feature-map side at which each of the n_latent styles is applied (all its uses share it)."""
        sizes = [4, 4]  # conv1; to_rgb1 and the next up-conv (its input is 4×4)
        for log in range(3, self.log_size + 1):
            sizes += [2 ** log, 2 ** log]  # second conv; toRGB and the next up-conv's input
        return sizes[: self.n_latent]

    # ----------------------------------------------------------------- image side
    def synthesis(self, styles: StyleInput, noise: Sequence[torch.Tensor | None] | None = None,
                  randomize_noise: bool = False, side: int | None = None) -> torch.Tensor:
        """Render from W+ ``[B, n_latent, D]`` or from a list of n_latent per-layer styles.

        Each list entry is a vector ``[B, D]`` or a style map ``[B, D, h, w]`` (any h, w;
        resized bilinearly to the feature size of the layer that uses it).
        ``noise``: list of per-layer tensors, or None to use the stored buffers (or fresh
        random noise when ``randomize_noise``). ``side``: stop at that layer's RGB (see ``preview``).
        """
        last = None
        if side is not None and side < self.size:
            if side not in self.layer_sides():
                raise ValueError(f"preview side must be one of {self.layer_sides()}, got {side}")
            last = self.layer_sides().index(side)
        if isinstance(styles, torch.Tensor):
            if styles.dim() != 3 or styles.shape[1] != self.n_latent:
                raise ValueError(f"W+ styles must be [B, {self.n_latent}, {self.style_dim}], got {tuple(styles.shape)}")
            styles = styles.unbind(1)
        if len(styles) != self.n_latent:
            raise ValueError(f"expected {self.n_latent} styles, got {len(styles)}")
        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.noise_list()
        out, skip = self.stem(styles, noise)
        return self.blocks(out, skip, styles, noise, 0, last)[1]

    def preview(self, styles: StyleInput, side: int) -> torch.Tensor:
        """The image as the blocks up to ``side``² draw it (their RGB skip), skipping the rest.

        The blocks above only add detail finer than ``side``² to this image, so a consumer that
        looks at ``side``² anyway (a 64² reconstructor, a 32² attribute predictor) gets nearly the
        same picture for a fraction of the cost: at 256², the 64² preview costs about a third.
        """
        return self.synthesis(styles, side=side)

    # Intermediate layers (ILO searches them): "layer" b is the state after the 4×4 stem (b = 0)
    # or after upsampling block b (side 4·2^b); a state is (features [B, C, s, s], RGB skip [B, 3, s, s]).
    def layer_sides(self) -> list[int]:
        """Side of the feature maps at each intermediate layer b = 0 … log2(size) − 2."""
        return [4 * 2 ** b for b in range(self.log_size - 1)]

    def stem(self, styles: Sequence[torch.Tensor], noise: Sequence[torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """The state at layer 0: constant input → conv1, and its toRGB."""
        out = self.input(styles[0].shape[0])
        out = self.conv1(out, styles[0], noise[0])
        return out, self.to_rgb1(out, styles[1])

    def blocks(self, out: torch.Tensor, skip: torch.Tensor, styles: Sequence[torch.Tensor],
               noise: Sequence[torch.Tensor | None], first: int, last: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """From the state at layer ``first`` to the state at layer ``last`` (default: the image,
        whose RGB skip is the output)."""
        last = len(self.to_rgbs) if last is None else last
        i = 1 + 2 * first
        for k in range(first, last):
            out = self.convs[2 * k](out, styles[i], noise[2 * k + 1])
            out = self.convs[2 * k + 1](out, styles[i + 1], noise[2 * k + 2])
            skip = self.to_rgbs[k](out, styles[i + 2], skip)
            i += 2
        return out, skip

    def forward(self, z: torch.Tensor, truncation: float = 1.0, truncation_latent: torch.Tensor | None = None,
                noise: Sequence[torch.Tensor | None] | None = None, randomize_noise: bool = False) -> torch.Tensor:
        """z [B, D] → image [B, 3, size, size] in [-1, 1] (approximately)."""
        w = self.mapping(z)
        if truncation != 1.0:
            if truncation_latent is None:
                raise ValueError("truncation needs truncation_latent (e.g. the model's w_avg)")
            w = truncation_latent + truncation * (w - truncation_latent)
        wplus = w[:, None, :].expand(-1, self.n_latent, -1)
        return self.synthesis(wplus, noise=noise, randomize_noise=randomize_noise)

    def config(self) -> dict:
        """The constructor arguments, for model cards and checkpoints."""
        return {"size": self.size, "style_dim": self.style_dim, "n_mlp": self.n_mlp,
                "lr_mlp": self.lr_mlp, "conv_clamp": self.conv_clamp,
                "channels": {str(k): v for k, v in self.channels.items()}}
