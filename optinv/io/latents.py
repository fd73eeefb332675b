"""The latent file (``NAME.latent.pt``): the one place that builds, checks, reads and writes it.

A latent record says which image a generator makes: the space and its tensors, the noise
maps, the model it belongs to, and how it was found. Every command that writes or reads a
latent goes through this module, so a new field (an alignment transform, a tuning delta) or
a new file format (NVIDIA ``projected_w.npz``, rosinality projector ``.pt``) lands here once.

On disk a record is a plain dict of tensors, strings and numbers saved with ``torch.save``
and read with ``torch.load(weights_only=True)``; nothing in the file can run code.

Example::

    rec = load_latent("out/face.latent.pt")          # checked: keys, shapes, dtypes, finite
    g = generator_for(rec)                            # the model the record names
    image = render_latent(g, rec)                     # [1, 3, R, R] in [0, 1], as the job saw it
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence, TypedDict

import torch

from optinv.io.checkpoints import load_generator, model_id
from optinv.errors import OptinvError
from optinv.io.fileio import atomic_torch_save, load_tagged
from optinv.engine.generator import Generator
from optinv.io.ranges import to_unit
from optinv.engine.spaces import SPACES, LatentSpace, StyleMapSpace, WPlusSpace, WSpace, ZPlusSpace
from optinv.engine.ilo import render as render_ilo
from optinv.engine.ilo import validate_ilo
from optinv.engine.tuning import tuned_generator, validate_tuning

LATENT_FORMAT = "optinv-latent"
LATENT_VERSION = 1
WRITERS = "optinv invert/pulse/paint/encode"


class ModelRef(TypedDict):
    """Which generator a latent belongs to: ``id`` is a hash of its weights (see model_id)."""

    id: str
    name: str
    source_file: str
    resolution: int


class LatentRecord(TypedDict, total=False):
    """One image's latent as saved. Required: format … wplus; the rest is optional.

    - ``tensors``: the space's own tensors, batch of 1: ``w`` [1, D]; ``wplus`` [1, L, D];
      ``z`` [1, 1 or L, D]; ``maps.i`` [1, D, h_i, h_i] for i < L.
    - ``noise``: one [1, 1, h, h] map per noise input of the generator.
    - ``wplus``: the per-layer vectors [L, D] as rendered (what edits and fits read).
    - ``fit_mean``/``fit_std``: the Gaussian fit a zplus latent was rendered with.
    - ``alignment``: how the input was warped before inversion (to paste the result back).
    - ``tuning``: a generator weight delta applied where the latent is rendered.
    - ``ilo``: intermediate-layer features the image is rendered from (:mod:`optinv.engine.ilo`).
    """

    format: str
    version: int
    space: str
    tensors: dict[str, torch.Tensor]
    noise: list[torch.Tensor]
    model: ModelRef
    wplus: torch.Tensor
    recipe: str
    settings: dict[str, Any]
    space_options: dict[str, Any]
    fit_mean: torch.Tensor
    fit_std: torch.Tensor
    alignment: dict[str, Any]
    tuning: dict[str, Any]
    ilo: dict[str, Any]


REQUIRED = ("space", "tensors", "noise", "model", "wplus")


# ----------------------------------------------------------------------------- building
def model_ref(g: Generator) -> ModelRef:
    """The record's ``model`` entry for generator ``g``."""
    return {"id": model_id(g), "name": g.card.get("name", ""), "source_file": g.card.get("source_file", ""),
            "resolution": g.size}


def new_record(space: str, tensors: dict[str, torch.Tensor], noise: Sequence[torch.Tensor], model: ModelRef,
               wplus: torch.Tensor, *, recipe: str = "", settings: dict[str, Any] | None = None,
               space_options: dict[str, Any] | None = None, **optional: Any) -> LatentRecord:
    """A record from its parts (batch of 1); ``optional`` takes fit_mean/fit_std, alignment, tuning."""
    unknown = set(optional) - set(LatentRecord.__annotations__)
    if unknown:
        raise OptinvError(f"unknown latent record field(s): {', '.join(sorted(unknown))}")
    rec: LatentRecord = {"format": LATENT_FORMAT, "version": LATENT_VERSION, "space": space, "tensors": dict(tensors),
                         "noise": list(noise), "model": model, "recipe": recipe, "settings": settings or {},
                         "space_options": space_options or {}}
    rec.update(optional)  # type: ignore[typeddict-item]
    rec["wplus"] = wplus
    return rec


