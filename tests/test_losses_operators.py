"""Loss terms, the recipe parser, forward operators and schedules."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from losses import pixel, regularizers
from losses.recipe import RecipeError, build_objective, format_recipe, parse_recipe
from optinv.engine.operators import BicubicDownscale, bicubic_taps, keys_cubic
from optinv.engine.optimize import Settings, lr_at


def pulse_geocross_reference(latent: torch.Tensor) -> torch.Tensor:
    """PULSE's formula written out pair by pair (loops), for one image [L, D]."""
    n, dim = latent.shape
    total = 0.0
    for i in range(n):
        for j in range(n):
            a = math.sqrt(float((latent[i] - latent[j]).pow(2).sum()) + 1e-9)
            b = math.sqrt(float((latent[i] + latent[j]).pow(2).sum()) + 1e-9)
            total += (2 * math.atan2(a, b)) ** 2
    return torch.tensor(total / (n * n) * dim / 8)


def test_geocross_is_zero_for_identical_latents() -> None:
    w = torch.randn(3, 1, 16).expand(-1, 6, -1)
    assert torch.allclose(regularizers.geocross(w), torch.zeros(3), atol=1e-3)


def test_geocross_hand_computed_orthogonal_pair() -> None:
    x = torch.zeros(1, 2, 8)
    x[0, 0, 0] = 3.0
    x[0, 1, 1] = 3.0  # orthogonal, equal norms: angle π/2
    expected = (2 * (math.pi / 2) ** 2 / 4) * 8 / 8
    assert abs(float(regularizers.geocross(x)[0]) - expected) < 1e-5


def test_geocross_matches_pulse_formula_per_image() -> None:
    torch.manual_seed(0)
    w = torch.randn(2, 5, 12)
    ours = regularizers.geocross(w)
    for k in range(2):
        assert abs(float(ours[k]) - float(pulse_geocross_reference(w[k]))) < 1e-4


def test_l2_alpha_ignores_alpha_zero_pixels() -> None:
    target = torch.rand(1, 3, 8, 8)
    alpha = torch.zeros(1, 1, 8, 8)
    alpha[..., :4, :] = 1
    pred = target.clone()
    pred[..., 4:, :] = torch.rand(1, 3, 4, 8)  # differs only where alpha is 0
    assert float(pixel.l2_alpha(pred, target, alpha)[0]) == 0.0
    pred[..., 0, 0] += 0.5
    assert float(pixel.l2_alpha(pred, target, alpha)[0]) > 0.0


def test_pixel_losses_are_per_image() -> None:
    a, b = torch.rand(3, 3, 4, 4), torch.rand(3, 3, 4, 4)
    both = pixel.l2(a, b)
    assert both.shape == (3,)
    assert torch.allclose(both[1], pixel.l2(a[1:2], b[1:2])[0])


def test_edge_measures_match_the_convolution_definitions() -> None:
    """The matrix-product blur and shifted-sum Laplacian equal kornia's convolutions (reflect borders,
    central differences), on a non-square batch."""
    import kornia

    x = torch.rand(2, 3, 24, 40)
    lap = kornia.filters.filter2d(x, pixel.LAPLACE4[None], border_type="reflect").pow(2).sum(1, keepdim=True)
    blur = lambda v: kornia.filters.gaussian_blur2d(v, (7, 7), (1.5, 1.5), border_type="reflect")  # noqa: E731
    assert torch.allclose(pixel.local_edge_energy(x), blur(lap).add(1e-8).sqrt(), atol=1e-5)
    grad = kornia.filters.spatial_gradient(x, mode="diff", normalized=False)
    assert torch.allclose(pixel.local_variation(x), blur(grad.pow(2).sum(2).add(1e-8).sqrt().sum(1, keepdim=True)),
                          atol=1e-5)


def test_edge_term_is_per_image_and_zero_on_the_target() -> None:
    target = torch.rand(3, 3, 16, 16)
    pred = target.clone()
    pred[1] = torch.nn.functional.avg_pool2d(target[1:2], 3, 1, 1)  # only image 1 is blurred
    cost = pixel.edge_match(pred, target)
    assert cost.shape == (3,) and cost[0] < 1e-3 and cost[2] < 1e-3 and cost[1] > 0.1


def test_noise_regularizer_prefers_white_noise() -> None:
    torch.manual_seed(0)
    white = [torch.randn(1, 1, 16, 16)]
    smooth = [torch.nn.functional.interpolate(torch.randn(1, 1, 4, 4), size=16, mode="bilinear")]
    assert float(regularizers.noise_autocorrelation(smooth)[0]) > 10 * float(regularizers.noise_autocorrelation(white)[0])


@pytest.mark.parametrize("text,expected", [
    ("100*L2+0.05*GEOCROSS", [(100.0, "L2"), (0.05, "GEOCROSS")]),
    (" 1e2 * l2 + 5E-2*geocross ", [(100.0, "L2"), (0.05, "GEOCROSS")]),
    ("L2+.8*LPIPS", [(1.0, "L2"), (0.8, "LPIPS")]),
    ("1e+5*NOISE+1*LPIPS", [(1e5, "NOISE"), (1.0, "LPIPS")]),
])
def test_recipe_parser_accepts_float_syntax(text: str, expected) -> None:
    assert parse_recipe(text) == expected
    assert parse_recipe(format_recipe(expected)) == expected


