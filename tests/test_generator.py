"""The generator: shapes, rosinality's parameter table, StyleMap equivalence, fixture images."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import fixture_path, tiny_generator
from optinv.io.checkpoints import load_generator
from optinv.engine.generator import Generator


@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
def test_output_shapes_for_every_resolution(size: int) -> None:
    g = tiny_generator(size, style_dim=16)
    assert g.n_latent == 2 * int(math.log2(size)) - 2
    assert len(g.noise_list()) == g.num_layers == 2 * int(math.log2(size)) - 3
    assert len(g.layer_sizes()) == g.n_latent
    with torch.no_grad():
        img = g(torch.randn(2, 16))
    assert img.shape == (2, 3, size, size)
    assert torch.isfinite(img).all()


@pytest.mark.parametrize("size", [8, 48, 100])
def test_bad_resolution_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        Generator(size, 16, 1, channels={4: 8})


def rosinality_table(size: int, style_dim: int = 512, n_mlp: int = 8, cm: int = 2) -> dict[str, tuple]:
    """The public rosinality Generator's state-dict table, written out from its architecture."""
    ch = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}
    t: dict[str, tuple] = {}
    for i in range(1, n_mlp + 1):
        t[f"style.{i}.weight"] = (style_dim, style_dim)
        t[f"style.{i}.bias"] = (style_dim,)
    t["input.input"] = (1, ch[4], 4, 4)

    def styled(prefix: str, cin: int, cout: int, up: bool) -> None:
        t[f"{prefix}.conv.weight"] = (1, cout, cin, 3, 3)
        t[f"{prefix}.conv.modulation.weight"] = (cin, style_dim)
        t[f"{prefix}.conv.modulation.bias"] = (cin,)
        if up:
            t[f"{prefix}.conv.blur.kernel"] = (4, 4)
        t[f"{prefix}.noise.weight"] = (1,)
        t[f"{prefix}.activate.bias"] = (cout,)

    def rgb(prefix: str, cin: int, up: bool) -> None:
        t[f"{prefix}.bias"] = (1, 3, 1, 1)
        if up:
            t[f"{prefix}.upsample.kernel"] = (4, 4)
        t[f"{prefix}.conv.weight"] = (1, 3, cin, 1, 1)
        t[f"{prefix}.conv.modulation.weight"] = (cin, style_dim)
        t[f"{prefix}.conv.modulation.bias"] = (cin,)

    styled("conv1", ch[4], ch[4], False)
    rgb("to_rgb1", ch[4], False)
    log = int(math.log2(size))
    cin = ch[4]
    for k, lg in enumerate(range(3, log + 1)):
        cout = ch[2 ** lg]
        styled(f"convs.{2 * k}", cin, cout, True)
        styled(f"convs.{2 * k + 1}", cout, cout, False)
        rgb(f"to_rgbs.{k}", cout, True)
        cin = cout
    for i in range((log - 2) * 2 + 1):
        r = 2 ** ((i + 5) // 2)
        t[f"noises.noise_{i}"] = (1, 1, r, r)
    return t


@pytest.mark.parametrize("size", [256, 1024])
def test_state_dict_matches_rosinality_table(size: int) -> None:
    with torch.device("meta"):
        g = Generator(size)
    ours = {k: tuple(v.shape) for k, v in g.state_dict().items()}
    assert ours == rosinality_table(size)
    assert g.n_latent == {256: 14, 1024: 18}[size]


def test_one_by_one_stylemap_equals_wplus(tiny32: Generator) -> None:
    g = tiny32
    wplus = g.mapping(torch.randn(2, g.n_latent, g.style_dim))
    maps = [wplus[:, i, :, None, None].clone().requires_grad_(True) for i in range(g.n_latent)]
    img_maps = g.synthesis(maps)
    with torch.no_grad():
        img_w = g.synthesis(wplus)
    assert (img_maps - img_w).abs().max() <= 1e-5
    img_maps.square().mean().backward()
    assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in maps)


