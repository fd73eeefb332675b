"""The photo and format commands: align, paste, export, directions sefa (embedded model, real photo)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from optinv.cli import main
from optinv.faces import backend

needs_dlib = pytest.mark.skipif(not backend.available(), reason="the [faces] extra is not installed")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    data = pytest.importorskip("skimage.data")
    d = tmp_path_factory.mktemp("photos")
    ast = Image.fromarray(data.astronaut())
    ast.save(d / "astronaut.png")
    two = Image.new("RGB", (1024, 512))
    two.paste(ast, (0, 0))
    two.paste(ast, (512, 0))
    two.save(d / "two.png")
    Image.new("RGB", (300, 200), (120, 110, 100)).save(d / "blank.png")
    return d


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def test_align_without_the_extra_says_what_to_install(photos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)
    code, _, err = run("align", photos / "astronaut.png", "--size", 64, "--out", tmp_path)
    assert code == 1
    assert err.count("\n") == 1 and 'pip install "optinv[faces]"' in err


@needs_dlib
def test_align_writes_the_crop_and_its_transform(photos, tmp_path):
    from optinv.io.checkpoints import load_generator

    code, out, err = run("align", photos / "astronaut.png", "--out", tmp_path)  # size: the default model's
    assert code == 0, err
    n = load_generator(None).size
    assert Image.open(tmp_path / "astronaut.png").size == (n, n)
    t = json.loads((tmp_path / "astronaut.align.json").read_text())
    assert t["format"] == "optinv-face-transform" and t["photo_size"] == [512, 512] and len(t["quad"]) == 4


@needs_dlib
def test_align_messages_for_two_faces_and_none(photos, tmp_path):
    code, _, err = run("align", photos / "two.png", "--size", 32, "--out", tmp_path)
    assert code == 0 and "2 faces found, using face 1 (the largest); --face 1..2 picks another" in err
    code, out, err = run("align", photos / "blank.png", photos / "astronaut.png", "--size", 32, "--out", tmp_path)
    assert code == 1  # the photo without a face fails alone; the other is written
    assert err.startswith("error: ") and "blank.png: no face found (try" in err
    assert (tmp_path / "astronaut.png").exists()
    code, _, err = run("align", photos / "two.png", "--face", 3, "--size", 32, "--out", tmp_path / "f3")
    assert code == 1 and "--face 3, but 2 faces found" in err


@needs_dlib
def test_paste_puts_the_crop_back(photos, tmp_path):
    run("align", photos / "astronaut.png", "--size", 128, "--out", tmp_path / "aligned")
    code, out, err = run("paste", tmp_path / "aligned" / "astronaut.png", "--into", photos / "astronaut.png",
                         "--out", tmp_path / "out")
    assert code == 0, err
    pasted = np.asarray(Image.open(tmp_path / "out" / "astronaut.pasted.png"), dtype=int)
    photo = np.asarray(Image.open(photos / "astronaut.png"), dtype=int)
    assert pasted.shape == photo.shape
    assert np.array_equal(pasted[300:], photo[300:])  # below the face: untouched
    assert np.abs(pasted - photo)[110:150, 190:250].mean() < 8  # the face: the crop's own pixels again
    code, _, err = run("paste", photos / "two.png", "--into", photos / "astronaut.png", "--out", tmp_path / "out")
    assert code == 1 and "no alignment found" in err and "--transform" in err


@pytest.fixture(scope="module")
def inverted(tmp_path_factory):
    from conftest import ROOT

    d = tmp_path_factory.mktemp("inv")
    code, out, err = run("invert", ROOT / "samples" / "images" / "1000000.png", "--space", "wplus", "--steps", 2,
                         "--out", d, "-q")
    assert code == 0, err
    return d / "1000000.latent.pt"


def test_export_and_read_back_other_formats(inverted, tmp_path):
    from optinv.io.latents import load_latent, open_latent

    own = load_latent(inverted)
    code, _, err = run("export", inverted, "--format", "npz", "--dest", tmp_path / "w.npz")
    assert code == 0, err
    with np.load(tmp_path / "w.npz", allow_pickle=False) as z:
        assert torch.allclose(torch.from_numpy(z["w"][0]), own["wplus"])
    code, _, err = run("export", inverted, "--format", "rosinality", "--dest", tmp_path / "r.pt")
    assert code == 0, err
    rec, _ = open_latent(tmp_path / "r.pt")
    assert torch.equal(rec["wplus"], own["wplus"])
    code, out, err = run("generate", "--latent", tmp_path / "w.npz", "--out", tmp_path)
    assert code == 0 and (tmp_path / "w.render.png").exists(), err
    code, out, err = run("edit", tmp_path / "r.pt", "--direction", "smile", "--alpha", 1, "--out", tmp_path)
    assert code == 0 and (tmp_path / "r.smile+1.latent.pt").exists(), err


def test_directions_sefa(tmp_path):
    from optinv.edit.direction_formats import read_ganspace

    code, out, err = run("directions", "sefa", "--k", 3, "--out", tmp_path / "sefa.npz", "--preview", tmp_path / "p.png")
    assert code == 0, err
    assert out.count("eigenvalue") == 3 and Image.open(tmp_path / "p.png").size[0] > 0
    assert list(read_ganspace(tmp_path / "sefa.npz")) == ["pc0", "pc1", "pc2"]
    code, _, err = run("directions", "sefa", "--k", 0, "--out", tmp_path / "x.pt")
    assert code == 1 and "--k must be ≥ 1" in err


@needs_dlib
def test_invert_align_paste_back_and_edit(photos, tmp_path):
    from optinv.io.latents import load_latent

    code, out, err = run("invert", photos / "astronaut.png", "--align", "--paste-back", "--space", "wplus",
                         "--steps", 2, "-q", "--out", tmp_path)
    assert code == 0, err
    rec = load_latent(tmp_path / "astronaut.latent.pt")
    assert rec["alignment"]["photo_size"] == [512, 512] and rec["alignment"]["photo_path"].endswith("astronaut.png")
    metrics = json.loads((tmp_path / "astronaut.json").read_text())["metrics"]
    assert 0 < metrics["identity_distance"] < 2
    pasted = np.asarray(Image.open(tmp_path / "astronaut.pasted.png"), dtype=int)
    photo = np.asarray(Image.open(photos / "astronaut.png"), dtype=int)
    assert np.array_equal(pasted[300:], photo[300:]) and not np.array_equal(pasted[100:160, 190:260], photo[100:160, 190:260])
    code, out, err = run("edit", tmp_path / "astronaut.latent.pt", "-d", "smile", "-a", 3, "--paste-back", "--out", tmp_path)
    assert code == 0 and (tmp_path / "astronaut.smile+3.pasted.png").exists(), err
    assert load_latent(tmp_path / "astronaut.smile+3.latent.pt")["alignment"] == rec["alignment"]
    code, out, err = run("paste", tmp_path / "astronaut.smile+3.latent.pt", "--out", tmp_path / "p")  # photo: from the latent
    assert code == 0 and (tmp_path / "p" / "astronaut.smile+3.pasted.png").exists(), err


def test_align_option_errors(photos, tmp_path):
    code, _, err = run("invert", photos / "astronaut.png", "--paste-back", "--out", tmp_path)
    assert code == 1 and "--paste-back needs --align" in err
    code, _, err = run("pulse", photos / "astronaut.png", "--align", "--out", tmp_path)
    assert code == 1 and "pulse with --align needs --scale" in err
