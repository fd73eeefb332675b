"""The training script runs tiny iterations, resumes exactly, exports a loadable model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from optinv.io.checkpoints import load_generator
from losses import pixel
from optinv.world import synthfaces
from optinv.world.teacher import render_teacher

sys.path.insert(0, str(ROOT / "scripts"))
import train_generator  # noqa: E402

TINY = ["--size", "16", "--channels", "16,16,8", "--style-dim", "48", "--n-mlp", "2", "--batch", "4",
        "--workers", "0", "--sample-every", "1000", "--save-every", "1000"]


def run(out: Path, *extra: str) -> None:
    train_generator.main([str(out), *TINY, *extra])


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "latest.pt", weights_only=True)["g_ema"]


@pytest.mark.parametrize("mode", ["distill", "gan"])
def test_two_iterations_then_resume_equals_a_straight_run(tmp_path: Path, mode: str) -> None:
    extra: list[str] = ["--mode", mode, "--kimg", "1"]
    if mode == "gan":
        data = tmp_path / "data"
        data.mkdir()
        for s in range(6):
            synthfaces.render(s, 16)[0].save(data / f"{s}.png")
        extra += ["--data", str(data), "--r1-every", "2"]
    run(tmp_path / "straight", *extra, "--max-steps", "4")
    run(tmp_path / "resumed", *extra, "--max-steps", "2")
    first = weights(tmp_path / "resumed")
    run(tmp_path / "resumed", *extra, "--max-steps", "2")
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert torch.load(tmp_path / "resumed" / "latest.pt", weights_only=True)["step"] == 4
    assert any(not torch.equal(first[k], b[k]) for k in b)  # the second call trained
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_export_writes_a_model_with_its_card(tmp_path: Path) -> None:
    run(tmp_path / "r", "--kimg", "1", "--max-steps", "1")
    dst = tmp_path / "m.pt"
    train_generator.main([str(tmp_path / "r"), "--export", str(dst)])
    g = load_generator(dst)
    assert g.size == 16 and g.card["training"]["mode"] == "distill"
    assert torch.isfinite(g.w_avg).all() and g.w_avg.abs().sum() > 0
    assert any("--max-steps 1" in c for c in g.card["training"]["commands"])
    # a new run can start from the exported weights
    run(tmp_path / "r2", "--kimg", "1", "--max-steps", "1", "--init", str(dst), "--lr", "0")
    again = weights(tmp_path / "r2")
    assert all(torch.equal(again[k], v) for k, v in g.state_dict().items())


def test_teacher_is_a_function_of_the_pixel_normalised_z() -> None:
    z = torch.randn(2, 64, generator=torch.Generator().manual_seed(0))
    a = render_teacher(z, 16)
    b = render_teacher(z * 3.0, 16)  # same direction → same portrait
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b)
    assert not torch.equal(a[0], a[1])


@pytest.mark.parametrize("name,size", [("synthfaces64", 64), ("synthfaces64v1", 64), ("synthfaces256", 256)])
def test_shipped_model_loads_and_generates(name: str, size: int) -> None:
    path = ROOT / "samples" / "models" / f"{name}.pt"
    if not path.exists():
        pytest.skip("embedded model not exported yet")
    assert path.stat().st_size < 30 * 2 ** 20
    g = load_generator(name)
    assert g.size == g.card["resolution"] == size
    with torch.no_grad():
        img = g(torch.randn(2, g.style_dim))
    assert img.shape == (2, 3, size, size) and torch.isfinite(img).all()
    assert g.card["training"]["kimg"] > 0 and "trained_on" in g.card


def test_relevant_style_init_blinds_the_affines_to_non_renderer_dimensions(tmp_path: Path) -> None:
    """A distill run from scratch starts with zero style weights on z's dimensions ≥ N_PARAMS."""
    run(tmp_path / "r", "--kimg", "1", "--max-steps", "1", "--lr", "0")
    g = weights(tmp_path / "r")
    mods = [k for k in g if k.endswith("modulation.weight")]
    assert mods and all(g[k][:, synthfaces.N_PARAMS:].abs().max() == 0 for k in mods)
    assert all(g[k][:, : synthfaces.N_PARAMS].abs().max() > 0 for k in mods)


