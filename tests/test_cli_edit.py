"""Editing commands end to end on latents made by `optinv invert` with a small model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import tiny_generator
from optinv.io.checkpoints import save_generator
from optinv.cli import main
from optinv.edit.directions import save_directions


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("edit")
    g = tiny_generator(16, style_dim=16, seed=3)
    g.card = {"name": "tiny16"}
    model = save_generator(g, d / "tiny16.pt")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(d / f"{name}.png")
    out = d / "out"
    for space in ("wplus", "stylemap"):
        r = invoke("invert", d / "a.png", d / "b.png", "--model", model, "--steps", "2", "--space", space,
                   "--out", out / space, "-q")
        assert r.exit_code == 0, r.output
    vec = torch.zeros(16)
    vec[0] = 1.0
    from optinv.io.checkpoints import load_generator

    dirs = save_directions({"up": {"vector": vec, "method": "test"}}, load_generator(model), d / "dirs.pt")
    return {"model": model, "out": out, "dirs": dirs, "dir": d}


@pytest.mark.parametrize("space", ["wplus", "stylemap"])
def test_edit_writes_a_strip_and_reloadable_latents(setup, space, tmp_path) -> None:
    lat = setup["out"] / space / "a.latent.pt"
    r = invoke("edit", lat, "--direction", setup["dirs"], "--alpha", "-2", "--alpha", "0", "--alpha", "2",
               "--model", setup["model"], "--out", tmp_path)
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "a.up.png") as strip:
        assert strip.size[0] > 2 * strip.size[1]
    zero = tmp_path / "a.up+0.latent.pt"
    r = invoke("generate", "--latent", zero, "--model", setup["model"], "--out", tmp_path)
    assert r.exit_code == 0, r.output
    # alpha 0 re-renders the original inversion
    orig = np.asarray(Image.open(setup["out"] / space / "a.png")).astype(int)
    again = np.asarray(Image.open(tmp_path / "a.up+0.render.png")).astype(int)
    assert np.abs(orig - again).max() <= 1


def test_interpolate_mix_blend(setup, tmp_path) -> None:
    a, b = setup["out"] / "stylemap" / "a.latent.pt", setup["out"] / "wplus" / "b.latent.pt"
    for args in (["interpolate", a, b, "--steps", "4"], ["mix", a, b, "--layers", "0-2"],
                 ["blend", a, b, "--mask", "vertical"]):
        r = invoke(*args, "--model", setup["model"], "--out", tmp_path)
        assert r.exit_code == 0, r.output
    assert (tmp_path / "a_to_b.png").exists() and (tmp_path / "a_mix_b.latent.pt").exists()
    assert (tmp_path / "a_blend_b.png").exists()


def test_directions_fit_from_a_listing(setup, tmp_path) -> None:
    lines = []
    for space in ("wplus", "stylemap"):
        for k, name in enumerate(("a", "b")):
            lines.append(json.dumps({"latent": str(setup["out"] / space / f"{name}.latent.pt"), "smile": float(k)}))
    listing = tmp_path / "l.jsonl"
    listing.write_text("\n".join(lines) + "\n")
    dest = tmp_path / "smile.pt"
    r = invoke("directions", "fit", listing, "--label", "smile", "--out", dest, "--model", setup["model"])
    assert r.exit_code == 0, r.output
    r = invoke("edit", setup["out"] / "wplus" / "a.latent.pt", "--direction", dest, "--alpha", "1",
               "--model", setup["model"], "--out", tmp_path)
    assert r.exit_code == 0, r.output


def test_edit_errors_are_one_line(setup, tmp_path) -> None:
    lat = setup["out"] / "wplus" / "a.latent.pt"
    for args, msg in ((["edit", lat, "--direction", "nope", "--model", setup["model"]], "direction"),
                      (["edit", tmp_path / "missing.latent.pt", "--direction", "x"], "no such file"),
                      (["mix", lat, lat, "--layers", "0-99", "--model", setup["model"]], "layers")):
        r = invoke(*args, "--out", tmp_path)
        assert r.exit_code == 1 and r.output.startswith("error:") and msg in r.output, r.output
