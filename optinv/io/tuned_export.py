"""A pivotally tuned latent's generator as a plain rosinality checkpoint, for other tools.

A tuned latent stores only a weight delta (see :mod:`optinv.engine.tuning`); tools outside optinv
need the whole generator. This writes ``{'g_ema': state_dict, 'latent_avg': w_avg}`` with the
delta added to the weights, in rosinality's names and shapes, so ``Generator.load_state_dict(
ckpt['g_ema'], strict=True)`` takes it. The noise buffers (``noises.noise_i``) hold the latent's
own noise maps, so ``g_ema([wplus], input_is_latent=True, randomize_noise=False)`` with the
record's W+ draws the image optinv rendered.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from optinv.errors import OptinvError
from optinv.io.fileio import atomic_torch_save
from optinv.engine.generator import Generator
from optinv.io.latents import LatentRecord
from optinv.engine.tuning import tuned_generator


def tuned_state_dict(g: Generator, rec: LatentRecord, latent_noise: bool = True) -> dict[str, torch.Tensor]:
    """The tuned generator's state dict (CPU, float32); ``g`` is the base model or the tuned one."""
    if not rec.get("tuning"):
        raise OptinvError("the latent carries no pivotal tuning (it was made without `tune`), so its generator is the "
                          "base model itself: export the latent, or invert again with `tune`")
    tuned = tuned_generator(g, rec["tuning"])
    sd = {k: v.detach().cpu().float().clone() for k, v in tuned.state_dict().items()}
    if latent_noise:
        for i, n in enumerate(rec["noise"]):
            key = f"noises.noise_{i}"
            if key not in sd or sd[key].shape != n.shape:
                raise OptinvError(f"the latent's noise map {i} {tuple(n.shape)} does not fit the model's "
                                  f"{tuple(sd[key].shape) if key in sd else 'missing'} buffer")
            sd[key] = n.detach().cpu().float().clone()
    return sd


def save_tuned_rosinality(g: Generator, rec: LatentRecord, path: str | os.PathLike, latent_noise: bool = True) -> Path:
    """Write the tuned generator in rosinality's layout (``{'g_ema', 'latent_avg'}``), atomically."""
    sd = tuned_state_dict(g, rec, latent_noise)
    return atomic_torch_save({"g_ema": sd, "latent_avg": g.w_avg.detach().cpu().float().clone()}, Path(path))


__all__ = ["tuned_state_dict", "save_tuned_rosinality"]
