"""Inverse problems: forward operators, ILO, SSIM/MS-SSIM terms (tiny generators, seconds)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from losses.recipe import StepContext, build_objective
from optinv.engine import jobs, metrics
from optinv.io.checkpoints import save_generator
from optinv.cli import main
from optinv.errors import OptinvError
from optinv.engine.ilo import parse_ilo, project_l1
from optinv.io.latents import load_latent, render_latent, save_latent
from optinv.engine.operators import (BicubicDownscale, Compose, Grayscale, Identity, Mask, NoiseLevel, job_operator,
                                     prepare)
from tests.conftest import tiny_generator


# ----------------------------------------------------------------------------- operators
def test_mask_gives_unknown_pixels_no_gradient() -> None:
    m = torch.ones(1, 1, 8, 8)
    m[..., 2:5, 3:6] = 0
    img = torch.rand(1, 3, 8, 8, requires_grad=True)
    Mask(m)(img).pow(2).sum().backward()
    assert img.grad[..., 2:5, 3:6].abs().max() == 0
    assert (img.grad[..., 0, 0] != 0).all()


def test_grayscale_is_luminance_and_a_projection() -> None:
    img = torch.rand(2, 3, 4, 4)
    y = Grayscale()(img)
    assert y.shape == img.shape
    assert torch.allclose(y[:, 0], 0.299 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2])
    assert torch.equal(y[:, 0], y[:, 2])
    assert torch.allclose(Grayscale()(y), y, atol=1e-6)  # gray stays gray: prepare() is harmless


def test_compose_order_matters_and_masks_act_at_their_size() -> None:
    torch.manual_seed(0)
    img = torch.rand(1, 3, 16, 16)
    big, small = torch.ones(1, 1, 16, 16), torch.ones(1, 1, 4, 4)
    big[..., :8, :8] = 0
    small[..., :2, :2] = 0
    d = BicubicDownscale(4)
    before = Compose(Mask(big), d)(img)
    assert torch.allclose(before, d(img * big))
    after = Compose(d, Mask(small))(img)
    assert torch.allclose(after, d(img) * small)
    assert before.shape == after.shape == (1, 3, 4, 4)
    assert not torch.allclose(before, after)
    # job_operator picks the side from the mask's size
    op = job_operator(d, 16, 4, mask=big[0, 0])
    assert torch.allclose(op(img), before)
    op = job_operator(d, 16, 4, mask=small[0, 0])
    assert torch.allclose(op(img), after)


def test_job_operator_refuses_masks_of_other_sizes_and_empty_masks() -> None:
    with pytest.raises(OptinvError, match="must be 4×4 or 16×16"):
        job_operator(BicubicDownscale(4), 16, 4, mask=torch.ones(8, 8))
    with pytest.raises(OptinvError, match="0 \\(black\\) everywhere"):
        job_operator(Identity(), 16, 16, mask=torch.zeros(16, 16))
    assert isinstance(job_operator(Identity(), 16, 16), Identity)  # nothing given: the job's own operator


def test_noise_level_scales_only_the_data_terms() -> None:
    op = NoiseLevel(0.02)
    assert op.data_weight == pytest.approx(0.5)
    assert Compose(op, NoiseLevel(0.0)).data_weight == pytest.approx(0.5)
    w = torch.randn(1, 4, 8)
    ctx = dict(pred=torch.zeros(1, 3, 4, 4), target=torch.ones(1, 3, 4, 4), image=torch.zeros(1, 3, 4, 4), w=w,
               w_avg=torch.zeros(8))
    obj = build_objective("100*L2+0.05*GEOCROSS")
    full, parts = obj(StepContext(**ctx))
    half, _ = obj(StepContext(**ctx, data_weight=0.5))
    assert torch.allclose(full - half, 0.5 * 100 * parts["L2"])


def test_prepare_masks_the_observation_only_at_its_size() -> None:
    m = torch.ones(1, 1, 4, 4)
    m[..., 0, 0] = 0
    t = torch.rand(1, 3, 4, 4)
    assert prepare(Mask(m), t)[..., 0, 0].abs().max() == 0
    assert torch.equal(prepare(Mask(torch.ones(1, 1, 8, 8)), t), t)


def test_inpainting_leaves_the_hole_to_the_prior() -> None:
    """Two observations that differ only inside the hole give the same result."""
    g = tiny_generator(32)
    torch.manual_seed(3)
    x = torch.rand(3, 32, 32)
    y = x.clone()
    y[:, 10:20, 10:20] = torch.rand(3, 10, 10)
    m = torch.ones(32, 32)
    m[10:20, 10:20] = 0
    kw = dict(model=g, device="cpu", space="wplus", steps=5, progress=False, init="mean", mask=m)
    a = jobs.invert([("a", x)], **kw)[0]
    b = jobs.invert([("b", y)], **kw)[0]
    assert torch.equal(a.image, b.image)
    assert a.metrics["operator"].startswith("mask")
    known = m.bool().expand(3, -1, -1)
    mse = float((a.image - x)[known].pow(2).mean())
    assert a.metrics["psnr_known"] == pytest.approx(10 * math.log10(1 / mse), rel=1e-4)
    assert a.metrics["psnr_known"] < a.metrics["psnr"]  # the blank hole no longer counts as a match


def test_colourisation_matches_through_luminance() -> None:
    g = tiny_generator(32)
    torch.manual_seed(4)
    x = torch.rand(3, 32, 32)
    r = jobs.invert([("a", x)], model=g, device="cpu", space="wplus", steps=5, progress=False, init="mean",
                    operator="gray")[0]
    assert torch.allclose(r.target[0], r.target[1])  # the observation was made gray
    assert torch.allclose(r.observed[0], r.observed[2])


def test_paint_refuses_mask_and_gray(tiny32) -> None:
    ref = torch.rand(4, 8, 8)
    with pytest.raises(OptinvError, match="alpha already says"):
        jobs.paint([("r", ref)], model=tiny32, device="cpu", mask=torch.ones(8, 8), progress=False)
    with pytest.raises(OptinvError, match="paint matches colours"):
        jobs.paint([("r", ref)], model=tiny32, device="cpu", operator="gray", progress=False)


def test_tune_refuses_a_mask(tiny32) -> None:
    with pytest.raises(OptinvError, match="`tune` fits the generator"):
        jobs.invert([("a", torch.rand(3, 32, 32))], model=tiny32, device="cpu", tune=True, steps=1, tune_steps=1,
                    space="w", mask=torch.ones(32, 32), progress=False)


# ----------------------------------------------------------------------------- ILO
def test_project_l1_lands_on_the_ball_and_keeps_points_inside() -> None:
    torch.manual_seed(0)
    v = torch.randn(3, 5, 7)
    r = torch.tensor([1.0, 1e6, 0.0])
    p = project_l1(v, r)
    assert p[0].abs().sum() == pytest.approx(1.0, rel=1e-4)
    assert torch.equal(p[1], v[1])
    assert p[2].abs().max() == 0
    # it is the closest point: nothing on the ball nearby is closer (random feasible points)
    d = (p[0] - v[0]).norm()
    for _ in range(20):
        q = torch.randn(5, 7)
        q = q / q.abs().sum()
        assert (q - v[0]).norm() >= d - 1e-5


def test_parse_ilo_errors() -> None:
    assert parse_ilo("25,25", "0.1", 0.1).radius == [0.1, 0.1]
    with pytest.raises(OptinvError, match="one per layer"):
        parse_ilo("25,25", "0.1,0.2,0.3", 0.1)
    with pytest.raises(OptinvError, match="comma-separated"):
        parse_ilo("a,b", "0.1", 0.1)
    with pytest.raises(OptinvError, match="≥ 0"):
        parse_ilo("25", "-1", 0.1)


def test_ilo_stays_in_its_balls_improves_the_fit_and_rerenders_exactly(tmp_path) -> None:
    g = tiny_generator(32)
    torch.manual_seed(5)
    x = torch.rand(2, 3, 32, 32)
    kw = dict(model=g, device="cpu", space="wplus", steps=8, progress=False, init="mean")
    plain = jobs.invert([("a", x[0]), ("b", x[1])], **kw)
    ilo = jobs.invert([("a", x[0]), ("b", x[1])], **kw, ilo=True, ilo_steps="6,6", ilo_radius="0.1,0.2")
    for p, r in zip(plain, ilo):
        assert r.metrics["fit_mse"] < p.metrics["fit_mse"]  # the layers add freedom, and the best is kept
        moved = r.metrics["ilo_layers"]
        assert [m["layer"] for m in moved] == [0, 1] and [m["side"] for m in moved] == [4, 8]
        assert all(0 < m["moved"] <= m["radius"] * (1 + 1e-4) for m in moved)
        path = save_latent(r.latent, tmp_path / f"{r.name}.latent.pt")
        rec = load_latent(path, g)
        assert rec["ilo"]["layer"] == 1
        assert torch.equal(render_latent(g, rec)[0], r.image)
        without = dict(rec)
        without.pop("ilo")
        assert not torch.equal(render_latent(g, without)[0], r.image)


def test_ilo_radius_zero_holds_the_features_where_the_layer_before_put_them() -> None:
    """With radius 0 nothing leaves the previous layer's range: every layer reports no move."""
    g = tiny_generator(32)
    x = torch.rand(3, 32, 32)
    r = jobs.invert([("a", x)], model=g, device="cpu", space="wplus", steps=3, progress=False, init="mean",
                    ilo=True, ilo_steps="3,3", ilo_radius="0")[0]
    assert [m["moved"] for m in r.metrics["ilo_layers"]] == [0, 0]
    assert not any(m["at_bound"] for m in r.metrics["ilo_layers"])


