"""Spaces and the optimisation loop on a small generator made here."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import tiny_generator
from losses.recipe import build_objective
from optinv.engine import jobs
from optinv.errors import OptinvError
from optinv.engine.generator import Generator
from optinv.engine.operators import Identity
from optinv.engine.optimize import Problem, Settings, run
from optinv.engine.spaces import default_map_sizes, make_space, parse_map_sizes


def targets_from(g: Generator, n: int, seed: int = 1) -> torch.Tensor:
    z = torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return (g(z) + 1) / 2


@pytest.mark.parametrize("name", ["w", "wplus", "zplus", "stylemap"])
def test_space_shapes(tiny32: Generator, name: str) -> None:
    sp = make_space(name, tiny32, batch=3)
    vecs = sp.layer_vectors()
    assert vecs.shape == (3, tiny32.n_latent, tiny32.style_dim)
    img = tiny32.synthesis(sp.to_styles())
    assert img.shape == (3, 3, 32, 32)


def test_zplus_stays_on_the_sphere(tiny32: Generator) -> None:
    g = tiny32
    sp = make_space("zplus", g, batch=2, seed=3)
    problem = Problem(target=targets_from(g, 2), operator=Identity())
    run(g, sp, problem, build_objective("100*L2+0.05*GEOCROSS"), Settings(steps=5, lr=0.4, progress=False))
    norms = sp.z.detach().norm(dim=-1)
    assert torch.allclose(norms, torch.full_like(norms, math.sqrt(g.style_dim)), atol=1e-4)


def test_stylemap_with_one_by_one_maps_renders_like_wplus(tiny32: Generator) -> None:
    g = tiny32
    wplus = g.mapping(torch.randn(2, g.n_latent, g.style_dim))
    a = make_space("wplus", g, wplus)
    b = make_space("stylemap", g, wplus, map_sizes=[1] * g.n_latent)
    c = make_space("stylemap", g, wplus)  # default sizes: constant maps from the same W+
    with torch.no_grad():
        ref = g.synthesis(a.to_styles())
        assert (g.synthesis(b.to_styles()) - ref).abs().max() <= 1e-5
        assert (g.synthesis(c.to_styles()) - ref).abs().max() <= 1e-5


def test_style_map_resize_is_bilinear_interpolation() -> None:
    from optinv.engine.generator import _fit_style

    for src, dst in [((4, 4), (64, 64)), ((3, 5), (17, 8)), ((8, 8), (8, 8)), ((2, 2), (3, 3))]:
        maps = torch.randn(2, 5, *src)
        ref = torch.nn.functional.interpolate(maps, size=dst, mode="bilinear", align_corners=False)
        out = _fit_style(maps, dst)
        assert out.shape == ref.shape and out.is_contiguous()
        assert (out - ref).abs().max() <= 1e-5


def test_spatial_demodulation_is_local_and_normalises(tiny32: Generator) -> None:
    """A map whose two halves hold two styles renders, away from the seam, what each style
    renders alone (modulation and demodulation are both per pixel)."""
    g = tiny32
    wa, wb = g.mapping(torch.randn(2, g.style_dim)).split(1)
    side = 8
    half = torch.cat([wa[:, :, None, None].expand(-1, -1, side, side // 2),
                      wb[:, :, None, None].expand(-1, -1, side, side // 2)], dim=-1)
    conv = g.conv1.conv
    x = torch.randn(1, conv.in_ch, side, side)
    with torch.no_grad():
        split = conv(x, half)
        left, right = conv(x, wa), conv(x, wb)
        assert (split[..., : side // 2 - 1] - left[..., : side // 2 - 1]).abs().max() <= 1e-4
        assert (split[..., side // 2 + 1:] - right[..., side // 2 + 1:]).abs().max() <= 1e-4
        assert (split - left).abs().max() > 1e-2  # the right half really is another style


def test_map_size_parsing() -> None:
    assert default_map_sizes(18) == [4] * 3 + [8] * 4 + [1] * 11
    assert default_map_sizes(18, 2, 4, 1) == [2] * 3 + [4] * 4 + [1] * 11
    assert parse_map_sizes("4,8,1", 10) == default_map_sizes(10)
    assert parse_map_sizes("2,4,1", 10) == default_map_sizes(10, 2, 4, 1)
    assert parse_map_sizes("3", 4) == [3, 3, 3, 3]
    with pytest.raises(OptinvError, match="needs 1, 3"):
        parse_map_sizes("1,2", 10)
    with pytest.raises(OptinvError, match="integers"):
        parse_map_sizes("a,b,c", 10)


def test_batch_independence(tiny32: Generator) -> None:
    """Image 0's result must not depend on what else is in its batch."""
    g = tiny32
    t = targets_from(g, 3)
    opts = jobs.JobOptions(space="wplus", recipe="1*L2", steps=25, lr=0.05, schedule="fixed", progress=False, batch=3)
    together = jobs.solve("invert", g, t, ["a", "b", "c"], Identity(), opts)
    opts.batch = 1
    alone = jobs.solve("invert", g, t[:1], ["a"], Identity(), opts)
    start = g.w_avg.expand_as(alone[0].latent["tensors"]["wplus"])
    assert (alone[0].latent["tensors"]["wplus"] - start).abs().max() > 1e-2  # it did move
    assert torch.allclose(together[0].latent["tensors"]["wplus"], alone[0].latent["tensors"]["wplus"], atol=1e-5)
    assert abs(together[0].metrics["psnr"] - alone[0].metrics["psnr"]) < 1e-3