@pytest.mark.parametrize("text,message", [
    ("", "empty"), ("1*L3", "unknown loss term 'L3'.*known: L2"), ("2*", "cannot parse"),
    ("1*L2+", "cannot parse"), ("-1*L2", "≥ 0"), ("L2+L2", "twice"), ("abc*L2", "cannot parse"),
])
def test_recipe_parser_errors(text: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        parse_recipe(text)


@pytest.mark.parametrize("recipe,kwargs,message", [
    ("1*L2+1*GEOCROSS", {"space": "w", "n_vectors": 1}, "one vector"),
    ("1*L2A", {}, "RGBA"),
    ("1*L2+1*NOISE", {}, "trainable"),
    ("1*L2+1*SMOOTH", {}, "style maps"),
    ("1*L2+1*DOMAIN", {}, "encoder"),
])
def test_terms_that_do_not_fit_the_job_are_refused(recipe: str, kwargs: dict, message: str) -> None:
    base = dict(space="wplus", n_vectors=10, has_alpha=False, trainable_noise=False, has_maps=False, has_encoder=False)
    base.update(kwargs)
    with pytest.raises(RecipeError, match=message):
        build_objective(recipe).check(**base)


def test_keys_cubic_values() -> None:
    x = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    expected = torch.tensor([1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0])
    assert torch.allclose(keys_cubic(x), expected, atol=1e-6)


@pytest.mark.parametrize("factor", [2, 3, 4, 8, 16])
def test_bicubic_downscale_shapes_and_constants(factor: int) -> None:
    taps, left, right = bicubic_taps(factor)
    assert abs(float(taps.sum()) - 1.0) < 1e-6
    assert len(taps) - left - right == factor
    op = BicubicDownscale(factor)
    x = torch.full((2, 3, 4 * factor * 2, 4 * factor * 2), 0.3)
    y = op(x)
    assert y.shape == (2, 3, 8, 8)
    assert torch.allclose(y, torch.full_like(y, 0.3), atol=1e-6)


def test_bicubic_downscale_of_a_ramp_is_its_local_mean() -> None:
    op = BicubicDownscale(4)
    ramp = torch.arange(64.0).view(1, 1, 1, 64).expand(1, 1, 64, 64)
    y = op(ramp)[0, 0, 8]
    centres = torch.arange(16.0) * 4 + 1.5
    assert torch.allclose(y[2:-2], centres[2:-2], atol=1e-4)  # interior: exact for linear data


def test_bicubic_downscale_rejects_indivisible_sizes() -> None:
    with pytest.raises(ValueError, match="divisible"):
        BicubicDownscale(3)(torch.zeros(1, 3, 16, 16))


def test_linear1cycledrop_shape() -> None:
    s = Settings(steps=100, lr=0.4, schedule="linear1cycledrop")
    lrs = [lr_at(s, t) for t in range(100)]
    assert abs(lrs[0] - 0.04) < 1e-9
    assert abs(max(lrs) - 0.4) < 1e-9 and lrs.index(max(lrs)) == 45
    assert lrs[-1] < 0.005 and lrs[-1] > 0.0


def test_cosine_ramp_shape() -> None:
    s = Settings(steps=1000, lr=0.1, schedule="cosine-ramp")
    assert lr_at(s, 0) == 0.0
    assert abs(lr_at(s, 50) - 0.1) < 1e-9 and abs(lr_at(s, 500) - 0.1) < 1e-9
    assert lr_at(s, 999) < 1e-3


@pytest.mark.parametrize("net,side", [("alex", 16), ("squeeze", 32), ("alex", 512)])
def test_lpips_is_per_image_zero_on_equal_images_and_takes_any_size(net: str, side: int) -> None:
    from losses.perceptual import LPIPSLoss, make_lpips

    torch.manual_seed(0)
    loss = LPIPSLoss(make_lpips(net, random_backbone=True))  # untrained backbone: plumbing only
    a, b = torch.rand(2, 3, side, side), torch.rand(2, 3, side, side)
    d = loss(a, torch.cat([a[:1], b[1:]]))
    assert d.shape == (2,) and abs(float(d[0])) < 1e-6 and float(d[1]) > 0
    assert torch.allclose(loss(a[1:], b[1:]), d[1:], atol=1e-6)  # batch-independent


def test_lpips_without_backbone_names_what_to_provide(tmp_path: Path) -> None:
    from losses.perceptual import LPIPSUnavailable, make_lpips

    bad = tmp_path / "vgg.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(LPIPSUnavailable, match="cannot read LPIPS backbone"):
        make_lpips("vgg", backbone=bad)


@pytest.mark.parametrize("text,message", [
    ("1*WAVG", "no term that compares"), ("1*GEOCROSS", "no term that compares"), ("1*SMOOTH", "no term"),
    ("1*DOMAIN", "no term"), ("0*L2+1*NOISE", "no term"), ("0*L2+1e-300*L1", "0 in the optimiser's float32"),
])
def test_recipes_without_a_data_term_are_refused(text: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        parse_recipe(text)
    assert parse_recipe("1*L1+1*WAVG") == [(1.0, "L1"), (1.0, "WAVG")]
