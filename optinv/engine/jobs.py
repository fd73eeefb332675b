"""The jobs as a Python API: ``invert``, ``pulse``, ``paint`` and ``encode``.

Each takes file paths, decoded files (:class:`optinv.engine.inputs.Decoded`) or image tensors
([C, H, W] in [0, 1]: the contract in :mod:`optinv.io.ranges`), loads them, chooses the forward operator,
runs the shared engine (:func:`optinv.engine.solve.solve`) and returns one :class:`ItemResult` per
input (and per duplicate, for pulse). Options come as a :class:`JobOptions` and/or keyword
arguments of the same names (``invert(["a.png"], steps=30, space="w")``). Writing files is
:mod:`optinv.io.outputs`' job; the CLI only parses options and calls these.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch

from optinv.engine import warmstart
from optinv.engine.device import get_model, resolve_device
from optinv.errors import OptinvError
from optinv.engine.generator import Generator
from optinv.engine.inputs import Source, attach_notes, load_groups, load_many
from optinv.io.latents import model_id, render_latent
from optinv.engine.operators import Identity, downscale_operator, job_operator
from optinv.engine.optimize import Settings
from optinv.io.names import duplicate_names
from optinv.engine.options import JobOptions, check_duplicates, check_seed, merged_options
from optinv.faces.photo import align_sources, attach_alignment
from optinv.engine.results import ItemResult, measure
from optinv.engine.solve import latent_record, solve
from optinv.engine.spaces import StyleMapSpace, make_space, parse_map_sizes

Model = Generator | str | None


def _options(options: JobOptions | None, overrides: dict[str, Any]) -> JobOptions:
    return JobOptions.of(options, **overrides) if overrides else (options or JobOptions())


def invert(images: Sequence[Source], model: Model = None, device: str | None = "auto",
           options: JobOptions | None = None, **settings: Any) -> list[ItemResult]:
    """Find latents whose images match ``images``.

    Args:
        images: files, decoded files or [3, H, W] tensors in [0, 1] (a [N, 3, H, W] tensor is N images),
            resized to the model's R×R.
        model: a :class:`Generator`, a file or a shipped model name (None: the embedded default).
        device: ``auto`` (cuda > mps > cpu), ``cpu``, ``cuda``…
        options / settings: :class:`JobOptions`, or its fields as keywords (``steps=300, space="w"``).

    Returns:
        One :class:`ItemResult` per image: ``image`` [3, R, R] in [0, 1], ``latent`` (the latent
        file's record), ``metrics`` (psnr, steps, seconds…).

    Raises:
        OptinvError: an unreadable file, an image tensor of the wrong shape or range, a bad option.

    >>> import torch
    >>> from optinv import Generator
    >>> g = Generator(16, 32, 2, channels={4: 16, 8: 8, 16: 8})
    >>> r = invert([torch.rand(3, 16, 16)], model=g, device="cpu", steps=2, space="w", progress=False)
    >>> tuple(r[0].image.shape), r[0].metrics["steps"]
    ((3, 16, 16), 2)
    >>> invert([torch.rand(16, 16)], model=g, device="cpu", steps=1)
    Traceback (most recent call last):
    optinv.errors.OptinvError: an input image tensor must be [C, H, W] (or [N, C, H, W]) with C = 3 (RGB) or 4 (RGBA), got shape (16, 16)
    """
    opts = _options(options, settings)
    g = get_model(model, resolve_device(device))
    notes: dict[str, list[str]] = {}
    images, alignments = align_sources(images, g.size, opts, notes)  # `align`: photos → FFHQ crops
    targets, names = load_many(images, g.size, False, opts.crop, notes)
    op = _operator(Identity(), g.size, g.size, opts)
    return attach_alignment(attach_notes(solve("invert", g, targets, names, op, opts), notes), alignments)


def _operator(base: torch.nn.Module, model_size: int, observed_size: int, opts: JobOptions) -> torch.nn.Module:
    """The job's operator with `mask`, `operator` and `noise_level` composed around it."""
    return job_operator(base, model_size, observed_size, mask=opts.mask, operator=opts.operator,
                        noise_level=opts.noise_level)


def pulse(lowres: Sequence[Source], scale: int | None = None, model: Model = None, device: str | None = "auto",
          options: JobOptions | None = None, duplicates: int = 1, **settings: Any) -> list[ItemResult]:
    """PULSE super-resolution: high-res images that downscale (×``scale``) to the inputs.

    Args:
        lowres: files, decoded files or [3, h, w] tensors in [0, 1]; h·scale must be the model's R.
        scale: the upscaling factor (None: R / h).
        duplicates: K answers per input from K seeds (named NAME_dup0 … NAME_dup{K-1} when K > 1).

    Returns:
        ``duplicates`` :class:`ItemResult` per input, in input order: ``image`` [3, R, R] and
        ``observed`` (its downscale, [3, h, w]) in [0, 1]; ``metrics["within_eps"]``.

    >>> import torch
    >>> from optinv import Generator
    >>> g = Generator(16, 32, 2, channels={4: 16, 8: 8, 16: 8})
    >>> r = pulse([torch.rand(3, 4, 4)], scale=4, model=g, device="cpu", steps=2, duplicates=2, progress=False)
    >>> [x.name for x in r], tuple(r[0].observed.shape)
    (['image000_dup0', 'image000_dup1'], (3, 4, 4))
    """
    opts = _options(options, settings)
    check_duplicates(duplicates)
    g = get_model(model, resolve_device(device))
    notes: dict[str, list[str]] = {}
    if opts.align and (scale is None or scale < 1 or g.size % scale):
        raise OptinvError(f"pulse with `align` needs `scale` (a divisor of {g.size}): the face is cropped to "
                          f"{g.size}/scale pixels, then super-resolved")
    check_seed(opts.seed, duplicates - 1)
    if duplicates > 1 and opts.ilo and merged_options("pulse", opts, g)["space"] != "zplus":
        raise OptinvError("`duplicates` with `ilo`: ILO's latent search starts every duplicate at the same latent, so "
                          "all would be one answer; give `ilo_latent` job (PULSE's search, one z per duplicate)")
    lowres, alignments = align_sources(lowres, g.size // scale if opts.align else 0, opts, notes)
    groups = load_groups(lowres, None, False, opts.crop, notes)
    for _, targets, _ in groups:  # every size is checked before any work
        side = targets.shape[-1]
        if scale is not None and side * scale != g.size:
            raise OptinvError(f"input is {side}×{side} and `scale` {scale} gives {side * scale}², but the model makes "
                              f"{g.size}²: use `scale` {g.size // side}" if g.size % side == 0 else
                              f"input is {side}×{side}; it must divide the model resolution {g.size}")
        _operator(downscale_operator(g.size, side, "the low-res input"), g.size, side, opts)

    def one_size(targets: torch.Tensor, names: list[str]) -> list[ItemResult]:
        side = targets.shape[-1]
        op = _operator(downscale_operator(g.size, side, "the low-res input"), g.size, side, opts)
        rep_targets = targets.repeat_interleave(duplicates, 0)
        rep_names = [r for n in names for r in duplicate_names(n, duplicates)]
        seeds = [opts.seed + d for _ in names for d in range(duplicates)]
        return solve("pulse", g, rep_targets, rep_names, op, opts, seeds=seeds)

    results = _in_input_order(groups, one_size, duplicates)
    return attach_alignment(attach_notes(results, notes), alignments)


def paint(references: Sequence[Source], model: Model = None, device: str | None = "auto",
          options: JobOptions | None = None, **settings: Any) -> list[ItemResult]:
    """Images whose downscale matches an RGBA reference where its alpha is > 0.

    Args:
        references: RGBA files or [4, h, w] tensors in [0, 1] (alpha 0 = free, 1 = match this colour);
            h must divide the model's R.

    Returns:
        One :class:`ItemResult` per reference (``image`` [3, R, R] in [0, 1]).

    >>> import torch
    >>> from optinv import Generator
    >>> g = Generator(16, 32, 2, channels={4: 16, 8: 8, 16: 8})
    >>> ref = torch.zeros(4, 8, 8); ref[0] = 1; ref[3, :4] = 1   # top half red, bottom half free
    >>> r = paint([ref], model=g, device="cpu", steps=2, progress=False)
    >>> tuple(r[0].image.shape)
    (3, 16, 16)
    """
    opts = _options(options, settings)
    if opts.align or opts.paste_back:
        raise OptinvError("paint takes RGBA references, not photos: `align` and `paste_back` are for invert, "
                          "encode and pulse")
    if opts.mask is not None:
        raise OptinvError("paint's alpha already says which pixels are known: draw the hole into the reference's "
                          "alpha instead of giving a `mask`")
    if opts.operator == "gray":
        raise OptinvError("paint matches colours: `operator` gray would throw them away (give invert or pulse a "
                          "gray image to colourise)")
    g = get_model(model, resolve_device(device))
    notes: dict[str, list[str]] = {}
    groups = load_groups(references, None, True, opts.crop, notes)
    for _, refs, names in groups:  # every reference is checked before any work
        if refs.shape[1] != 4:
            raise OptinvError("paint references need an alpha channel (RGBA)")
        for k, n in enumerate(names):
            if float(refs[k, 3].max()) <= 0:
                raise OptinvError(f"{n}: alpha is 0 everywhere, so nothing constrains the result")
        downscale_operator(g.size, refs.shape[-1], "the paint reference")

    def one_size(refs: torch.Tensor, names: list[str]) -> list[ItemResult]:
        op = _operator(downscale_operator(g.size, refs.shape[-1], "the paint reference"), g.size, refs.shape[-1], opts)
        return solve("paint", g, refs[:, :3], names, op, opts, alpha=refs[:, 3:4])

    return attach_notes(_in_input_order(groups, one_size), notes)


def _in_input_order(groups: list[tuple[list[int], torch.Tensor, list[str]]],
                    run: Callable[[torch.Tensor, list[str]], list[ItemResult]], per_input: int = 1) -> list[ItemResult]:
    """Run each size group, then put the results back in the order of the inputs."""
    slots: dict[int, list[ItemResult]] = {}
    for idx, batch, names in groups:
        results = run(batch, names)
        for j, i in enumerate(idx):
            slots[i] = results[j * per_input:(j + 1) * per_input]
    return [r for i in sorted(slots) for r in slots[i]]


def encode(images: Sequence[Source], model: Model = None, device: str | None = "auto",
           options: JobOptions | None = None, **settings: Any) -> list[ItemResult]:
    """Encoder only, no optimisation: the fast path (milliseconds per image).

    Takes the same inputs as :func:`invert`; needs a model that ships an encoder for ``space``
    (``optinv train-encoder`` trains one), else raises :class:`OptinvError` saying so.
    """
    opts = _options(options, settings)
    if opts.mask is not None or opts.operator not in (None, "identity") or opts.noise_level or opts.ilo:
        raise OptinvError("encode runs the encoder alone: `mask`, `operator`, `noise_level` and `ilo` need a "
                          "search (invert, pulse, paint)")
    space_name = opts.space or "wplus"
    if space_name not in ("wplus", "stylemap"):
        raise OptinvError(f"encode predicts wplus or stylemap codes, not `space` {space_name!r}")
    g = get_model(model, resolve_device(device))
    enc = warmstart.require(warmstart.find_encoder(g, space_name, opts.encoder), "encode")
    notes: dict[str, list[str]] = {}
    images, alignments = align_sources(images, g.size, opts, notes)
    targets, names = load_many(images, g.size, False, opts.crop, notes)
    map_sizes = parse_map_sizes(opts.stylemap_res, g.n_latent) if space_name == "stylemap" else None
    settings_used = Settings(steps=1, progress=False)
    results: list[ItemResult] = []
    step = max(1, opts.batch)
    for first in range(0, len(names), step):
        tgt = targets[first:first + step].to(g.w_avg.device)
        t0 = time.perf_counter()
        codes = warmstart.encode(enc, tgt, g, opts.encoder_passes)
        seconds = time.perf_counter() - t0
        if space_name == "stylemap":
            space = StyleMapSpace.from_maps(g, warmstart.initial_maps(codes, map_sizes))
        else:
            space = make_space("wplus", g, warmstart.initial_wplus(codes))
        latent = {k: v.detach().cpu() for k, v in space.named_parameters()}
        noise = [n.expand(tgt.shape[0], -1, -1, -1).cpu() for n in g.noise_list()]
        for k in range(tgt.shape[0]):
            rec = latent_record(g, space, latent, noise, k, "encoder", settings_used, opts, map_sizes)
            rec["settings"] = {"encoder": getattr(enc, "card", {}), "steps": 0}
            image = render_latent(g, rec)[0]
            item = ItemResult(name=names[first + k], job="invert", image=image.cpu(), observed=image.cpu(),
                              target=tgt[k].cpu(), latent=rec, metrics={}, notes=notes.get(names[first + k], []))
            results.append(measure(item, steps=0, batch=tgt.shape[0], seconds=round(seconds / tgt.shape[0], 4),
                                   space=space_name, recipe="encoder"))
    return attach_alignment(results, alignments)


__all__ = ["JobOptions", "ItemResult", "invert", "pulse", "paint", "encode", "solve", "render_latent", "model_id",
           "resolve_device", "get_model"]