def test_ilo_moves_the_features_alone_unless_joint() -> None:
    """By default the layer stages leave the latent where its search put it; `ilo_joint` moves it too."""
    g = tiny_generator(32)
    torch.manual_seed(3)
    x = torch.rand(3, 32, 32)
    kw = dict(model=g, device="cpu", space="wplus", steps=6, progress=False, init="mean")
    plain = jobs.invert([("a", x)], **kw)[0]
    alone = jobs.invert([("a", x)], **kw, ilo=True, ilo_steps="5,5")[0]
    joint = jobs.invert([("a", x)], **kw, ilo=True, ilo_steps="5,5", ilo_joint=True)[0]
    assert torch.equal(alone.latent["wplus"], plain.latent["wplus"])
    assert not torch.equal(joint.latent["wplus"], plain.latent["wplus"])
    assert alone.latent["settings"]["ilo"]["joint"] is False and joint.latent["settings"]["ilo"]["joint"] is True
    for r in (alone, joint):
        assert r.metrics["fit_mse"] < plain.metrics["fit_mse"]
        assert torch.equal(render_latent(g, r.latent)[0], r.image)


def test_ilo_searches_one_w_from_w_avg_unless_told_the_jobs_search() -> None:
    """`ilo_latent` w (default): pulse's latent search becomes W from w_avg with its data term alone;
    `ilo_latent` job keeps PULSE's Z+; explicit options still win; duplicates would all be one answer."""
    g = tiny_generator(32)
    low = torch.rand(3, 8, 8)
    kw = dict(scale=4, model=g, device="cpu", steps=3, progress=False, ilo=True, ilo_steps="2")
    w = jobs.pulse([("a", low)], **kw)[0]
    assert (w.metrics["space"], w.metrics["recipe"]) == ("w", "100*L2")
    wplus = w.latent["wplus"].reshape(-1, g.n_latent, g.style_dim)
    assert torch.equal(wplus, wplus[:, :1].expand_as(wplus))  # one w for every layer
    job = jobs.pulse([("a", low)], **kw, ilo_latent="job")[0]
    assert (job.metrics["space"], job.metrics["recipe"]) == ("zplus", "100*L2+0.05*GEOCROSS")
    assert jobs.pulse([("a", low)], **kw, space="wplus")[0].metrics["space"] == "wplus"
    assert jobs.invert([("a", torch.rand(3, 32, 32))], model=g, device="cpu", steps=2, progress=False, ilo=True,
                       ilo_steps="1")[0].metrics["space"] == "w"
    with pytest.raises(OptinvError, match="`ilo_latent` job"):
        jobs.pulse([("a", low)], **kw, duplicates=2)
    two = jobs.pulse([("a", low)], **kw, duplicates=2, ilo_latent="job")
    assert not torch.equal(two[0].image, two[1].image)
    with pytest.raises(OptinvError, match="unknown `ilo_latent`"):
        jobs.pulse([("a", low)], **kw, ilo_latent="z")


