"""Discovered paths on saved latents: W and W+ (every layer's vector), StyleMaps (every pixel's)."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch

from optinv.edit.edits import Editable
from optinv.errors import OptinvError
from optinv.edit.discover.pathsfile import PathSet


def order_note(ps: PathSet, edits: Sequence[tuple[str, float]]) -> str | None:
    """A one-line warning when several edits of a non-commuting (warped) set are combined."""
    if ps.commutes or len({n for n, _ in edits}) < 2:
        return None
    return (f"{ps.method} paths do not commute: the edits are applied in the order given "
            f"({' then '.join(n for n, _ in edits)}) and another order gives another image")


def edit_editable(e: Editable, ps: PathSet, edits: Sequence[tuple[str, float]]) -> Editable:
    """Apply ``edits`` to every style vector of ``e`` (its W+ rows, or each pixel of its maps)."""
    if ps.space != "w":
        raise OptinvError(f"these paths were discovered in {ps.space}; saved latents are W/W+/StyleMap codes: "
                          "discover with --space w to edit them")
    if e.maps is None:
        return replace(e, wplus=ps.apply(e.wplus, edits))
    maps = []
    for m in e.maps:
        d, h, w = m.shape
        flat = m.reshape(d, h * w).t()
        maps.append(ps.apply(flat, edits).t().reshape(d, h, w))
    return replace(e, maps=maps)


def edit_w(w: torch.Tensor, ps: PathSet, edits: Sequence[tuple[str, float]]) -> torch.Tensor:
    """Raw w vectors [N, D] (or W+ [N, L, D]) edited in place of the standardised units."""
    if ps.space != "w":
        raise OptinvError(f"these paths were discovered in {ps.space}, not w")
    shape = w.shape
    return ps.apply(w.reshape(-1, shape[-1]), edits).reshape(shape)


def edit_record(rec, ps: PathSet, edits: Sequence[tuple[str, float]]):
    """A latent record (W/W+/Z+/StyleMap) edited by named paths → a new record (W+ or StyleMap)."""
    from optinv.edit import edits as E

    return E.to_latent(edit_editable(E.from_latent(rec), ps, edits), rec)
