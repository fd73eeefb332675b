"""Grow a trained generator to a higher resolution (progressive growing, StyleGAN2 skip layout).

Why: the 256² embedded model is the 64² one plus two blocks. Every layer up to 64² keeps its
trained weights, and each new toRGB starts at zero, so the grown model's first image *is* the
64² image upsampled by the skip path's FIR filter: training starts from a good picture and only
has to learn the missing detail, instead of the whole portrait again.
"""

from __future__ import annotations

import torch

from optinv.engine.generator import Generator, ModulatedConv2d


def grow_generator(small: Generator, size: int, channels: dict[int, int], n_relevant: int | None = None) -> Generator:
    """A ``size``² generator holding ``small``'s layers, with new blocks whose toRGB is zero.

    ``channels`` must agree with ``small`` on every resolution it has. ``n_relevant``: the new
    blocks' style affines start blind to w's dimensions ≥ n_relevant (the renderer reads only
    its first N_PARAMS; a trained model has learned to ignore the rest, new layers have not).
    """
    if size <= small.size:
        raise ValueError(f"can only grow to a larger size than {small.size}, got {size}")
    for res, ch in small.channels.items():
        if channels.get(res) != ch:
            raise ValueError(f"channels at {res}² must stay {ch} (the trained layer's width), got {channels.get(res)}")
    big = Generator(size, small.style_dim, small.n_mlp, channels=channels, lr_mlp=small.lr_mlp,
                    conv_clamp=small.conv_clamp).to(small.input.input.device)
    own = small.state_dict()
    missing, unexpected = big.load_state_dict(own, strict=False)
    if unexpected:
        raise ValueError(f"unexpected layers when growing: {unexpected[:3]}")
    kept = len(small.to_rgbs)
    with torch.no_grad():
        for to_rgb in list(big.to_rgbs)[kept:]:
            to_rgb.conv.weight.zero_()
            to_rgb.bias.zero_()
        if n_relevant is not None:
            for block in list(big.convs)[2 * kept:] + list(big.to_rgbs)[kept:]:
                for m in block.modules():
                    if isinstance(m, ModulatedConv2d):
                        m.modulation.weight[:, n_relevant:] = 0
        big.w_avg.copy_(small.w_avg)
    big.card = dict(small.card)
    return big