def record_from_space(g: Generator, space: LatentSpace, latent: dict[str, torch.Tensor], noise: Sequence[torch.Tensor],
                      k: int, *, recipe: str, settings: dict[str, Any], space_options: dict[str, Any]) -> LatentRecord:
    """Row ``k`` of a batch of latents found in ``space`` (``latent``: its tensors, batch first)."""
    tensors = {name: v[k: k + 1].clone() for name, v in latent.items()}
    optional: dict[str, Any] = {}
    if space.name == "zplus" and hasattr(space, "fit_mean"):
        optional = {"fit_mean": space.fit_mean.cpu().clone(), "fit_std": space.fit_std.cpu().clone()}
    rec = new_record(space.name, tensors, [n[k: k + 1].clone() for n in noise], model_ref(g), torch.empty(0),
                     recipe=recipe, settings=settings, space_options=space_options, **optional)
    with torch.no_grad():
        rec["wplus"] = to_space(g, rec).layer_vectors().detach().cpu()[0]
    return rec


def record_from_codes(template: LatentRecord, noise: Sequence[torch.Tensor], wplus: torch.Tensor | None = None,
                      maps: Sequence[torch.Tensor] | None = None) -> LatentRecord:
    """An edited code (W+ [L, D] or maps [D, h, w] per layer) saved for the template's model."""
    if maps is None:
        if wplus is None:
            raise OptinvError("an edited latent needs W+ vectors or style maps")
        space, tensors, vectors = "wplus", {"wplus": wplus[None].clone()}, wplus.clone()
    else:
        space = "stylemap"
        tensors = {f"maps.{i}": m[None].clone() for i, m in enumerate(maps)}
        vectors = torch.stack([m.mean(dim=(1, 2)) for m in maps]).clone()
    kept = {"tuning": template["tuning"]} if "tuning" in template else {}  # drawn by the same tuned generator
    return new_record(space, tensors, [n[None].clone() for n in noise], template["model"], vectors,
                      recipe=template.get("recipe", ""), settings={"edited_from": template.get("settings", {})}, **kept)


# ----------------------------------------------------------------------------- checking
def _tensor(x: Any, what: str, dims: int | None = None, finite: bool = True) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise OptinvError(f"{what} is not a tensor")
    if not x.is_floating_point():
        raise OptinvError(f"{what} has dtype {x.dtype}, expected a floating-point tensor")
    if dims is not None and x.dim() != dims:
        raise OptinvError(f"{what} has shape {tuple(x.shape)}, expected {dims} dimensions")
    if finite and not torch.isfinite(x).all():
        raise OptinvError(f"{what} contains NaN or Inf values")
    return x


def _space_tensors(rec: LatentRecord, n_latent: int, dim: int, finite: bool) -> None:
    """The space's tensors are there, one image each, with the layer count and width of ``wplus``."""
    space, t = rec["space"], rec["tensors"]
    if not isinstance(t, dict):
        raise OptinvError("'tensors' is not a dict")
    names = {"w": ["w"], "wplus": ["wplus"], "zplus": ["z"],
             "stylemap": [f"maps.{i}" for i in range(n_latent)]}[space]
    missing = [n for n in names if n not in t]
    if missing:
        raise OptinvError(f"{space} latent lacks tensor(s) {', '.join(missing)}")
    expected = {"w": lambda x: x.shape == (1, dim), "wplus": lambda x: x.shape == (1, n_latent, dim),
                "zplus": lambda x: x.dim() == 3 and x.shape[0] == 1 and x.shape[1] in (1, n_latent) and x.shape[2] == dim,
                "stylemap": lambda x: x.dim() == 4 and x.shape[:2] == (1, dim) and x.shape[2] == x.shape[3]}[space]
    for n in names:
        x = _tensor(t[n], f"tensor {n!r}", finite=finite)
        if not expected(x):
            raise OptinvError(f"tensor {n!r} has shape {tuple(x.shape)}, which does not fit a {space} latent "
                              f"of {n_latent} layers × {dim}")