def test_ilo_refuses_more_layers_than_the_model_has(tiny32) -> None:
    with pytest.raises(OptinvError, match="intermediate layers"):
        jobs.invert([("a", torch.rand(3, 32, 32))], model=tiny32, device="cpu", space="w", steps=1, progress=False,
                    ilo=True, ilo_steps="1,1,1,1,1")


def test_cli_ilo_pulse_rerenders_bit_exactly_and_refuses_another_model(tmp_path) -> None:
    g = tiny_generator(32)
    model = save_generator(g, tmp_path / "g.pt")
    other = save_generator(tiny_generator(32, seed=1), tmp_path / "other.pt")
    low = tmp_path / "face.png"
    Image.fromarray((torch.rand(8, 8, 3) * 255).byte().numpy()).save(low)
    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["pulse", str(low), "-m", str(model), "-o", str(out), "--steps", "4", "--ilo",
                                    "--ilo-steps", "3,3", "-q", "--device", "cpu"])
    assert run.exit_code == 0, run.output
    info = json.loads((out / "face.json").read_text())
    assert [m["layer"] for m in info["metrics"]["ilo_layers"]] == [0, 1]
    assert info["settings"]["ilo"]["steps"] == [3, 3]
    ren = CliRunner().invoke(main, ["generate", "-m", str(model), "--latent", str(out / "face.latent.pt"), "-o",
                                    str(tmp_path / "r")])
    assert ren.exit_code == 0, ren.output
    a = Image.open(out / "face.png")
    b = Image.open(tmp_path / "r" / "face.render.png")
    assert a.tobytes() == b.tobytes()
    bad = CliRunner().invoke(main, ["generate", "-m", str(other), "--latent", str(out / "face.latent.pt"), "-o",
                                    str(tmp_path / "r2")])
    assert bad.exit_code == 1
    assert "ILO features" in bad.output and bad.output.count("\n") == 1