def test_per_image_gradient_does_not_depend_on_the_batch(tiny32: Generator) -> None:
    """Adam hides a gradient scale (batch mean instead of sum): check the gradient itself."""
    g = tiny32
    t = targets_from(g, 3)
    objective = build_objective("1*L2+0.05*GEOCROSS")
    grads = []
    for n in (3, 1):
        sp = make_space("zplus", g, batch=n, seed=0, init_z=torch.randn(3, g.n_latent, g.style_dim,
                                                                   generator=torch.Generator().manual_seed(4))[:n])
        img = (g.synthesis(sp.to_styles()) + 1) / 2
        from losses.recipe import StepContext
        total, _ = objective(StepContext(pred=img, target=t[:n], image=img, w=sp.layer_vectors(), w_avg=g.w_avg))
        total.sum().backward()
        grads.append(sp.z.grad[0])
    assert grads[1].abs().max() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_nan_in_one_image_does_not_spoil_the_others(tiny32: Generator) -> None:
    g = tiny32
    t = targets_from(g, 2)
    bad = t.clone()
    bad[1, :, 3, 3] = float("nan")
    s = Settings(steps=15, lr=0.05, progress=False)
    sp_pair = make_space("wplus", g, batch=2)
    res = run(g, sp_pair, Problem(target=bad, operator=Identity()), build_objective("1*L2"), s)
    assert res.status == ["ok", "nan"]
    sp_one = make_space("wplus", g, batch=1)
    solo = run(g, sp_one, Problem(target=t[:1], operator=Identity()), build_objective("1*L2"), s)
    assert torch.allclose(res.latent["wplus"][0], solo.latent["wplus"][0], atol=1e-5)
    assert torch.isfinite(res.latent["wplus"]).all()


def test_best_so_far_is_returned_even_when_the_run_diverges(tiny32: Generator) -> None:
    g = tiny32
    t = targets_from(g, 1)
    sp = make_space("wplus", g, batch=1)
    res = run(g, sp, Problem(target=t, operator=Identity()), build_objective("1*L2"),
              Settings(steps=30, lr=50.0, optimizer="sgd", progress=False))
    first = res.history[0]["L2"]
    last = res.history[-1]["L2"]
    assert float(res.loss[0]) <= first + 1e-9
    assert float(res.loss[0]) <= last + 1e-9 or not math.isfinite(last)


