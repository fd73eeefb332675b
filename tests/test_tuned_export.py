"""`export --format rosinality-generator`: a tuned latent's generator as a plain rosinality checkpoint.

The layout is checked against the reference fixture written by rosinality's own code (same keys,
same shapes) and by loading it back; with OPTINV_ROSINALITY naming a rosinality/stylegan2-pytorch
checkout, rosinality's ``Generator`` itself loads it with ``strict=True`` and draws the same image.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import fixture_path, load_script
from optinv.io.checkpoints import load_generator
from optinv.cli import main
from optinv.io.latents import load_latent, render_latent


def _face(g, path, seed: int = 3) -> None:
    with torch.no_grad():
        z = torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(seed))
        w = g.mapping(z).mean(0, keepdim=True)[:, None].expand(-1, g.n_latent, -1)
        img = ((g.synthesis(w) + 1) / 2).clamp(0, 1)[0]
    Image.fromarray((img.permute(1, 2, 0) * 255).round().byte().numpy()).save(path)


@pytest.fixture
def tuned(tmp_path):
    """The rosinality fixture, a face it draws, and that face inverted with a few tuning steps."""
    model = shutil.copy(fixture_path("rosinality_tiny32.pt"), tmp_path / "ros32.pt")
    g = load_generator(model)
    _face(g, tmp_path / "face.png")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["invert", str(tmp_path / "face.png"), "--model", str(model), "--steps", "3",
                                  "--space", "wplus", "--noise", "trainable", "--loss", "1*L2", "--tune",
                                  "--tune-mode", "full", "--tune-steps", "3", "--out", str(out), "-q"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return model, out / "face.latent.pt"


def _ours(path, rec) -> torch.Tensor:
    """The exported file drawn by optinv from its stored noise buffers, [1, 3, R, R] in [0, 1]."""
    g = load_generator(path)
    with torch.no_grad():
        return ((g.synthesis(rec["wplus"][None], noise=None) + 1) / 2).clamp(0, 1)


def test_export_tuned_generator_is_rosinality_layout_and_draws_the_tuned_image(tuned, tmp_path):
    model, latent = tuned
    dest = tmp_path / "tuned.pt"
    r = CliRunner().invoke(main, ["export", str(latent), "--format", "rosinality-generator", "-o", str(dest)])
    assert r.exit_code == 0, r.output
    ckpt = torch.load(dest, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"g_ema", "latent_avg"}
    reference = torch.load(model, map_location="cpu", weights_only=True)["g_ema"]  # written by rosinality's code
    assert {k: tuple(v.shape) for k, v in ckpt["g_ema"].items()} == {k: tuple(v.shape) for k, v in reference.items()}
    rec = load_latent(latent)
    base = load_generator(model)
    expected = render_latent(base, rec).clamp(0, 1)
    assert (_ours(dest, rec) - expected).abs().max() < 1e-5
    untuned = dict(rec)
    untuned.pop("tuning")
    assert (render_latent(base, untuned).clamp(0, 1) - expected).abs().max() > 1e-3  # the tuning is in the file
    # the latent's (trainable) noise went into the buffers; the rest of the weights changed too
    assert torch.equal(ckpt["g_ema"]["noises.noise_0"], rec["noise"][0])
    assert not torch.equal(ckpt["g_ema"]["convs.0.conv.weight"], reference["convs.0.conv.weight"])
    assert torch.equal(ckpt["latent_avg"], base.w_avg)


def test_export_default_name_and_keep_rule(tuned):
    _, latent = tuned
    run = CliRunner().invoke
    r = run(main, ["export", str(latent), "--format", "rosinality-generator"])
    assert r.exit_code == 0, r.output
    dest = latent.with_name("face.generator.pt")
    assert dest.is_file()
    r = run(main, ["export", str(latent), "--format", "rosinality-generator"])
    assert r.exit_code == 0 and "kept" in r.output


def test_export_generator_of_an_untuned_latent_is_one_line_error(tmp_path):
    model = shutil.copy(fixture_path("rosinality_tiny32.pt"), tmp_path / "ros32.pt")
    _face(load_generator(model), tmp_path / "face.png")
    run = CliRunner().invoke
    r = run(main, ["invert", str(tmp_path / "face.png"), "--model", str(model), "--steps", "2", "--loss", "1*L2",
                   "--out", str(tmp_path / "out"), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = run(main, ["export", str(tmp_path / "out" / "face.latent.pt"), "--format", "rosinality-generator",
                   "-o", str(tmp_path / "g.pt")])
    assert r.exit_code == 1
    assert "no pivotal tuning" in r.output and "--tune" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "g.pt").exists()


def test_rosinality_generator_loads_it_strict_and_draws_the_same(tuned, tmp_path):
    path = os.environ.get("OPTINV_ROSINALITY")
    if not path:
        pytest.skip("set OPTINV_ROSINALITY to a rosinality/stylegan2-pytorch checkout to run this")
    model, latent = tuned
    dest = tmp_path / "tuned.pt"
    assert CliRunner().invoke(main, ["export", str(latent), "--format", "rosinality-generator", "-o",
                                     str(dest)]).exit_code == 0
    ros = load_script("bench_speed").import_rosinality(path)
    ckpt = torch.load(dest, map_location="cpu", weights_only=True)
    g = load_generator(dest)
    wanted = dict(g.channels)

    class Sized(ros.Generator):  # rosinality's class fixes config-f widths; the fixture's are smaller
        @property
        def channels(self):
            return wanted

        @channels.setter
        def channels(self, value):
            pass

    theirs = Sized(g.size, g.style_dim, g.n_mlp)
    theirs.load_state_dict(ckpt["g_ema"], strict=True)
    theirs.eval()
    rec = load_latent(latent)
    with torch.no_grad():
        img, _ = theirs([rec["wplus"][None]], input_is_latent=True, randomize_noise=False)
    expected = render_latent(load_generator(model), rec).clamp(0, 1)
    assert np.abs(((img + 1) / 2).clamp(0, 1).numpy() - expected.numpy()).max() < 1e-4