def validate(rec: Any, g: Generator | None = None, finite: bool = True) -> LatentRecord:
    """Check a record's keys, shapes, dtypes and values (and that it fits ``g``, if given).

    ``finite=False`` skips the NaN/Inf check (a diverged run's result is still written, so the
    user can look at it; reading it back refuses it). Raises one :class:`OptinvError` that names the first problem; returns the record.
    """
    if not isinstance(rec, dict) or rec.get("format") != LATENT_FORMAT:
        raise OptinvError(f"not an optinv latent record ({WRITERS} write them)")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise OptinvError(f"latent record lacks key(s) {', '.join(missing)}")
    if rec["space"] not in SPACES:
        raise OptinvError(f"latent record has unknown space {rec['space']!r} (known: {', '.join(SPACES)})")
    if not isinstance(rec["model"], dict) or "id" not in rec["model"]:
        raise OptinvError("latent record's 'model' lacks its 'id'")
    wplus = _tensor(rec["wplus"], "'wplus'", dims=2, finite=finite)
    n_latent, dim = wplus.shape
    _space_tensors(rec, n_latent, dim, finite)
    if not isinstance(rec["noise"], (list, tuple)):
        raise OptinvError("'noise' is not a list of tensors")
    for i, n in enumerate(rec["noise"]):
        x = _tensor(n, f"noise map {i}", dims=4, finite=finite)
        if x.shape[:2] != (1, 1):
            raise OptinvError(f"noise map {i} has shape {tuple(x.shape)}, expected [1, 1, h, w]")
    for key in ("fit_mean", "fit_std"):
        if key in rec and _tensor(rec[key], f"{key!r}", finite=finite).shape[-1] != dim:
            raise OptinvError(f"{key!r} has {rec[key].shape[-1]} dimensions, the latent {dim}")
    if "tuning" in rec:
        validate_tuning(rec["tuning"])
    if "ilo" in rec:
        validate_ilo(rec["ilo"])
    if g is not None:
        fits(rec, g)
    return rec


def fits(rec: LatentRecord, g: Generator) -> None:
    """The record's layer count, width and noise maps match generator ``g``."""
    n_latent, dim = rec["wplus"].shape
    if (n_latent, dim) != (g.n_latent, g.style_dim):
        raise OptinvError(f"latent has {n_latent} layers × {dim}, the model {g.n_latent} × {g.style_dim}")
    sizes = [tuple(b.shape[-2:]) for b in g.noise_list()]
    if [tuple(n.shape[-2:]) for n in rec["noise"]] != sizes:
        raise OptinvError(f"latent has {len(rec['noise'])} noise maps that do not match the model's {len(sizes)}")
    if "tuning" in rec:
        validate_tuning(rec["tuning"], g)
    if "ilo" in rec:
        validate_ilo(rec["ilo"], g)


def check_model(rec: LatentRecord, g: Generator, what: str = "the latent") -> None:
    """The record was made with ``g`` (same weights), or one clear error."""
    if model_id(g) != rec["model"]["id"]:
        why = " (its ILO features only mean something in that generator)" if "ilo" in rec else ""
        raise OptinvError(f"{what} was made with model {rec['model']['id']} ({rec['model'].get('name')}){why}; "
                          f"this model is {model_id(g)}: pass the right `model`")


# ----------------------------------------------------------------------------- files
def save_latent(rec: LatentRecord, path: str | os.PathLike) -> Path:
    """Check and write a record atomically (a crash never leaves half a file)."""
    try:
        validate(rec, finite=False)
    except OptinvError as e:
        raise OptinvError(f"{path}: refusing to write an invalid latent ({e})") from None
    return atomic_torch_save(rec, path)


def latent_bytes(rec: LatentRecord) -> bytes:
    """A checked record as the bytes of a latent file (a download, without a file on disk)."""
    validate(rec, finite=False)
    buf = io.BytesIO()
    torch.save(rec, buf)
    return buf.getvalue()


def load_latent(path: str | os.PathLike, g: Generator | None = None) -> LatentRecord:
    """Read and check a NAME.latent.pt (weights_only): one clear error for any bad file."""
    obj = load_tagged(path, LATENT_FORMAT, "latent file", WRITERS)
    try:
        return validate(obj, g)
    except OptinvError as e:
        raise OptinvError(f"{path}: {e}") from None