def test_cli_mask_of_wrong_size_is_one_line(tmp_path) -> None:
    g = tiny_generator(32)
    model = save_generator(g, tmp_path / "g.pt")
    img = tmp_path / "face.png"
    Image.fromarray((torch.rand(32, 32, 3) * 255).byte().numpy()).save(img)
    mask = tmp_path / "hole.png"
    Image.new("L", (20, 20), 255).save(mask)
    run = CliRunner().invoke(main, ["invert", str(img), "-m", str(model), "-o", str(tmp_path / "o"), "--mask",
                                    str(mask), "--steps", "1", "-q", "--device", "cpu"])
    assert run.exit_code == 1
    assert "must be 32×32" in run.output and run.output.count("\n") == 1


# ----------------------------------------------------------------------------- SSIM terms
def test_ms_ssim_is_one_for_equal_images_and_falls_with_noise() -> None:
    torch.manual_seed(0)
    a = torch.rand(2, 3, 64, 64)
    assert torch.allclose(metrics.ms_ssim_per_image(a, a), torch.ones(2), atol=1e-5)
    b = (a + 0.05 * torch.randn_like(a)).clamp(0, 1)
    c = (a + 0.2 * torch.randn_like(a)).clamp(0, 1)
    assert float(metrics.ms_ssim(a, c)) < float(metrics.ms_ssim(a, b)) < 1
    assert metrics.ms_ssim_scales(64) == 3 and metrics.ms_ssim_scales(256) == 5


