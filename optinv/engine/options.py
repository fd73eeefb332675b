"""Job options, declared once: each field carries its type, default, choices and help.

The CLI builds its click options from these fields (``optinv.cli.common.job_options``) and the
Python API takes the same names as keyword arguments (``jobs.invert(x, steps=30)``), so an
option is added in one place. ``None`` means "the job's default", resolved in this order:
job defaults < the model card's recipe < ``preset`` < explicit options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

import torch

from losses.recipe import build_objective

from optinv.errors import OptinvError
from optinv.engine.generator import Generator
from optinv.engine.optimize import NOISE_MODES, OPTIMIZERS, SCHEDULES, Settings, check_adam_beta2
from optinv.engine.precision import PRECISIONS
from optinv.engine.presets import ILO_LATENT, ILO_LATENT_RECIPES, JOB_DEFAULTS, PRESETS, preset
from optinv.engine.spaces import SPACES
from optinv.engine.tuning import MODES as TUNE_MODES
from optinv.engine.tuning import TuneSettings
from optinv.engine.ilo import ILO_LATENTS, ILO_LR, ILO_RADIUS, ILO_STEPS, parse_ilo
from optinv.engine.operators import OPERATORS
from optinv.engine.warmstart import INITS

CROPS = ("none", "center", "pad")
ZPLUS_MAPPINGS = ("gaussian", "exact")
GIF_FRAMES = 40  # about this many frames in NAME.gif, whatever the step count


def option(default: Any = None, help: str = "", *, type: Any = None, choices: tuple[str, ...] | None = None,
           flag: str | None = None, path: bool = False, show_default: bool = False, cli: bool = True) -> Any:
    """A JobOptions field with what the CLI needs to offer it (``cli=False``: Python API only)."""
    meta = {"help": help, "type": type, "choices": choices, "flag": flag, "path": path,
            "show_default": show_default, "cli": cli}
    return field(default=default, metadata=meta)


@dataclass
class JobOptions:
    """Everything a job can be told; None means "the job's default"."""

    space: str | None = option(None, "latent space", choices=SPACES)
    stylemap_res: str | None = option(None, "map sides: 'coarse,medium,fine' (default 4,8,1; 4,8,4 fits closer, edits worse) or one per layer")
    tile: bool = option(False, "zplus: one z shared by all layers", type=bool)
    zplus_mapping: str | None = option(None, "zplus: PULSE's Gaussian fit of the mapping, or the exact mapping "
                                             "network (default: the model card's choice, else gaussian)",
                                       choices=ZPLUS_MAPPINGS)
    recipe: str | None = option(None, "loss recipe, e.g. '100*L2+0.05*GEOCROSS'", flag="--loss")
    preset: str | None = option(None, f"reference settings: {', '.join(PRESETS)}")
    steps: int | None = option(None, "optimisation steps", type=int)
    lr: float | None = option(None, "learning rate", type=float)
    schedule: str | None = option(None, "", choices=SCHEDULES)
    optimizer: str | None = option(None, "", choices=OPTIMIZERS)
    adam_beta2: float | None = option(None, "Adam's second-moment decay (invert default 0.9: measured faster "
                                            "than torch's 0.999; presets keep their method's value)", type=float)
    noise: str | None = option(None, "noise inputs", choices=NOISE_MODES)
    trainable_noise: int | None = option(None, "with `noise` trainable: first k layers (0 = all)", type=int)
    eps: float | None = option(None, "stop an image once its data term reaches this MSE", type=float)
    init: str | None = option(None, "starting latent (w/wplus/stylemap); auto = the model's encoder when it has "
                                    "one, else w_avg", choices=INITS)
    encoder: str | None = option(None, "encoder file for `init` encoder / DOMAIN (default: the model card's)",
                                 path=True)
    encoder_passes: int | None = option(None, "iterative encoder: passes to run (default: as trained; 1 = its first "
                                               "pass alone)", type=int)
    seed: int = option(0, "", type=int, show_default=True)
    batch: int = option(4, "images optimised together", type=int, show_default=True)
    crop: str = option("none", "what to do with non-square inputs", choices=CROPS, show_default=True)
    lpips_backbone: str | None = option(None, "torchvision VGG16 ImageNet weights for LPIPS (no download happens)",
                                        path=True)
    tune: bool = option(False, "pivotal tuning (invert): after the latent (the pivot; PTI's W, 450 steps, lr 5e-3 unless "
                               "`space`/`steps`/`lr` say otherwise), fine-tune the generator to the image and store the "
                               "change with the latent", type=bool)
    tune_mode: str = option("lowrank", "what `tune` stores: a low-rank change of each conv weight, or every weight",
                            choices=TUNE_MODES, show_default=True)
    tune_rank: int = option(4, "rank of the low-rank change (0 = none)", type=int, show_default=True)
    tune_steps: int = option(350, "generator tuning steps", type=int, show_default=True)
    tune_lr: float | None = option(None, "generator tuning learning rate (default: 1e-2 lowrank, PTI's 3e-4 full)",
                                   type=float)
    tune_locality: float = option(0.1, "weight of the term that keeps random latents near the pivot rendering as "
                                       "before (0 = off)", type=float, show_default=True)
    align: bool = option(False, "find the face in each photo and crop it like FFHQ first (invert, encode, pulse; "
                                "the [faces] extra)", type=bool)
    face: int | None = option(None, "with `align`: which face when there are several (1 = the largest)", type=int)
    landmarks: str | None = option(None, "with `align`: your own dlib 68-point shape predictor (.dat)", path=True)
    paste_back: bool = option(False, "with `align`: also write NAME.pasted.png, the result put back into the photo",
                              type=bool)
    precision: str = option("fp32", "the generator's arithmetic: bf16 autocast (latents and optimiser state stay fp32) "
                                    "or fp32; auto = bf16 on a CPU with AMX/AVX512-BF16 or a CUDA GPU with bf16",
                            choices=PRECISIONS, show_default=True)
    mask: Any = option(None, "inpainting: known pixels white, unknown black (or an alpha channel); the model's or "
                             "the observation's size (Python: also a [h, w] tensor in [0, 1])", path=True)
    operator: str | None = option(None, "what else the observation lost: gray = colourisation (the result is "
                                        "matched through its luminance)", choices=OPERATORS)
    noise_level: float | None = option(None, "denoising: std of the observation's noise in [0, 1] units; the data "
                                             "terms count σ₀²/(σ₀²+σ²) as much (σ₀ = 0.02)", type=float)
    ilo: bool = option(False, "intermediate-layer optimisation (ILO, Daras et al. 2021) after the latent: then the "
                              "feature maps layer by layer, each within an ℓ1 ball around the layer before's range",
                       type=bool)
    ilo_steps: str | None = option(None, "with `ilo`: steps per intermediate layer, from the 4×4 layer up "
                                         f"(default: {ILO_STEPS} at 64², one more stage of the same per ×4 in size)")
    ilo_radius: str = option(ILO_RADIUS, "with `ilo`: ℓ1 radius per layer as a fraction of that layer's ℓ1 norm "
                                         "(one value, or one per layer)", show_default=True)
    ilo_lr: float = option(ILO_LR, "with `ilo`: learning rate of the layer stages (ILO's 0.1)", type=float,
                           show_default=True)
    ilo_joint: bool = option(False, "with `ilo`: the layer stages move the latent too, as ILO's code does (default: "
                                    "the features alone, the latent as its search left it)", type=bool)
    ilo_latent: str = option("w", "with `ilo`: the latent search before the layers: w (one w from w_avg, measured "
                                  "best; explicit options still apply) or job (the job's own search, e.g. PULSE's Z+)",
                             choices=ILO_LATENTS, show_default=True)
    lpips_net: str = option("vgg", "LPIPS network", cli=False)
    frames: int = option(0, "record about this many frames of the optimisation (0 = none)", cli=False)
    frame_every: int = option(0, "record a frame every k steps (overrides frames)", cli=False)
    progress: bool = option(True, "show a progress bar", cli=False)
    callback: Callable[[int, dict, dict], None] | None = option(
        None, "(step, record, per-image terms) after each step", cli=False)
    preview: Callable[[int, torch.Tensor], None] | None = option(
        None, "(step, this step's images [B, 3, R, R] in [0, 1]) after each step: live views", cli=False)
    extra: dict[str, Any] = field(default_factory=dict, metadata={"cli": False,
                                                                  "help": "lr_rampup, latent_noise, noise_renorm …"})

    @classmethod
    def of(cls, options: "JobOptions | None" = None, **overrides: Any) -> "JobOptions":
        """``options`` (or the defaults) with keyword overrides; unknown names are one clear error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise OptinvError(f"unknown job option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        opts = replace(options or cls(), **overrides)
        opts.validate()
        return opts

    def validate(self) -> None:
        """Checks that do not need the model (the rest happen when the job resolves its settings)."""
        if not isinstance(self.batch, int) or self.batch < 1:
            raise OptinvError(f"`batch` must be ≥ 1, got {self.batch}")
        check_steps(self.steps)
        if self.encoder_passes is not None and (not isinstance(self.encoder_passes, int) or self.encoder_passes < 1):
            raise OptinvError(f"`encoder_passes` must be ≥ 1, got {self.encoder_passes}")
        check_seed(self.seed)
        if self.adam_beta2 is not None:
            check_adam_beta2(self.adam_beta2)
        for name in ("lr", "eps"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise OptinvError(f"`{name}` must be a finite number, got {value}")
        if self.lr is not None and self.lr > MAX_LR:
            raise OptinvError(f"`lr` {self.lr:g} is above {MAX_LR:g}, where the optimisers' float32 arithmetic "
                              f"overflows")
        if self.trainable_noise is not None and self.trainable_noise < 0:
            raise OptinvError(f"`trainable_noise` must be ≥ 0 (0 = all layers), got {self.trainable_noise}")
        for name in ("tune_rank", "tune_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise OptinvError(f"`{name}` must be an integer ≥ 0, got {v}")
        check_steps(self.tune_steps, "tune_steps", least=0)
        if self.tune_lr is not None and not self.tune_lr > 0:
            raise OptinvError(f"`tune_lr` must be > 0, got {self.tune_lr}")
        if self.precision not in PRECISIONS:
            raise OptinvError(f"unknown `precision` {self.precision!r} (known: {', '.join(PRECISIONS)})")
        if not self.tune_locality >= 0:
            raise OptinvError(f"`tune_locality` must be ≥ 0, got {self.tune_locality}")
        if self.noise_level is not None and not (math.isfinite(self.noise_level) and self.noise_level >= 0):
            raise OptinvError(f"`noise_level` must be a finite number ≥ 0, got {self.noise_level}")
        if self.operator is not None and self.operator not in OPERATORS:
            raise OptinvError(f"unknown `operator` {self.operator!r} (known: {', '.join(OPERATORS)})")
        if self.ilo_latent not in ILO_LATENTS:
            raise OptinvError(f"unknown `ilo_latent` {self.ilo_latent!r} (known: {', '.join(ILO_LATENTS)})")
        if self.ilo:
            # without `ilo_steps` the stages follow the model's size (checked when it is known)
            radii = len(str(self.ilo_radius).split(",")) if isinstance(self.ilo_radius, str) else 1
            parse_ilo(self.ilo_steps or ",".join(["1"] * radii), self.ilo_radius, self.ilo_lr, self.ilo_joint)
            if self.tune:
                raise OptinvError("`ilo` and `tune` both change what the latent renders with; use one of them")


MAX_LR = 1e30  # Adam's first step divides lr by 0.1 in float32 (max 3.4e38)
MAX_STEPS = 100_000  # ~days on a CPU for a 1024² model: a larger number is a typo
SEED_MAX = 2 ** 63 - 1  # torch.Generator.manual_seed's range (pulse adds the duplicate's number)


def check_steps(steps: int | None, name: str = "steps", least: int = 1) -> None:
    """Step counts of every loop (optimisation, tuning, discovery): at least ``least``, at most
    :data:`MAX_STEPS` (a larger number is a typo that would run for days)."""
    if steps is not None and steps < least:
        raise OptinvError(f"`{name}` must be ≥ {least}, got {steps}")
    if steps is not None and steps > MAX_STEPS:
        raise OptinvError(f"`{name}` {steps:,} is more than the limit {MAX_STEPS:,} (days of work per image): "
                          f"a typo?")


MAX_DUPLICATES = 100  # pulse answers per input: all are held in memory and written at the end


def check_duplicates(duplicates: int) -> None:
    """Pulse's answers per input: 1 … :data:`MAX_DUPLICATES` (100 000 ran unbounded and wrote nothing)."""
    if not isinstance(duplicates, int) or isinstance(duplicates, bool) or not 1 <= duplicates <= MAX_DUPLICATES:
        raise OptinvError(f"`duplicates` must lie in 1..{MAX_DUPLICATES}, got {duplicates}")


def check_seed(seed: int, offset: int = 0) -> None:
    """Seeds are non-negative integers that torch can take (with ``offset`` added: pulse duplicates)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0 or seed + offset > SEED_MAX:
        raise OptinvError(f"`seed` must be an integer between 0 and {SEED_MAX - offset} (2**63 - 1"
                          f"{f' - {offset}' if offset else ''}), got {seed}")


def cli_fields() -> list:
    """The fields the CLI offers as options, in the order ``--help`` lists them."""
    return [f for f in fields(JobOptions) if f.metadata.get("cli", True)]


# ------------------------------------------------------------------------------ resolution
# PTI (Roich et al. 2021): the pivot is a W latent found in 450 steps at lr 5e-3. Tuning: 350 steps at
# lr 3e-4 for every weight; a low-rank change starts at zero (B = 0) and needs a larger step (measured
# on the embedded model, rank 4, 50 steps: +4.6 dB at lr 1e-2, +0.3 dB at lr 3e-4).
PTI_PIVOT = {"space": "w", "steps": 450, "lr": 5e-3, "adam_beta2": 0.999}
TUNE_LR = {"lowrank": 1e-2, "full": 3e-4}
SETTINGS_KEYS = ("space", "recipe", "steps", "lr", "schedule", "optimizer", "adam_beta2", "noise", "trainable_noise",
                 "eps", "init")


def merged_options(job: str, opts: JobOptions, g: Generator) -> dict[str, Any]:
    """Job defaults < model card recipe < PTI's pivot (with `tune`) or ILO's latent search (with `ilo`,
    `ilo_latent` w) < preset < explicit options."""
    merged = dict(JOB_DEFAULTS[job])
    card_recipe = g.card.get("default_recipes", {}).get(job)
    if card_recipe:
        merged["fallback_recipe"] = card_recipe if job == "invert" else merged.get("fallback_recipe")
        if job != "invert":
            merged["recipe"] = card_recipe
    if opts.tune:
        merged.update(PTI_PIVOT)
    if opts.ilo and opts.ilo_latent == "w":
        merged.update(ILO_LATENT)
        if job in ILO_LATENT_RECIPES:
            merged["recipe"] = ILO_LATENT_RECIPES[job]
    if opts.preset:
        p = preset(opts.preset)
        p.pop("source", None)
        merged.update(p)
        merged["fallback_recipe"] = None  # a preset never silently changes its recipe
    for key in SETTINGS_KEYS:
        v = getattr(opts, key)
        if v is not None:
            merged[key] = v
            if key == "recipe":
                merged["fallback_recipe"] = None
    merged.update(opts.extra)
    return merged


def tune_settings(opts: JobOptions) -> TuneSettings:
    """Stage 2 of `tune` (pivotal tuning) from the job options."""
    lr = opts.tune_lr if opts.tune_lr is not None else TUNE_LR[opts.tune_mode]
    s = TuneSettings(steps=opts.tune_steps, lr=lr, mode=opts.tune_mode, rank=opts.tune_rank,
                     locality=opts.tune_locality, seed=opts.seed, progress=opts.progress)
    s.validate()
    return s


def lpips_for(recipe: str, opts: JobOptions, device: torch.device, fallback: str | None,
              notes: list[str]) -> tuple[str, Callable | None]:
    """Build LPIPS if the recipe names it; fall back (with a note) only for job defaults."""
    objective = build_objective(recipe)
    if not objective.needs("lpips"):
        return recipe, None
    from losses.perceptual import LPIPSLoss, LPIPSUnavailable, make_lpips

    try:
        return recipe, LPIPSLoss(make_lpips(opts.lpips_net, opts.lpips_backbone)).to(device)
    except LPIPSUnavailable as e:
        if fallback:
            notes.append(f"LPIPS backbone not available, using recipe {fallback} (give `lpips_backbone` for {recipe})")
            return fallback, None
        raise OptinvError(str(e)) from None


def optimizer_settings(m: dict[str, Any], opts: JobOptions) -> Settings:
    """The optimiser's Settings from merged options; GIF frames spread over the resolved steps."""
    keys = Settings.__dataclass_fields__.keys()
    s = Settings(**{k: v for k, v in m.items() if k in keys})
    s.seed, s.progress = opts.seed, opts.progress
    s.frame_every = opts.frame_every or (max(1, s.steps // opts.frames) if opts.frames > 0 else 0)
    s.validate()
    return s