def test_laplacian_pyramid_loss_is_zero_on_equal_images_and_sees_edges() -> None:
    a = torch.zeros(1, 3, 16, 16)
    b = a.clone()
    b[..., 8:, :] = 1.0  # one sharp edge
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(b, (1, 1, 1, 1), mode="replicate"), 3, 1)
    assert train_generator.laplacian_pyramid_l1(b, b).item() == 0.0
    assert train_generator.laplacian_pyramid_l1(blurred, b) > 0


def _edge(offset: int = 0, width: int = 32) -> torch.Tensor:
    """A vertical step from −1 to 1 at column 16 + offset."""
    img = -torch.ones(1, 3, width, width)
    img[..., 16 + offset:] = 1.0
    return img


def test_edge_energy_prefers_a_shifted_step_to_a_ramp_or_a_halo() -> None:
    """The term behind the 256² model's sharpening: a clean step one pixel off costs less than
    the L2-safe ramp at the right place, and an overshooting rim costs more than the clean step."""
    target = _edge()
    shifted = _edge(offset=1)
    ramp = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(target, (2, 2, 2, 2), mode="replicate"), 5, 1)
    halo = target.clone()
    halo[..., 16:18] = 1.6
    halo[..., 14:16] = -1.6
    cost = lambda x: pixel.edge_match(x, target).item()  # noqa: E731
    assert cost(target) < 1e-3
    assert cost(shifted) < cost(ramp)
    assert cost(shifted) < cost(halo)
    # while plain L2 rewards the hedge: the ramp is closer than the shifted step
    assert (ramp - target).pow(2).mean() < (shifted - target).pow(2).mean()


def test_train_from_trains_only_the_top_blocks(tmp_path: Path) -> None:
    run(tmp_path / "full", "--kimg", "1", "--max-steps", "1")
    run(tmp_path / "top", "--kimg", "1", "--max-steps", "2", "--init", str(tmp_path / "full"),
        "--train-from", "16", "--edge-weight", "1", "--ema-kimg", "0.001")
    before = torch.load(tmp_path / "full" / "latest.pt", weights_only=True)["g_ema"]  # what --init starts from
    after = torch.load(tmp_path / "top" / "latest.pt", weights_only=True)["g"]
    moved = {k for k in after if after[k].is_floating_point() and not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(("convs.2.", "convs.3.", "to_rgbs.1.")) for k in moved), sorted(moved)
    with pytest.raises(SystemExit, match="train-from"):
        run(tmp_path / "bad", "--kimg", "1", "--max-steps", "1", "--train-from", "12")


def test_growing_an_exported_model_records_its_parent_and_starts_from_its_image(tmp_path: Path) -> None:
    run(tmp_path / "small", "--kimg", "1", "--max-steps", "1")
    parent = tmp_path / "parent16.pt"
    train_generator.main([str(tmp_path / "small"), "--export", str(parent)])
    from optinv.io.checkpoints import save_generator

    named = load_generator(parent)
    named.card["encoders"] = {"wplus": "parent16.enc_wplus.pt"}
    save_generator(named, parent)
    big_args = ["--size", "32", "--channels", "16,16,8,8", "--style-dim", "48", "--n-mlp", "2", "--batch", "4",
                "--workers", "0", "--sample-every", "1000", "--save-every", "1000"]
    train_generator.main([str(tmp_path / "big"), *big_args, "--kimg", "1", "--max-steps", "1", "--lr", "0",
                          "--init", str(parent)])
    child = tmp_path / "child32.pt"
    train_generator.main([str(tmp_path / "big"), "--export", str(child)])
    small, big = load_generator(parent), load_generator(child)
    assert big.size == 32 and big.card["grown_from"] == "parent16"
    assert big.card["encoders"] == {"wplus": "parent16.enc_wplus.pt"}  # the parent's encoders serve it
    z = torch.randn(2, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the new toRGB starts at zero: the grown model draws the parent's image, upsampled
        a = torch.nn.functional.avg_pool2d(big(z, randomize_noise=False), 2)
        b = small(z, randomize_noise=False)
    assert (a - b).abs().mean() < 0.05
