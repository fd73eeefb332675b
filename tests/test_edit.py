"""Editing: planted directions are recovered, blends and interpolations hit their endpoints."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_generator
from optinv.edit import edits as edit
from optinv.edit.edits import Editable
from optinv.errors import OptinvError


def _wplus_item(g, seed: int) -> Editable:
    z = torch.randn(1, g.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        w = g.mapping(z)[0]
    return Editable(w[None].expand(g.n_latent, -1).clone(), None, [n[0].clone() for n in g.noise_list()])


def _map_item(g, seed: int, side: int = 4) -> Editable:
    gen = torch.Generator().manual_seed(seed)
    maps = [g.w_avg[:, None, None] + 0.3 * torch.randn(g.style_dim, side, side, generator=gen) for _ in range(g.n_latent)]
    return Editable(None, maps, [n[0].clone() for n in g.noise_list()])


def test_fit_direction_recovers_a_planted_direction() -> None:
    torch.manual_seed(0)
    d = 24
    planted = torch.randn(d)
    planted /= planted.norm()
    x = torch.randn(600, d) * torch.linspace(0.5, 2.0, d)  # anisotropic latents
    score = x @ planted
    binary = (score > 0).float()
    continuous = 2.0 * score + 0.05 * torch.randn(600)
    for labels in (binary, continuous):
        n = edit.fit_direction(x, labels)
        assert abs(float(n.norm()) - 1) < 1e-5
        # the fitted normal separates/predicts like the planted one (cosine in latent space)
        assert float(torch.nn.functional.cosine_similarity(n, planted, dim=0)) > 0.9


def test_fit_direction_refuses_degenerate_labels() -> None:
    with pytest.raises(OptinvError, match="both classes"):
        edit.fit_direction(torch.randn(10, 4), torch.ones(10))
    with pytest.raises(OptinvError, match="one label each"):
        edit.fit_direction(torch.randn(10, 4), torch.ones(9))


def test_difference_direction_points_from_a_to_b() -> None:
    a = torch.zeros(5, 3)
    b = torch.zeros(5, 3)
    b[:, 1] = 2.0
    assert torch.allclose(edit.difference_direction(a, b), torch.tensor([0.0, 1.0, 0.0]))


def test_apply_direction_on_layers_and_maps() -> None:
    g = tiny_generator(16, style_dim=16)
    n = torch.zeros(16)
    n[0] = 1.0
    e = _wplus_item(g, 0)
    moved = edit.apply_direction(e, n, 2.0, layers=[1, 2])
    assert torch.equal(moved.wplus[0], e.wplus[0])
    assert torch.allclose(moved.wplus[1] - e.wplus[1], 2.0 * n)
    m = _map_item(g, 1)
    mm = edit.apply_direction(m, n, -1.0)
    assert all(torch.allclose(x - y, -n[:, None, None].expand_as(x)) for x, y in zip(mm.maps, m.maps))


@pytest.mark.parametrize("kind", ["wplus", "maps"])
def test_interpolation_endpoints_are_exact(kind: str) -> None:
    g = tiny_generator(16, style_dim=16)
    make = _wplus_item if kind == "wplus" else _map_item
    a, b = make(g, 1), make(g, 2)
    out = edit.interpolate(a, b, [0.0, 0.5, 1.0])
    for got, want in ((out[0], a), (out[2], b)):
        assert all(torch.equal(x, y) for x, y in zip(got.as_maps(), want.as_maps()))
        assert torch.equal(edit.render(g, [got]), edit.render(g, [want]))  # same batch shape: bit-exact
    assert not torch.equal(edit.render(g, [out[1]]), edit.render(g, [a]))


@pytest.mark.parametrize("kinds", [("maps", "maps"), ("wplus", "maps"), ("wplus", "wplus")])
def test_blend_with_all_zero_and_all_one_masks_returns_each_input(kinds) -> None:
    g = tiny_generator(16, style_dim=16)
    makers = {"wplus": _wplus_item, "maps": _map_item}
    a, b = makers[kinds[0]](g, 3), makers[kinds[1]](g, 4)
    fs = g.layer_sizes()
    zero = edit.blend_maps(a, b, torch.zeros(16, 16), feature_sizes=fs)
    one = edit.blend_maps(a, b, torch.ones(16, 16), feature_sizes=fs)
    b_with_a_noise = Editable(b.wplus, b.maps, a.noise)
    assert (edit.render(g, [zero]) - edit.render(g, [a])).abs().max() <= 1e-5
    assert (edit.render(g, [one]) - edit.render(g, [b_with_a_noise])).abs().max() <= 1e-5
    half = edit.blend_maps(a, b, edit.vertical_mask(16), feature_sizes=fs)
    img, ia, ib = edit.render(g, [half])[0], edit.render(g, [a])[0], edit.render(g, [b_with_a_noise])[0]
    top_to_a = (img[:, :4] - ia[:, :4]).abs().mean()
    top_to_b = (img[:, :4] - ib[:, :4]).abs().mean()
    assert top_to_a < top_to_b  # top rows come from the first image


def test_mix_takes_layers_from_the_second() -> None:
    g = tiny_generator(16, style_dim=16)
    a, b = _wplus_item(g, 5), _wplus_item(g, 6)
    m = edit.mix(a, b, [0, 1])
    assert torch.equal(m.wplus[:2], b.wplus[:2]) and torch.equal(m.wplus[2:], a.wplus[2:])


def test_parse_layers() -> None:
    assert edit.parse_layers("0-2,5", 8) == [0, 1, 2, 5]
    assert edit.parse_layers(None, 3) == [0, 1, 2]
    with pytest.raises(OptinvError):
        edit.parse_layers("0-9", 8)
    with pytest.raises(OptinvError):
        edit.parse_layers("a-b", 8)


def test_lec_is_zero_for_a_perfect_encoder_and_grows_with_a_lossy_one() -> None:
    from optinv.edit.edits import latent_editing_consistency

    g = tiny_generator(16, style_dim=16)
    items = [_wplus_item(g, 7), _map_item(g, 8)]
    n = torch.zeros(16)
    n[2] = 1.0

    def perfect(images: torch.Tensor) -> list[Editable]:  # knows the codes it was shown
        return [edit.apply_direction(e, n, 1.5) for e in items]

    def lossy(images: torch.Tensor) -> list[Editable]:  # forgets part of every edit
        return [edit.apply_direction(e, n, 1.0) for e in items]

    perfect_lec = latent_editing_consistency(g, items, n, 1.5, perfect)
    lossy_lec = latent_editing_consistency(g, items, n, 1.5, lossy)
    assert perfect_lec["max"] < 1e-5
    assert abs(lossy_lec["avg"] - 0.5) < 1e-5 and lossy_lec["min"] <= lossy_lec["avg"] <= lossy_lec["max"]
