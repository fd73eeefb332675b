"""Pivotal tuning: fit the generator itself to one photo, around a fixed latent (the pivot).

A latent alone stops at what the generator can draw. Pivotal tuning (Roich et al. 2021) first
finds a pivot latent (stage 1, any space; W by default), then fine-tunes the generator's
weights with the pivot fixed so that G'(pivot) matches the photo (stage 2). A locality
regulariser renders random latents near the pivot with both generators and penalises any
difference, so the rest of latent space (and with it the edit directions) keeps working.

PTI saves a whole generator per photo. Here the change is a :class:`WeightDelta`: per
modulated convolution a low-rank update ``ΔW = B·A`` of its one shared weight (modulation
is applied to activations in :mod:`optinv.engine.generator`, so a delta on that weight acts for
every latent). Rank 0 has no parameters and is the identity; ``mode="full"`` tunes every
synthesis parameter densely, for comparison. The delta is a plain dict of tensors
(:meth:`WeightDelta.to_record`) stored in the latent record; :func:`tuned_generator` turns
a base generator and that dict into the generator that renders the latent.

Example::

    delta = WeightDelta(g, mode="lowrank", rank=4)
    res = tune(g, styles, noise, target, TuneSettings(steps=350), delta=delta)
    g2 = tuned_generator(g, res.record)      # renders res.image exactly
"""

from __future__ import annotations

import copy
import hashlib
import io
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from optinv.errors import OptinvError
from optinv.engine.generator import Generator, ModulatedConv2d
from optinv.engine.precision import autocast
from optinv.io.ranges import to_unit

TUNING_FORMAT = "optinv-tuning"
TUNING_VERSION = 1
MODES = ("lowrank", "full")


# ----------------------------------------------------------------------------- the delta
def conv_weight_names(g: Generator) -> list[str]:
    """Names of the modulated convolution weights (every conv and toRGB), in layer order."""
    return [f"{name}.weight" for name, m in g.named_modules() if isinstance(m, ModulatedConv2d)]


def synthesis_names(g: Generator) -> list[str]:
    """Every parameter that shapes the image for a fixed latent (all but the mapping network)."""
    return [name for name, _ in g.named_parameters() if not name.startswith("style.")]


def _max_rank(shape: torch.Size) -> int:
    return min(shape[1], math.prod(shape[2:]))  # [1, out, in, k, k]: out × (in·k·k)


