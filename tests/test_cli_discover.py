"""`optinv directions discover` and `optinv edit --edit NAME=AMOUNT` end to end on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import tiny_generator
from optinv.io.checkpoints import save_generator
from optinv.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("discover")
    g = tiny_generator(16, style_dim=16, seed=3)
    g.card = {"name": "tiny16"}
    model = save_generator(g, d / "tiny16.pt")
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(d / "a.png")
    r = invoke("invert", d / "a.png", "--model", model, "--steps", "2", "--space", "wplus", "--out", d / "inv", "-q")
    assert r.exit_code == 0, r.output
    files = {}
    for method, space in (("curvilinear", "w"), ("warped", "w"), ("linear", "z")):
        files[method] = d / f"{method}.paths.pt"
        r = invoke("directions", "discover", "--method", method, "--k", "2", "--space", space, "--steps", "3",
                   "--batch", "2", "--predictor", "none", "--out", files[method], "--model", model)
        assert r.exit_code == 0, r.output
        assert "path0" in r.output and files[method].exists() and (d / f"{method}.paths.pt.ckpt").exists()
    return {"model": model, "dir": d, "files": files, "latent": d / "inv" / "a.latent.pt"}


def test_discover_resumes_its_checkpoint(setup):
    r = invoke("directions", "discover", "--method", "curvilinear", "--k", "2", "--steps", "4", "--batch", "2",
               "--predictor", "none", "--out", setup["files"]["curvilinear"], "--model", setup["model"])
    assert r.exit_code == 0, r.output
    assert "after 4 steps" in r.output
    r = invoke("directions", "discover", "--method", "curvilinear", "--k", "2", "--steps", "4", "--batch", "2",
               "--predictor", "none", "--out", setup["files"]["curvilinear"], "--model", setup["model"])
    assert r.exit_code == 0 and "kept" in r.output


def test_curvilinear_edits_in_either_order_give_the_same_latent(setup, tmp_path):
    outs = []
    for i, order in enumerate((("path0=+2", "path1=-1"), ("path1=-1", "path0=+2"))):
        args = [x for e in order for x in ("--edit", e)]
        r = invoke("edit", setup["latent"], *args, "--paths", setup["files"]["curvilinear"], "--model",
                   setup["model"], "--out", tmp_path / str(i))
        assert r.exit_code == 0, r.output
        assert "order" not in r.output
        (lat,) = (tmp_path / str(i)).glob("*.latent.pt")
        outs.append(torch.load(lat, weights_only=True)["wplus"])
        assert (tmp_path / str(i) / lat.name.replace(".latent.pt", ".png")).exists()
    orig = torch.load(setup["latent"], weights_only=True)["wplus"]
    assert (outs[0] - outs[1]).abs().max() <= 1e-5
    assert (outs[0] - orig.reshape(outs[0].shape)).abs().max() > 1e-3


def test_warped_edits_say_the_order_matters(setup, tmp_path):
    r = CliRunner().invoke(main, ["edit", str(setup["latent"]), "--edit", "path0=+1", "--edit",
                                                  "path1=+1", "--paths", str(setup["files"]["warped"]),
                                                  "--model", str(setup["model"]), "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "order matters" in r.stderr or "another order" in r.stderr


def test_clear_errors(setup, tmp_path):
    r = invoke("edit", setup["latent"], "--edit", "path0=+1", "--paths", setup["files"]["linear"], "--model",
               setup["model"], "--out", tmp_path)
    assert r.exit_code != 0 and "--space w" in r.output and "Traceback" not in r.output
    r = invoke("edit", setup["latent"], "--edit", "smile", "--paths", setup["files"]["curvilinear"], "--model",
               setup["model"], "--out", tmp_path)
    assert r.exit_code != 0 and "NAME=AMOUNT" in r.output
    r = invoke("edit", setup["latent"], "--edit", "beard=+1", "--paths", setup["files"]["curvilinear"], "--model",
               setup["model"], "--out", tmp_path)
    assert r.exit_code != 0 and "unknown path" in r.output
    r = invoke("edit", setup["latent"], "--model", setup["model"], "--out", tmp_path)
    assert r.exit_code != 0 and "--edit" in r.output
