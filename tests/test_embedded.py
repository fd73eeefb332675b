"""The shipped model, encoders and directions: they load, invert, warm-start and edit."""

from __future__ import annotations

import pytest
import torch

from conftest import ROOT
from optinv.engine import jobs
from optinv.engine.operators import Identity

MODEL = ROOT / "samples" / "models" / "synthfaces64.pt"
pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="embedded model not exported")


@pytest.fixture(scope="module")
def g():
    from optinv.io.checkpoints import load_generator

    return load_generator("synthfaces64")


def test_inverting_a_generated_image_recovers_it(g) -> None:
    z = torch.randn(1, g.style_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        target = (g(z) + 1) / 2
    opts = jobs.JobOptions(space="wplus", recipe="1*L2", steps=300, lr=0.05, schedule="fixed", init="mean",
                           progress=False)
    r = jobs.solve("invert", g, target, ["x"], Identity(), opts)[0]
    assert r.metrics["psnr"] >= 30.0, r.metrics


def test_card_lists_encoders_and_directions_that_exist(g) -> None:
    from optinv.edit.directions import load_direction
    from optinv.engine.warmstart import find_encoder

    for space in ("wplus", "stylemap"):
        assert find_encoder(g, space) is not None
    name, vec = load_direction("smile", g)
    assert name == "smile" and vec.shape == (g.style_dim,) and abs(float(vec.norm()) - 1) < 1e-4


def test_encoder_warm_start_beats_the_mean_on_a_held_out_render(g) -> None:
    img = sorted((ROOT / "samples" / "images").glob("*.png"))[0]
    psnr = {}
    for init in ("mean", "encoder"):
        opts = jobs.JobOptions(space="stylemap", recipe="1*L2", steps=1, lr=1e-9, init=init, progress=False)
        psnr[init] = jobs.invert([img], model=g, device="cpu", options=opts)[0].metrics["psnr"]
    assert psnr["encoder"] > psnr["mean"] + 2.0, psnr