class WeightDelta(nn.Module):
    """Trainable additive change of a generator's weights: low-rank per conv, or full.

    Low rank: for a conv weight ``[1, out, in, k, k]``, ``ΔW = (B @ A).view(...)`` with
    ``A [r, in·k·k]`` random (seeded) and ``B [out, r]`` zero, so a new delta is exactly zero
    (LoRA). ``r`` is capped by the weight's own rank. Full: a zero tensor per synthesis parameter.
    """

    def __init__(self, g: Generator, mode: str = "lowrank", rank: int = 4, seed: int = 0):
        super().__init__()
        if mode not in MODES:
            raise OptinvError(f"unknown tuning mode {mode!r} (known: {', '.join(MODES)})")
        if mode == "lowrank" and (not isinstance(rank, int) or rank < 0):
            raise OptinvError(f"tuning rank must be an integer ≥ 0, got {rank!r}")
        self.mode, self.rank = mode, rank if mode == "lowrank" else 0
        params = dict(g.named_parameters())
        self.names: list[str] = []
        self.a, self.b, self.full = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        gen = torch.Generator().manual_seed(seed)
        dev = g.w_avg.device
        if mode == "full":
            for name in synthesis_names(g):
                self.names.append(name)
                self.full.append(nn.Parameter(torch.zeros_like(params[name])))
        elif rank > 0:
            for name in conv_weight_names(g):
                shape = params[name].shape
                r = min(rank, _max_rank(shape))
                fan_in = math.prod(shape[2:])
                self.names.append(name)
                self.a.append(nn.Parameter((torch.randn(r, fan_in, generator=gen) / math.sqrt(r)).to(dev)))
                self.b.append(nn.Parameter(torch.zeros(shape[1], r, device=dev)))

    def deltas(self, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """name → additive change, shaped like the parameter in ``like``."""
        if self.mode == "full":
            return dict(zip(self.names, self.full))
        return {n: (b @ a).view(like[n].shape) for n, a, b in zip(self.names, self.a, self.b)}

    def weights(self, g: Generator) -> dict[str, torch.Tensor]:
        """name → tuned parameter (base + delta) for every parameter the delta touches."""
        base = dict(g.named_parameters())
        return {n: base[n] + d for n, d in self.deltas(base).items()}

    def to_record(self, g: Generator, **extra: Any) -> dict[str, Any]:
        """The delta as a plain dict of tensors (what the latent file stores)."""
        from optinv.io.checkpoints import model_id

        rec: dict[str, Any] = {"format": TUNING_FORMAT, "version": TUNING_VERSION, "mode": self.mode,
                               "rank": self.rank, "base_model": model_id(g), "names": list(self.names)}
        if self.mode == "full":
            rec["full"] = [p.detach().cpu().clone() for p in self.full]
        else:
            rec["a"] = [p.detach().cpu().clone() for p in self.a]
            rec["b"] = [p.detach().cpu().clone() for p in self.b]
        rec["id"] = delta_id(rec)
        rec.update(extra)
        return rec

    @classmethod
    def from_record(cls, g: Generator, rec: dict[str, Any]) -> "WeightDelta":
        """A delta from its stored dict, checked against ``g`` (names and shapes)."""
        validate_tuning(rec, g)
        d = cls(g, "lowrank", 0)  # empty; filled from the record below
        d.mode, d.rank = rec["mode"], int(rec["rank"])
        d.names = list(rec["names"])
        dev = g.w_avg.device
        for key, plist in (("a", d.a), ("b", d.b), ("full", d.full)):
            for t in rec.get(key, []):
                plist.append(nn.Parameter(t.to(dev).clone()))
        return d


def validate_tuning(rec: Any, g: Generator | None = None) -> dict[str, Any]:
    """Check a stored tuning dict (and that it fits ``g``): one :class:`OptinvError` if not."""
    if not isinstance(rec, dict) or rec.get("format") != TUNING_FORMAT:
        raise OptinvError("'tuning' is not an optinv tuning delta")
    if rec.get("mode") not in MODES:
        raise OptinvError(f"tuning has unknown mode {rec.get('mode')!r} (known: {', '.join(MODES)})")
    names = rec.get("names")
    keys = ("full",) if rec["mode"] == "full" else ("a", "b")
    if not isinstance(names, list) or any(not isinstance(rec.get(k), list) or len(rec[k]) != len(names) for k in keys):
        raise OptinvError("tuning delta's names and tensors do not match")
    for k in keys:
        for i, t in enumerate(rec[k]):
            if not isinstance(t, torch.Tensor) or not t.is_floating_point() or not torch.isfinite(t).all():
                raise OptinvError(f"tuning tensor {k}[{i}] is not a finite floating-point tensor")
    if g is not None:
        params = dict(g.named_parameters())
        for i, n in enumerate(names):
            if n not in params:
                raise OptinvError(f"tuning delta names {n!r}, which this model does not have")
            shape = params[n].shape
            if rec["mode"] == "full":
                ok = rec["full"][i].shape == shape
            else:
                a, b = rec["a"][i], rec["b"][i]
                ok = (a.dim() == 2 and b.dim() == 2 and a.shape[0] == b.shape[1] and b.shape[0] == shape[1]
                      and a.shape[1] == math.prod(shape[2:]))
            if not ok:
                raise OptinvError(f"tuning delta for {n!r} does not fit the model's {tuple(shape)} weight")
    return rec


def delta_id(rec: dict[str, Any]) -> str:
    """A short hash of a delta's names and tensors: which tuning a generator carries."""
    h = hashlib.sha1()
    for n in rec.get("names", []):
        h.update(n.encode())
    for k in ("a", "b", "full"):
        for t in rec.get(k, []):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def tuned_generator(g: Generator, rec: dict[str, Any] | None) -> Generator:
    """A copy of ``g`` with a stored delta added (``g`` itself when there is none).

    The copy's weights are computed exactly as during tuning (base + delta), so it renders
    the tuned result bit for bit. ``g`` is left untouched. Idempotent: a generator that
    already carries this delta is returned as is; one tuned for another delta is refused.
    """
    if not rec:
        return g
    tid = rec.get("id") or delta_id(rec)
    carried = g.card.get("tuned")
    if carried:
        if carried.get("id") == tid:
            return g
        raise OptinvError("this generator already carries another latent's tuning: start from the base model")
    delta = WeightDelta.from_record(g, rec)
    with torch.no_grad():
        new = delta.weights(g)
    out = copy.deepcopy(g)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for n, w in new.items():
            params[n].copy_(w)
    out.card = {**g.card, "tuned": {"id": tid, "mode": rec["mode"], "rank": rec["rank"],
                                    "base_model": rec.get("base_model")}}
    return out.requires_grad_(False)


def tuning_bytes(rec: dict[str, Any]) -> int:
    """Bytes the delta takes in a file (serialised with torch.save, as in the latent file)."""
    buf = io.BytesIO()
    torch.save({k: v for k, v in rec.items() if k in ("a", "b", "full", "names")}, buf)
    return buf.getbuffer().nbytes


def tensor_bytes(rec: dict[str, Any]) -> int:
    """Bytes of the delta's tensors alone (no container overhead)."""
    return sum(t.numel() * t.element_size() for k in ("a", "b", "full") for t in rec.get(k, []))


# ----------------------------------------------------------------------------- stage 2
@dataclass
class TuneSettings:
    """Stage 2 (generator fine-tuning). Defaults: PTI's 350 steps at lr 3e-4, L2 + LPIPS."""

    steps: int = 350
    lr: float = 3e-4
    mode: str = "lowrank"              # lowrank | full
    rank: int = 4
    l2: float = 1.0                    # weight of the L2 term against the photo
    lpips: float = 1.0                 # weight of LPIPS (used only when an LPIPS model is given)
    locality: float = 0.1              # weight of the locality regulariser (0 = off); PTI: 0.1
    locality_radius: float = 1.0       # sample distance from the pivot, in typical ‖w − w_avg‖ units
    locality_every: int = 1            # apply the locality term on every k-th step (PTI's interval)
    seed: int = 0
    progress: bool = True
    precision: str = "fp32"            # fp32 | bf16 autocast of the renders (the delta and Adam stay fp32)

    def validate(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise OptinvError(f"tuning precision must be fp32 or bf16, got {self.precision!r}")
        if not isinstance(self.steps, int) or self.steps < 0:
            raise OptinvError(f"tuning steps must be an integer ≥ 0, got {self.steps}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise OptinvError(f"tuning lr must be a positive number, got {self.lr}")
        if self.mode not in MODES:
            raise OptinvError(f"unknown tuning mode {self.mode!r} (known: {', '.join(MODES)})")
        if self.mode == "lowrank" and (not isinstance(self.rank, int) or self.rank < 0):
            raise OptinvError(f"tuning rank must be an integer ≥ 0, got {self.rank!r}")
        if not isinstance(self.locality_every, int) or self.locality_every < 1:
            raise OptinvError(f"tuning locality_every must be an integer ≥ 1, got {self.locality_every!r}")
        for name in ("l2", "lpips", "locality", "locality_radius"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise OptinvError(f"tuning {name} must be ≥ 0, got {v}")


@dataclass
class TuneResult:
    record: dict[str, Any]             # the stored delta (WeightDelta.to_record + settings)
    image: torch.Tensor                # [3, R, R] in [0, 1]: the tuned generator's render of the pivot
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


class _Synthesis(nn.Module):
    """``g.synthesis`` as a module's forward, so torch.func.functional_call can swap weights."""

    def __init__(self, g: Generator):
        super().__init__()
        self.g = g

    def forward(self, styles: Any, noise: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.g.synthesis(styles, noise=noise)


def render_with(g: Generator, weights: dict[str, torch.Tensor], styles: Any, noise: Sequence[torch.Tensor]) -> torch.Tensor:
    """Render with some parameters replaced (differentiable in them); [B, 3, R, R] in [0, 1]."""
    from torch.func import functional_call

    out = functional_call(_Synthesis(g), {f"g.{n}": w for n, w in weights.items()}, (styles, list(noise)))
    return to_unit(out.float())


@torch.no_grad()
def typical_distance(g: Generator, n: int = 512, seed: int = 0) -> float:
    """Median ‖mapping(z) − w_avg‖: the scale of the locality regulariser's radius."""
    z = torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(seed)).to(g.w_avg.device)
    return float((g.mapping(z) - g.w_avg).norm(dim=-1).median())


def _cat_styles(a: Any, b: torch.Tensor) -> Any:
    """Batch the pivot's styles (W+ tensor or per-layer list) with W+ vectors ``b`` [1, L, D]."""
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b])
    out = []
    for i, s in enumerate(a):
        v = b[:, i]
        if s.dim() == 4:
            v = v[:, :, None, None].expand(-1, -1, *s.shape[-2:])
        out.append(torch.cat([s, v]))
    return out


def pivot_vectors(styles: Any) -> torch.Tensor:
    """Per-layer vectors [1, L, D] of a pivot (style maps: their spatial mean)."""
    if isinstance(styles, torch.Tensor):
        return styles
    return torch.stack([s.mean(dim=(2, 3)) if s.dim() == 4 else s for s in styles], dim=1)


def tune(g: Generator, styles: Any, noise: Sequence[torch.Tensor], target: torch.Tensor,
         settings: TuneSettings | None = None, *, lpips: Callable | None = None, delta: WeightDelta | None = None,
         callback: Callable[[int, dict], None] | None = None, desc: str = "tune") -> TuneResult:
    """Stage 2 for one image: fine-tune ``g``'s weights (as a delta) so G'(pivot) ≈ target.

    ``styles``: the pivot as ``g.synthesis`` takes it, batch of 1 (W+ [1, L, D] or a list of
    per-layer vectors/maps); ``noise``: its noise maps; ``target`` [1, 3, R, R] in [0, 1].
    Loss: ``l2·MSE (+ lpips·LPIPS)`` against the target, plus ``locality·(MSE (+ LPIPS))``
    between G' and G at a random latent ``w_p + radius·unit(w_z − w_p)`` each step (a fresh
    seeded sample; both rendered with the model's own noise). ``g`` is never modified.
    """
    s = settings or TuneSettings()
    s.validate()
    dev = g.w_avg.device
    if target.dim() != 4 or target.shape[0] != 1:
        raise OptinvError(f"tune takes one target [1, 3, R, R], got {tuple(target.shape)}")
    styles = [x.detach().to(dev) for x in styles] if isinstance(styles, (list, tuple)) else styles.detach().to(dev)
    noise = [n.detach().to(dev) for n in noise]
    target = target.to(dev)
    delta = delta if delta is not None else WeightDelta(g, s.mode, s.rank, seed=s.seed)
    params = list(delta.parameters())
    gen = torch.Generator().manual_seed(s.seed + 1)
    use_locality = s.locality > 0 and s.steps > 0 and bool(params)
    if use_locality:
        w_p = pivot_vectors(styles).detach()
        radius = s.locality_radius * typical_distance(g)
        model_noise = [b.to(dev) for b in g.noise_list()]
        batch_noise = [torch.cat([n, m]) for n, m in zip(noise, model_noise)]
    opt = torch.optim.Adam(params, lr=s.lr) if params else None
    bar = None
    if s.progress and s.steps > 0 and params:
        from optinv.engine.progress import progress
        bar = progress(s.steps, desc=desc)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    locality = (w_p, radius, model_noise, batch_noise, gen) if use_locality else None
    for step in range(s.steps if params else 0):
        this_locality = locality if step % s.locality_every == 0 else None
        loss, terms = _tune_loss(g, delta.weights(g), styles, noise, target, s, lpips, this_locality)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        record = {"step": step, "loss": loss.item(), **{k: v.item() for k, v in terms.items()}}
        history.append(record)
        if callback is not None:
            callback(step, record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({"loss": f"{record['loss']:.4g}"} | {k: f"{v:.4g}" for k, v in record.items()
                                                               if k in terms})
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    record = delta.to_record(g, settings={k: v for k, v in asdict(s).items() if k != "progress"})
    image = render_tuned(tuned_generator(g, record), styles, noise)[0]
    if not torch.isfinite(image).all():
        raise OptinvError("generator tuning diverged (non-finite image): try a smaller tuning lr")
    return TuneResult(record=record, image=image.cpu(), seconds=seconds, history=history)


def _tune_loss(g: Generator, weights, styles: Any, noise: Sequence[torch.Tensor], target: torch.Tensor,
               s: TuneSettings, lpips: Callable | None, locality: tuple | None) -> tuple[torch.Tensor, dict]:
    """One step's loss: fit the target, and (with ``locality``) keep a random nearby latent as it was."""
    use_lpips = lpips is not None and s.lpips > 0
    dev = g.w_avg.device
    if locality is not None:
        w_p, radius, model_noise, batch_noise, gen = locality
        with torch.no_grad():
            z = torch.randn(1, g.style_dim, generator=gen).to(dev)
            d = g.mapping(z)[:, None] - w_p
            w_r = w_p + radius * d / d.norm(dim=-1, keepdim=True).clamp_min(1e-8)
            with autocast(s.precision, dev):
                before = to_unit(g.synthesis(w_r, noise=model_noise).float())
        with autocast(s.precision, dev):  # renders only: the delta, its gradient's sum and Adam stay fp32
            both = render_with(g, weights, _cat_styles(styles, w_r), batch_noise)
        image, moved = both[:1], both[1:]
    else:
        with autocast(s.precision, dev):
            image = render_with(g, weights, styles, noise)
    terms = {"L2": (image - target).pow(2).mean()}
    loss = s.l2 * terms["L2"]
    if use_lpips:
        terms["LPIPS"] = lpips(image, target).mean()
        loss = loss + s.lpips * terms["LPIPS"]
    if locality is not None:
        loc = (moved - before).pow(2).mean()
        if use_lpips:
            loc = loc + lpips(moved, before).mean()
        terms["LOCALITY"] = loc
        loss = loss + s.locality * loc
    return loss, terms


@torch.no_grad()
def render_tuned(g: Generator, styles: Any, noise: Sequence[torch.Tensor]) -> torch.Tensor:
    """Render with a (tuned) generator, [B, 3, R, R] in [0, 1]: the one path every result takes."""
    return to_unit(g.synthesis(styles, noise=list(noise)))


__all__ = ["MODES", "TUNING_FORMAT", "WeightDelta", "TuneSettings", "TuneResult", "tune", "tuned_generator",
           "validate_tuning", "delta_id", "tuning_bytes", "tensor_bytes", "conv_weight_names", "synthesis_names",
           "render_with", "render_tuned", "typical_distance", "pivot_vectors"]