def test_eps_stops_early(tiny32: Generator) -> None:
    g = tiny32
    sp = make_space("wplus", g, batch=2)
    res = run(g, sp, Problem(target=targets_from(g, 2), operator=Identity()), build_objective("1*L2"),
              Settings(steps=50, lr=0.05, eps=10.0, progress=False))
    assert res.status == ["eps", "eps"] and res.steps_run == 0


def test_optimisation_is_deterministic(tiny32: Generator) -> None:
    g = tiny32
    t = targets_from(g, 1)
    opts = jobs.JobOptions(space="zplus", steps=10, progress=False, seed=7, recipe="100*L2+0.05*GEOCROSS", lr=0.4)
    a = jobs.solve("pulse", g, t, ["a"], Identity(), opts)[0]
    b = jobs.solve("pulse", g, t, ["a"], Identity(), opts)[0]
    assert torch.equal(a.latent["tensors"]["z"], b.latent["tensors"]["z"])
    opts.seed = 8
    c = jobs.solve("pulse", g, t, ["a"], Identity(), opts)[0]
    assert not torch.equal(a.latent["tensors"]["z"], c.latent["tensors"]["z"])


def test_trainable_noise_and_noise_regularizer_run(tiny32: Generator) -> None:
    g = tiny32
    t = targets_from(g, 1)
    opts = jobs.JobOptions(space="wplus", steps=5, progress=False, recipe="1*L2+1000*NOISE", noise="trainable",
                           trainable_noise=2, lr=0.05)
    r = jobs.solve("invert", g, t, ["a"], Identity(), opts)[0]
    assert len(r.latent["noise"]) == g.num_layers
    fixed = g.noise_list()
    assert torch.equal(r.latent["noise"][4], fixed[4])          # not trainable: untouched
    assert not torch.equal(r.latent["noise"][0], fixed[0])      # trainable: moved


def test_inverting_a_generated_image_recovers_it() -> None:
    g = tiny_generator(32, style_dim=32, seed=2)
    target = targets_from(g, 1, seed=11)
    opts = jobs.JobOptions(space="wplus", recipe="1*L2", steps=300, lr=0.1, schedule="fixed", progress=False,
                           init="mean")
    r = jobs.solve("invert", g, target, ["x"], Identity(), opts)[0]
    start = jobs.solve("invert", g, target, ["x"], Identity(), jobs.JobOptions(space="wplus", recipe="1*L2", steps=1,
                                                                              lr=1e-9, progress=False))[0]
    assert start.metrics["psnr"] < 20.0  # the mean image is far from the target…
    assert r.metrics["psnr"] >= 27.0, r.metrics  # …and the optimiser gets close (random 32² model)


def test_saved_latent_rerenders_exactly(tiny32: Generator) -> None:
    g = tiny32
    for space in ("w", "zplus", "stylemap"):
        opts = jobs.JobOptions(space=space, steps=3, progress=False,
                               recipe="1*L2+0.05*GEOCROSS" if space != "w" else "1*L2")
        r = jobs.solve("invert", g, targets_from(g, 2), ["a", "b"], Identity(), opts)[1]
        assert torch.equal(jobs.render_latent(g, r.latent)[0], r.image)


def test_preview_is_the_image_before_the_finer_blocks() -> None:
    from optinv.world.grow import grow_generator

    small = tiny_generator(16, style_dim=16, seed=3)
    big = grow_generator(small, 32, {**small.channels, 32: 8})  # the new block's toRGB starts at zero
    w = big.mapping(torch.randn(2, 16, generator=torch.Generator().manual_seed(1)))[:, None].expand(-1, big.n_latent, -1)
    with torch.no_grad():
        assert torch.equal(big.preview(w, 32), big.synthesis(w))
        preview = big.preview(w, 16)
        assert preview.shape == (2, 3, 16, 16)
        assert torch.allclose(preview, small.synthesis(w[:, :small.n_latent]), atol=1e-5)  # the parent's image
    with pytest.raises(ValueError, match="preview side"):
        big.preview(w, 12)
