"""StyleGAN2 residual discriminator in pure PyTorch (training only: generator and encoders).

Equalized learning rate, [1,3,3,1] blur before every stride-2 step, minibatch standard
deviation, as in StyleGAN2. Kept small and readable rather than bit-compatible with others.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from optinv.engine.generator import SQRT2, EqualLinear, blur_kernel, depthwise_fir


class EqualConv2d(nn.Module):
    """Conv with weights scaled at run time (equalized lr); optional blur + stride-2 downsampling."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, down: bool = False,
                 bias: bool = True, activate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size ** 2)
        self.down, self.activate = down, activate
        self.padding = 0 if down else kernel_size // 2
        if down:
            self.register_buffer("kernel", blur_kernel())
            p = 4 - 2 + kernel_size - 1
            self.blur_pad = ((p + 1) // 2, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = depthwise_fir(x, self.kernel, self.blur_pad)
            out = F.conv2d(x, self.weight * self.scale, stride=2)
        else:
            out = F.conv2d(x, self.weight * self.scale, padding=self.padding)
        if self.bias is not None:
            out = out + self.bias[None, :, None, None]
        if self.activate:
            out = F.leaky_relu(out, 0.2) * SQRT2
        return out


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3, down=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, down=True, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class Discriminator(nn.Module):
    """Residual D: fromRGB → ResBlocks down to 4×4 → minibatch stddev → conv → two linears."""

    def __init__(self, size: int, channels: dict[int, int], stddev_group: int = 4):
        super().__init__()
        chans = {int(k): int(v) for k, v in channels.items()}
        log_size = int(math.log2(size))
        self.from_rgb = EqualConv2d(3, chans[size], 1)
        blocks = []
        for log in range(log_size, 2, -1):
            blocks.append(ResBlock(chans[2 ** log], chans[2 ** (log - 1)]))
        self.blocks = nn.Sequential(*blocks)
        self.stddev_group = stddev_group
        c4 = chans[4]
        self.final_conv = EqualConv2d(c4 + 1, c4, 3)
        self.final_linear = nn.Sequential(EqualLinear(c4 * 16, c4, activate=True), EqualLinear(c4, 1))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.from_rgb(img))
        b, c, h, w = x.shape
        group = min(b, self.stddev_group)
        while b % group:
            group -= 1
        y = x.view(group, -1, 1, c, h, w)
        y = torch.sqrt(y.var(0, unbiased=False) + 1e-8).mean(dim=(2, 3, 4), keepdim=True).squeeze(2)
        y = y.repeat(group, 1, h, w)
        x = self.final_conv(torch.cat([x, y], 1))
        return self.final_linear(x.flatten(1))