def generator_for(rec: LatentRecord, model: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu", what: str = "the latent") -> Generator:
    """The generator a record names (or ``model``), checked to be the one it was made with,
    with the record's tuning delta applied (pivotal tuning), so every render of it matches."""
    g = load_generator(model or rec["model"].get("source_file") or None, device=device)
    check_model(rec, g, what)
    fits(rec, g)
    return tuned_generator(g, rec.get("tuning"))


# ----------------------------------------------------------------------------- other projects' files
def from_foreign(f: Any, g: Generator) -> LatentRecord:
    """A :class:`optinv.io.latent_formats.Foreign` (NVIDIA / rosinality code) as a record for ``g``."""
    return new_record(f.space, f.tensors, f.noise, model_ref(g), f.wplus,
                      settings={"imported_from": f.source, "file": f.file})


def open_latent(spec: str | os.PathLike, model: str | os.PathLike | None = None,
                device: str | torch.device = "cpu", what: str | None = None) -> tuple[LatentRecord, Generator]:
    """Any latent file and its generator: optinv's own (checked against the model it names, or
    ``model``), NVIDIA ``projected_w.npz`` or a rosinality projector ``.pt`` (``FILE:IMAGE`` for one
    of several; these name no model, so they belong to ``model``, by default the embedded one)."""
    from optinv.io.latent_formats import read_foreign, sniff, split_key

    path, _ = split_key(spec)
    if not path.is_file():
        raise OptinvError(f"{path}: no such file")
    if path.suffix.lower() != ".npz" and sniff(path) == "optinv":
        rec = load_latent(path)
        return rec, generator_for(rec, model, device=device, what=what or str(path))
    g = load_generator(model, device=device)
    return from_foreign(read_foreign(spec, g), g), g


# ----------------------------------------------------------------------------- rendering
def to_space(g: Generator, rec: LatentRecord) -> LatentSpace:
    """The record as the latent space it was found in (batch of 1, on g's device)."""
    dev = g.w_avg.device
    t = {k: v.to(dev) for k, v in rec["tensors"].items()}
    name = rec["space"]
    if name == "w":
        return WSpace(g, t["w"])
    if name == "wplus":
        return WPlusSpace(g, t["wplus"])
    if name == "zplus":
        opt = rec.get("space_options", {})
        fit = {"mean": rec["fit_mean"].to(dev), "std": rec["fit_std"].to(dev)} if "fit_mean" in rec else None
        return ZPlusSpace(g, t["z"], tile=bool(opt.get("tile", False)), mapping=opt.get("mapping", "gaussian"), fit=fit)
    if name == "stylemap":
        return StyleMapSpace.from_maps(g, [t[f"maps.{i}"] for i in range(g.n_latent)])
    raise OptinvError(f"latent file has unknown space {name!r}")


def render_inputs(g: Generator, rec: LatentRecord) -> tuple[torch.Tensor | list[torch.Tensor], list[torch.Tensor]]:
    """(styles, noise) for ``g.synthesis``: what the job rendered for this record."""
    dev = g.w_avg.device
    with torch.no_grad():
        return to_space(g, rec).to_styles(), [n.to(dev) for n in rec["noise"]]


def render_latent(g: Generator, rec: LatentRecord) -> torch.Tensor:
    """Re-render one saved latent ([1, 3, R, R] in [0, 1]) exactly as the job rendered its result.

    ``g`` may be the base model or the one :func:`generator_for` returned: a record's tuning
    delta is applied once either way."""
    g = tuned_generator(g, rec.get("tuning"))
    styles, noise = render_inputs(g, rec)
    with torch.no_grad():
        if "ilo" in rec:
            return to_unit(render_ilo(g, rec["ilo"], styles, noise))
        return to_unit(g.synthesis(styles, noise=noise))


def codes(rec: LatentRecord) -> tuple[torch.Tensor | None, list[torch.Tensor] | None, list[torch.Tensor]]:
    """(W+ [L, D] or None, style maps [D, h, w] per layer or None, noise [1, h, w] per input) to edit.

    StyleMaps stay spatial; every other space is given as the W+ vectors it rendered.
    """
    noise = [n[0] for n in rec["noise"]]
    if rec["space"] == "stylemap":
        t = rec["tensors"]
        n_maps = len([k for k in t if k.startswith("maps.")])
        return None, [t[f"maps.{i}"][0] for i in range(n_maps)], noise
    return rec["wplus"].clone(), None, noise


__all__ = ["LATENT_FORMAT", "LatentRecord", "ModelRef", "model_ref", "model_id", "new_record", "record_from_space",
           "record_from_codes", "validate", "fits", "check_model", "save_latent", "load_latent", "generator_for", "open_latent", "from_foreign",
           "to_space", "render_inputs", "render_latent", "codes"]