def test_constant_larger_maps_equal_wplus_and_varying_maps_do_not(tiny32: Generator) -> None:
    g = tiny32
    wplus = g.mapping(torch.randn(1, g.n_latent, g.style_dim))
    const = [wplus[:, i, :, None, None].expand(-1, -1, 4, 4).contiguous() for i in range(g.n_latent)]
    with torch.no_grad():
        ref = g.synthesis(wplus)
        assert (g.synthesis(const) - ref).abs().max() <= 1e-5
        varied = [m.clone() for m in const]
        varied[3][..., :2, :] += 2.0  # top half of one medium map changed
        out = g.synthesis(varied)
    diff = (out - ref).abs().mean(1)[0]
    assert diff.max() > 1e-2
    assert diff[: g.size // 2].mean() > diff[g.size // 2:].mean()


@pytest.mark.parametrize("name", ["rosinality_tiny32", "rosinality_small64"])
def test_rosinality_fixture_images_match(name: str) -> None:
    g = load_generator(fixture_path(f"{name}.pt"))
    ex = torch.load(fixture_path(f"{name}.expected.pt"), weights_only=True)
    with torch.no_grad():
        assert torch.allclose(g.mapping(ex["z"]), ex["w"], atol=1e-5)
        assert (g(ex["z"], noise=ex["noise"]) - ex["img_z"]).abs().max() <= 1e-4
        trunc = g(ex["z"], truncation=ex["truncation"], truncation_latent=g.w_avg, noise=ex["noise"])
        assert (trunc - ex["img_trunc"]).abs().max() <= 1e-4
        assert (g.synthesis(ex["wplus"], noise=ex["noise"]) - ex["img_wplus"]).abs().max() <= 1e-4


@pytest.mark.parametrize("name", ["nvidia_ada_tiny32", "nvidia_ada_small64"])
def test_nvidia_fixture_images_match(name: str) -> None:
    g = load_generator(fixture_path(f"{name}.pkl"))
    ex = torch.load(fixture_path(f"{name}.expected.pt"), weights_only=True)
    with torch.no_grad():
        ws = g.mapping(ex["z"])
        assert torch.allclose(ws, ex["ws"][:, 0], atol=1e-5)
        assert (g(ex["z"]) - ex["img_z"]).abs().max() <= 1e-4  # noise_mode='const' = stored buffers
        assert (g.synthesis(ex["wplus"]) - ex["img_wplus"]).abs().max() <= 1e-4
        # NVIDIA's reference ran its mapping in training mode, which moved w_avg toward the
        # batch mean (beta 0.995) once per call; img_trunc was made after two such moves.
        m = ws.mean(0)
        w_avg = m.lerp(m.lerp(g.w_avg, 0.995), 0.995)
        trunc = g(ex["z"], truncation=0.7, truncation_latent=w_avg)
        assert (trunc - ex["img_trunc"]).abs().max() <= 1e-4


def test_conv_clamp_bounds_activations() -> None:
    torch.manual_seed(0)
    chans = {4: 16, 8: 16, 16: 8}
    free = Generator(16, 16, 2, channels=chans)
    loose = Generator(16, 16, 2, channels=chans, conv_clamp=1e9)
    tight = Generator(16, 16, 2, channels=chans, conv_clamp=0.05)
    loose.load_state_dict(free.state_dict())
    tight.load_state_dict(free.state_dict())
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(free(z), loose(z))
        out = tight(z)
    # each toRGB output is clamped, and the skip sum has 3 of them
    assert out.abs().max() <= 0.05 * 3 + 1e-6
    assert not torch.allclose(out, free(z))


def test_mean_latent_is_reproducible(tiny32: Generator) -> None:
    a, b = tiny32.mean_latent(300, seed=3), tiny32.mean_latent(300, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, tiny32.mean_latent(300, seed=4))


def test_layer_sizes_are_the_feature_sizes_each_style_meets() -> None:
    g = tiny_generator(32, style_dim=16)
    seen: dict[int, set[int]] = {}
    wplus = torch.randn(1, g.n_latent, 16)
    calls = []
    from optinv.engine.generator import ModulatedConv2d

    original = ModulatedConv2d.modulated  # every modulated conv (StyledConv's fused path too) goes through it

    def spy(self, x, w):
        calls.append((x.shape[-1], w))
        return original(self, x, w)

    ModulatedConv2d.modulated = spy
    try:
        with torch.no_grad():
            g.synthesis(list(wplus.unbind(1)))
    finally:
        ModulatedConv2d.modulated = original
    for size, style in calls:
        idx = next(i for i in range(g.n_latent) if style is wplus.unbind(1)[i] or torch.equal(style, wplus[:, i]))
        seen.setdefault(idx, set()).add(size)
    assert [sorted(seen[i]) for i in range(g.n_latent)] == [[s] for s in g.layer_sizes()]
    assert g.layer_sizes() == [4, 4, 8, 8, 16, 16, 32, 32]


def test_cached_weight_work_follows_every_change_of_the_weights() -> None:
    """The per-conv cache of weight-only work must never serve stale weights."""
    g = tiny_generator(32, style_dim=16).requires_grad_(False)
    w = torch.randn(2, g.n_latent, 16)

    def fresh() -> torch.Tensor:  # the same weights in a generator that never cached anything
        other = tiny_generator(32, style_dim=16)
        other.load_state_dict(g.state_dict())
        return other.synthesis(w)

    before = g.synthesis(w)  # fills the caches
    with torch.no_grad():  # in place: the version counter moves (a scale alone would be demodulated away)
        g.convs[0].conv.weight.add_(torch.randn_like(g.convs[0].conv.weight))
    assert not torch.allclose(before, g.synthesis(w), atol=1e-3)
    assert torch.allclose(g.synthesis(w), fresh(), atol=1e-6)
    g.load_state_dict(tiny_generator(32, style_dim=16).state_dict())
    assert torch.allclose(g.synthesis(w), fresh(), atol=1e-6)
    out64 = g.double().synthesis(w.double())
    assert out64.dtype == torch.float64
    g.float()
    original = g.convs[0].conv.weight  # a swapped-in tensor (what torch.func.functional_call does)
    g.convs[0].conv.weight = torch.nn.Parameter(original + torch.randn_like(original), requires_grad=False)
    doubled = g.synthesis(w)
    g.convs[0].conv.weight = original
    assert not torch.allclose(doubled, g.synthesis(w), atol=1e-3)
    assert torch.allclose(g.synthesis(w), fresh(), atol=1e-6)
    grad_w = torch.randn(1, g.n_latent, 16, requires_grad=True)
    g.requires_grad_(True)
    g.synthesis(grad_w).sum().backward()
    assert g.convs[0].conv.weight.grad is not None  # with gradients on, the weights are in the graph


@pytest.mark.parametrize("x_batch,style_batch", [(1, 1), (3, 3), (1, 3)])
def test_torgb_batched_product_equals_the_scaled_input_convolution(x_batch: int, style_batch: int) -> None:
    """toRGB scales its small weight per sample instead of the full-size input: same image, same gradients
    (an input shared by a batch of styles takes the broadcasting path)."""
    import torch.nn.functional as F

    from optinv.engine.generator import ModulatedConv2d

    torch.manual_seed(0)
    conv = ModulatedConv2d(8, 3, 1, 16, demodulate=False)
    x = torch.randn(x_batch, 8, 12, 12, requires_grad=True)
    w = torch.randn(style_batch, 16, requires_grad=True)
    out, d = conv.modulated(x, w)
    textbook = F.conv2d(x * conv.modulation(w)[:, :, None, None], conv.weight[0] * conv.scale)
    assert d is None and out.shape == (style_batch, 3, 12, 12)
    torch.testing.assert_close(out, textbook, rtol=1e-5, atol=1e-5)
    probe = torch.randn_like(out)
    ours = torch.autograd.grad((out * probe).sum(), (x, w))
    theirs = torch.autograd.grad((textbook * probe).sum(), (x, w))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
