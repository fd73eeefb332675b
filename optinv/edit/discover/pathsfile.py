"""The discovered-paths file (``NAME.paths.pt``): a direction model, its space, names and effects.

``optinv edit LATENT --edit smile=+2 --edit bangs=-1`` reads it. Shifts are in standardised units
of the space the paths were found in (w: per-dimension std of mapped z), positive = more of the
named attribute.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from optinv.engine.bounds import finite_number
from optinv.errors import OptinvError
from optinv.io.fileio import atomic_torch_save, first_line, load_tagged
from optinv.edit.discover.models import Paths, build_paths

FORMAT = "optinv-paths"


@dataclass
class PathSet:
    """A trained direction model with its space's units and the paths' names."""

    paths: Paths
    space: str
    mean: torch.Tensor
    std: torch.Tensor
    names: list[str]
    signs: list[float]
    effects: dict[str, dict[str, float]] = field(default_factory=dict)
    model_id: str = ""
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.paths.method

    @property
    def commutes(self) -> bool:
        """Whether several edits give the same result in any order (linear and curvilinear)."""
        return self.paths.commutes

    def index(self, name: str) -> int:
        if name in self.names:
            return self.names.index(name)
        if name.isdigit() and int(name) < len(self.names):
            return int(name)
        raise OptinvError(f"unknown path {name!r} (known: {', '.join(self.names)})")

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)

    def unstandardise(self, u: torch.Tensor) -> torch.Tensor:
        return self.mean.to(u) + self.std.to(u) * u

    @torch.no_grad()
    def apply(self, x: torch.Tensor, edits: Sequence[tuple[str, float]]) -> torch.Tensor:
        """Latent vectors [N, D] of this set's space edited by ``(name, amount)`` pairs, in that order.

        Linear and curvilinear paths are one translation (in the latent, or in V), so the order
        cannot matter; warped paths are applied one after the other, and the order matters.
        """
        if x.dim() != 2 or x.shape[1] != self.paths.dim:
            raise OptinvError(f"paths act on {self.paths.dim}-dimensional latents, got shape {tuple(x.shape)}")
        shifts = [(self.index(n), float(t) * self.signs[self.index(n)]) for n, t in edits]
        u = self.standardise(x.float())
        if self.method == "curvilinear":
            total: dict[int, float] = {}
            for k, t in shifts:
                total[k] = total.get(k, 0.0) + t
            u = self.paths.shift_many(u, total)
        else:
            for k, t in shifts:
                u = self.paths.shift(u, k, t)
        return self.unstandardise(u).to(x.dtype)


def save_paths(ps: PathSet, path: str | os.PathLike) -> Path:
    params = {n for n, _ in ps.paths.named_parameters()}
    # Learned weights in half precision keep the files small; buffers (the flow's fixed linear map:
    # a rotation, or the map of a start from given directions) stay float32 so the flow stays invertible.
    state = {n: (v.half() if n in params and v.is_floating_point() else v).cpu()
             for n, v in ps.paths.state_dict().items()}
    obj = {"format": FORMAT, "version": 1, "config": ps.paths.config(), "state": state,
           "space": ps.space, "mean": ps.mean.float().cpu(), "std": ps.std.float().cpu(), "names": list(ps.names),
           "signs": [float(s) for s in ps.signs], "effects": ps.effects, "model_id": ps.model_id, "card": ps.card}
    return atomic_torch_save(obj, path)


def _check_numbers(paths: torch.nn.Module, path: str | os.PathLike) -> None:
    """Non-finite weights, or a flow whose fixed map cannot be inverted, would edit into NaN or
    into garbage without a word: refuse such a file at load time."""
    for name, value in paths.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise OptinvError(f"{path}: damaged paths file (non-finite values in {name})")
    flow = getattr(paths, "flow", None)
    if flow is not None and not torch.linalg.cond(flow.rotation.double()) < 1e8:
        raise OptinvError(f"{path}: damaged paths file (the flow's fixed map is not invertible)")


def load_paths(path: str | os.PathLike) -> PathSet:
    obj = load_tagged(path, FORMAT, "paths file", "optinv directions discover")
    try:
        paths = build_paths(obj["config"])
        paths.load_state_dict({n: v.float() if v.is_floating_point() else v for n, v in obj["state"].items()})
    except (KeyError, ValueError, RuntimeError) as e:
        raise OptinvError(f"{path}: damaged paths file ({first_line(e, 120)})") from None
    _check_numbers(paths, path)
    names = list(obj["names"])
    if len(names) != paths.k:
        raise OptinvError(f"{path}: {len(names)} names for {paths.k} paths")
    return PathSet(paths.eval().requires_grad_(False), obj["space"], obj["mean"], obj["std"], names,
                   list(obj["signs"]), dict(obj.get("effects", {})), obj.get("model_id", ""), dict(obj.get("card", {})))


def parse_edits(specs: Sequence[str]) -> list[tuple[str, float]]:
    """``["smile=+2", "bangs=-1"]`` → ``[("smile", 2.0), ("bangs", -1.0)]`` (one clear error otherwise)."""
    out = []
    for s in specs:
        name, sep, amount = s.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = None
        if not sep or not name.strip() or value is None:
            raise OptinvError(f"`edit` must look like NAME=AMOUNT (e.g. smile=+2), got {s!r}")
        out.append((name.strip(), finite_number(value, f"the amount of `edit` {s!r}")))
    return out


def shipped_paths_path(g, method: str | None = None) -> Path:
    """``samples/models/NAME.METHOD.paths.pt`` (the default for edits: curvilinear)."""
    from optinv.io.checkpoints import SAMPLES_MODELS

    from optinv.io.checkpoints import card_name

    name = card_name(g, "")
    return SAMPLES_MODELS / (f"{name}.{method}.paths.pt" if method else f"{name}.paths.pt")


def paths_for(g, spec: str | os.PathLike | None = None) -> PathSet:
    """A paths file by path, by method name (``curvilinear`` → the shipped one), or the default set."""
    from optinv.io.checkpoints import model_id

    p = Path(spec) if spec else shipped_paths_path(g, "curvilinear")
    if spec and not p.exists() and str(spec) in ("linear", "warped", "curvilinear"):
        p = shipped_paths_path(g, str(spec))
    if not p.exists():
        raise OptinvError(f"{p}: no paths file" + ("" if spec else f" for model {g.card.get('name')!r}: "
                                                   "make one with optinv directions discover, or pass --paths FILE"))
    ps = load_paths(p)
    if ps.paths.dim != g.style_dim:
        raise OptinvError(f"{p}: paths act on {ps.paths.dim}-dimensional latents, the model's have {g.style_dim}")
    if ps.model_id and ps.model_id != model_id(g):
        raise OptinvError(f"{p}: paths discovered for another model ({ps.model_id}), not {model_id(g)}")
    return ps
