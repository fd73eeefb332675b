"""Job defaults and the reference methods' published settings, as plain data.

Each preset names its source so a user can check it. Values the reference code fixes for a
1024² / 18-layer model (e.g. "first 5 noise layers") are applied as-is to any generator.
"""

from __future__ import annotations

from typing import Any

JOB_DEFAULTS: dict[str, dict[str, Any]] = {
    # Adam β2 0.9 (not torch's 0.999) and lr 0.1, measured on the embedded model (docs/BENCHMARKS.md,
    # "Optimiser defaults"): with β2 0.9 the second-moment estimate follows the gradient scale as it
    # shrinks near the optimum (+2.6 dB W+, +3.2 dB StyleMap after 300 steps); lr 0.1 adds +0.6 dB to
    # StyleMap (W+ ±0.05).
    "invert": {"space": "stylemap", "recipe": "1*L2+0.8*LPIPS", "fallback_recipe": "1*L2", "steps": 300,
               "lr": 0.1, "schedule": "cosine-ramp", "noise": "fixed", "init": "auto", "adam_beta2": 0.9},
    "pulse": {"space": "zplus", "recipe": "100*L2+0.05*GEOCROSS", "steps": 100, "lr": 0.4,
              "schedule": "linear1cycledrop", "noise": "trainable", "trainable_noise": 5, "eps": 2e-3},
    "paint": {"space": "zplus", "recipe": "100*L2A+0.05*GEOCROSS", "steps": 100, "lr": 0.4,
              "schedule": "linear1cycledrop", "noise": "trainable", "trainable_noise": 5, "eps": 2e-3},
}

# ILO's latent search (`ilo_latent` w, the default with `ilo`): one w from w_avg (W+'s schedule), the
# job's data term alone. Measured on the embedded model (docs/BENCHMARKS.md, "What each ILO lever
# gave"): the layer stages widen a tight range best. After 88 steps of each search and the same layer
# stages, ×8 super-resolution reached 27.2 dB against the truth from PULSE's Z+, 27.0 from W+,
# 27.8 from W; a random w instead of w_avg lost 1.3 dB.
ILO_LATENT: dict[str, Any] = {"space": "w", "init": "mean", "lr": 0.1, "schedule": "cosine-ramp", "noise": "fixed",
                              "trainable_noise": 0, "adam_beta2": 0.9}
ILO_LATENT_RECIPES: dict[str, str] = {"pulse": "100*L2", "paint": "100*L2A"}  # invert keeps its own (no GEOCROSS)

PRESETS: dict[str, dict[str, Any]] = {
    "pulse": {"source": "Menon et al. 2020, adamian98/pulse run.py defaults",
              "space": "zplus", "recipe": "100*L2+0.05*GEOCROSS", "steps": 100, "lr": 0.4,
              "schedule": "linear1cycledrop", "noise": "trainable", "trainable_noise": 5, "eps": 2e-3,
              "optimizer": "adam", "adam_beta2": 0.999},
    "image2stylegan": {"source": "Abdal et al. 2019: W+, MSE + VGG perceptual, Adam lr 0.01, 5000 steps",
                       "space": "wplus", "recipe": "1*L2+1*LPIPS", "steps": 5000, "lr": 0.01,
                       "schedule": "fixed", "noise": "fixed", "init": "mean", "adam_beta2": 0.999},
    "rosinality": {"source": "rosinality stylegan2-pytorch projector.py defaults (--w_plus)",
                   "space": "wplus", "recipe": "1*LPIPS+100000*NOISE", "steps": 1000, "lr": 0.1,
                   "schedule": "cosine-ramp", "lr_rampup": 0.05, "lr_rampdown": 0.25, "noise": "trainable",
                   "noise_renorm": True, "latent_noise": 0.05, "latent_noise_ramp": 0.75, "init": "mean",
                   "adam_beta2": 0.999},
    "nvidia": {"source": "NVIDIA stylegan2-ada-pytorch projector.py defaults",
               "space": "w", "recipe": "1*LPIPS+100000*NOISE", "steps": 1000, "lr": 0.1,
               "schedule": "cosine-ramp", "lr_rampup": 0.05, "lr_rampdown": 0.25, "noise": "trainable",
               "noise_renorm": True, "latent_noise": 0.05, "latent_noise_ramp": 0.75, "init": "mean",
               "adam_beta2": 0.999},
    "idinvert": {"source": "Zhu et al. 2020 (genforce/idinvert): encoder init, MSE + perceptual + 2·domain, "
                             "Adam lr 0.01, 100 steps",
                 "space": "wplus", "recipe": "1*L2+1*LPIPS+2*DOMAIN", "steps": 100, "lr": 0.01,
                 "schedule": "fixed", "noise": "fixed", "init": "encoder", "adam_beta2": 0.999},
    "stylemap": {"source": "optinv default: StyleMap space (coarse 4×4, medium 8×8, fine 1×1)",
                 **{k: v for k, v in JOB_DEFAULTS["invert"].items() if k != "fallback_recipe"}},
}


def preset(name: str) -> dict[str, Any]:
    from optinv.errors import OptinvError

    if name not in PRESETS:
        raise OptinvError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return dict(PRESETS[name])