def test_ssim_terms_have_gradients_and_refuse_nothing() -> None:
    obj = build_objective("1*L2+0.5*SSIM+0.5*MSSSIM")
    pred = torch.rand(2, 3, 32, 32, requires_grad=True)
    ctx = StepContext(pred=pred, target=torch.rand(2, 3, 32, 32), image=pred, w=torch.randn(2, 4, 8),
                      w_avg=torch.zeros(8))
    total, parts = obj(ctx)
    assert total.shape == (2,) and set(parts) == {"L2", "SSIM", "MSSSIM"}
    total.sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    same = StepContext(pred=ctx.target, target=ctx.target, image=ctx.target, w=ctx.w, w_avg=ctx.w_avg)
    assert torch.allclose(obj(same)[0], torch.zeros(2), atol=1e-5)


def test_paint_takes_ilo_and_a_noise_level() -> None:
    g = tiny_generator(32)
    ref = torch.rand(4, 8, 8)
    ref[3] = (ref[3] > 0.5).float()
    r = jobs.paint([("r", ref)], model=g, device="cpu", steps=3, progress=False, ilo=True, ilo_steps="2",
                   noise_level=0.02)[0]
    assert r.metrics["ilo_layers"][0]["layer"] == 0
    assert "noise σ=0.02" in r.metrics["operator"]
    assert torch.equal(render_latent(g, r.latent)[0], r.image)


def test_benchmark_mask_covers_thirty_percent_and_tables_render() -> None:
    from tests.conftest import load_script

    b = load_script("bench_inverse")
    assert abs(float(1 - b.eye_mask(64).mean()) - 0.30) < 0.01
    rows = [{"task": "x", "method": m, "psnr_vs_truth": 1.0} for m in b.METHODS]
    text = "\n".join(b.markdown({"rows": rows, "images": ["a"], "steps": 10, "ilo_layers": "25,25,25",
                                 "structural": [{"recipe": "1*L2", "psnr": 1.0}]}))
    assert "| x | ILO | 1.0 |" in text and r"| 1\*L2 | 1.0 |" in text


def test_benchmark_tasks_follow_the_model_size() -> None:
    from tests.conftest import load_script

    b = load_script("bench_inverse")
    assert "sr32" not in b.default_tasks(64) and "sr16" in b.default_tasks(64)  # ×32 of 64² would be 2×2
    assert {"sr8", "sr16", "sr32", "inpaint_eyes", "colourise"} <= set(b.default_tasks(256))
    obs, extra, mask = b.observe("sr32", torch.rand(1, 3, 256, 256))
    assert obs.shape == (1, 3, 8, 8) and extra == {"scale": 32} and mask is None
    text = "\n".join(b.markdown({"rows": [{"task": "x", "method": "ILO"}], "images": ["a"], "steps": 1,
                                 "ilo_layers": "20,20", "model": "m256", "size": 256}, levers=False))
    assert "256² model" in text and "`m256` (256²)" in text and "ILO lever" not in text


def test_ilo_stages_follow_the_models_size_unless_given() -> None:
    """Two stages up to 128², three at 256² and 512², four at 1024² (ILO's own count); the job uses them
    when `ilo_steps` is not given, and radii given per layer must then match that count."""
    from optinv.engine.ilo import default_steps

    assert [len(default_steps(s).split(",")) for s in (32, 64, 128, 256, 512, 1024)] == [2, 2, 2, 3, 3, 4]
    g = tiny_generator(32)
    r = jobs.invert([("a", torch.rand(3, 32, 32))], model=g, device="cpu", steps=2, progress=False, ilo=True)[0]
    assert [m["steps"] for m in r.metrics["ilo_layers"]] == [20, 20]
    with pytest.raises(OptinvError, match="3 radii for 2 layers"):
        jobs.invert([("a", torch.rand(3, 32, 32))], model=g, device="cpu", steps=2, progress=False, ilo=True,
                    ilo_radius="0.1,0.1,0.1")
