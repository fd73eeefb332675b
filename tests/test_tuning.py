"""Pivotal tuning: the weight delta (low rank / full), its storage and its effect on renders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_generator
from optinv.engine import tuning as T
from optinv.errors import OptinvError
from optinv.io.fileio import atomic_torch_save
from optinv.engine.generator import Generator


def _pivot(g, seed: int = 1):
    """A W+ pivot and its noise for ``g``, and a target the pivot does not reach exactly."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = g.mapping(torch.randn(2, g.style_dim, generator=gen))
    pivot = w[:1, None].expand(-1, g.n_latent, -1).clone()
    other = w[1:, None].expand(-1, g.n_latent, -1)
    noise = [n.clone() for n in g.noise_list()]
    with torch.no_grad():
        target = (g.synthesis(0.5 * (pivot + other), noise=noise) + 1) / 2
    return pivot, noise, target


def _render(g, styles, noise):
    with torch.no_grad():
        return (g.synthesis(styles, noise=noise) + 1) / 2


def test_rank_zero_and_fresh_delta_are_the_identity(tiny32):
    pivot, noise, _ = _pivot(tiny32)
    base = _render(tiny32, pivot, noise)
    empty = T.WeightDelta(tiny32, "lowrank", rank=0)
    assert len(list(empty.parameters())) == 0
    rec = empty.to_record(tiny32)
    assert T.tensor_bytes(rec) == 0
    assert torch.equal(_render(T.tuned_generator(tiny32, rec), pivot, noise), base)
    fresh = T.WeightDelta(tiny32, "lowrank", rank=3, seed=5)  # B = 0: exactly no change before training
    assert torch.equal(_render(T.tuned_generator(tiny32, fresh.to_record(tiny32)), pivot, noise), base)
    # rank-0 tuning runs no steps and returns the untuned render
    res = T.tune(tiny32, pivot, noise, base, T.TuneSettings(steps=5, rank=0, progress=False))
    assert torch.equal(res.image, base[0])


@pytest.mark.parametrize("mode", ["lowrank", "full"])
def test_tuned_result_reproduced_exactly_after_save_and_load(tiny32, tmp_path, mode):
    pivot, noise, target = _pivot(tiny32)
    before = float((_render(tiny32, pivot, noise) - target).pow(2).mean())
    s = T.TuneSettings(steps=12, lr=1e-2 if mode == "lowrank" else 3e-3, mode=mode, rank=2, progress=False)
    res = T.tune(tiny32, pivot, noise, target, s)
    after = float((res.image - target[0]).pow(2).mean())
    assert after < 0.8 * before  # tuning moved G(pivot) towards the target
    path = atomic_torch_save(res.record, tmp_path / "delta.pt")
    loaded = T.validate_tuning(torch.load(path, weights_only=True), tiny32)
    again = _render(T.tuned_generator(tiny32, loaded), pivot, noise)[0]
    assert torch.equal(again, res.image)
    assert not torch.equal(_render(tiny32, pivot, noise)[0], res.image)  # the base model is untouched


def test_lowrank_is_much_smaller_than_full(tiny32):
    low = T.WeightDelta(tiny32, "lowrank", rank=1).to_record(tiny32)
    full = T.WeightDelta(tiny32, "full").to_record(tiny32)
    n_conv = len(T.conv_weight_names(tiny32))
    assert len(low["a"]) == n_conv and all(a.shape[0] == 1 for a in low["a"])
    assert T.tensor_bytes(full) == 4 * sum(p.numel() for n, p in tiny32.named_parameters() if not n.startswith("style."))
    assert T.tensor_bytes(low) * 5 < T.tensor_bytes(full)


def test_locality_keeps_random_samples_closer(tiny32):
    pivot, noise, target = _pivot(tiny32)
    z = torch.randn(4, tiny32.style_dim, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        w = tiny32.mapping(z)[:, None].expand(-1, tiny32.n_latent, -1)
    base = _render(tiny32, w, None)

    def drift(locality: float) -> float:
        s = T.TuneSettings(steps=15, lr=3e-3, mode="full", locality=locality, progress=False)
        g2 = T.tuned_generator(tiny32, T.tune(tiny32, pivot, noise, target, s).record)
        return float((_render(g2, w, None) - base).pow(2).mean())

    assert drift(10.0) < drift(0.0)


def test_bad_deltas_are_one_clear_error(tiny32):
    rec = T.WeightDelta(tiny32, "lowrank", rank=2).to_record(tiny32)
    other = Generator(32, 32, 2, channels={4: 16, 8: 16, 16: 8, 32: 8})
    with pytest.raises(OptinvError, match="does not fit"):
        T.tuned_generator(other, rec)
    bad = {**rec, "a": rec["a"][:-1]}
    with pytest.raises(OptinvError, match="do not match"):
        T.validate_tuning(bad)
    with pytest.raises(OptinvError, match="rank"):
        T.TuneSettings(rank=-1).validate()
    with pytest.raises(OptinvError, match="mode"):
        T.WeightDelta(tiny32, "dense")


# ------------------------------------------------------------------------------ the invert job
def _targets(g, seeds):
    with torch.no_grad():
        z = torch.randn(len(seeds), g.style_dim, generator=torch.Generator().manual_seed(seeds[0]))
        for i, s in enumerate(seeds):
            z[i] = torch.randn(g.style_dim, generator=torch.Generator().manual_seed(s))
        return ((g(z) + 1) / 2).clamp(0, 1)  # inputs in [0, 1], as the jobs take tensors


def _tuned_invert(g, images, **kw):
    from optinv.engine import jobs

    return jobs.invert(list(images), model=g, device="cpu", tune=True, steps=6, lr=0.05, recipe="1*L2",
                       tune_steps=6, batch=2, progress=False, **kw)


def test_invert_tune_batch_items_independent_and_file_round_trip(tmp_path):
    from optinv.io.latents import load_latent, record_from_codes, render_latent, save_latent

    g = tiny_generator(32, seed=3)
    a, b, c = _targets(g, [11, 12, 13])
    first = _tuned_invert(g, [a, b])
    second = _tuned_invert(g, [a, c])
    ra, rb = first
    assert ra.metrics["space"] == "w" and ra.metrics["tune_rank"] == 4 and ra.metrics["tune_bytes"] > 0
    assert ra.metrics["psnr"] > ra.metrics["pivot_psnr"]
    # image a's result does not depend on which image shares its batch
    assert torch.equal(second[0].image, ra.image)
    for key in ("a", "b"):
        assert all(torch.equal(x, y) for x, y in zip(second[0].latent["tuning"][key], ra.latent["tuning"][key]))
    assert not torch.equal(rb.latent["tuning"]["b"][0], ra.latent["tuning"]["b"][0])
    # the saved latent re-renders the tuned result exactly, from the base model or its tuned copy
    path = save_latent(ra.latent, tmp_path / "a.latent.pt")
    rec = load_latent(path, g)
    assert torch.equal(render_latent(g, rec)[0], ra.image)
    assert torch.equal(render_latent(T.tuned_generator(g, rec["tuning"]), rec)[0], ra.image)
    assert not torch.equal(render_latent(g, {k: v for k, v in rec.items() if k != "tuning"})[0], ra.image)
    # an edited code drawn from it keeps its tuning (same generator)
    edited = record_from_codes(rec, [n[0] for n in rec["noise"]], wplus=rec["wplus"])
    assert edited["tuning"]["id"] == rec["tuning"]["id"]
    assert torch.equal(render_latent(g, edited)[0], ra.image)


def test_tune_is_for_invert_only():
    from optinv.engine import jobs

    g = tiny_generator(32)
    low = torch.zeros(1, 3, 8, 8)
    with pytest.raises(OptinvError, match="`tune` works with invert only"):
        jobs.pulse([low], scale=4, model=g, device="cpu", tune=True, steps=1, progress=False)
    with pytest.raises(OptinvError, match="tune_rank"):
        jobs.invert([low], model=g, device="cpu", tune=True, tune_rank=-2)


def test_cli_invert_tune_then_generate_and_edit(tmp_path):
    import json

    from click.testing import CliRunner
    from PIL import Image

    from optinv.io.checkpoints import save_generator
    from optinv.cli import main

    g = tiny_generator(32, seed=5)
    g.card = {"name": "tiny32", "default_recipes": {"invert": "1*L2"}}
    model = save_generator(g, tmp_path / "tiny32.pt")
    img = ((_targets(g, [21])[0].permute(1, 2, 0) + 1) / 2 * 255).round().byte().numpy()
    Image.fromarray(img).save(tmp_path / "face.png")
    out = tmp_path / "out"
    run = CliRunner().invoke
    r = run(main, ["invert", str(tmp_path / "face.png"), "--model", str(model), "--steps", "4", "--tune",
                   "--tune-steps", "4", "--tune-rank", "2", "--out", str(out), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "face.json").read_text())["metrics"]
    assert m["tune_rank"] == 2 and m["space"] == "w"
    r = run(main, ["generate", "--latent", str(out / "face.latent.pt"), "--model", str(model), "--out",
                   str(tmp_path / "gen")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    again = list((tmp_path / "gen").glob("*.png"))
    assert len(again) == 1
    assert np.array_equal(np.asarray(Image.open(again[0])), np.asarray(Image.open(out / "face.png")))
    # edit / interpolate / mix draw with the generator open_latent gives: the tuned one
    from optinv.edit import edits as E
    from optinv.io.latents import open_latent, render_latent

    rec, g2 = open_latent(out / "face.latent.pt", model)
    assert g2.card["tuned"]["id"] == rec["tuning"]["id"]
    assert torch.equal(E.render(g2, [E.from_latent(rec)])[0], render_latent(g2, rec)[0].clamp(0, 1))
    assert not torch.equal(E.render(g, [E.from_latent(rec)])[0], E.render(g2, [E.from_latent(rec)])[0])
    r = run(main, ["invert", str(tmp_path / "face.png"), "--model", str(model), "--tune", "--tune-rank", "-1",
                   "--out", str(out), "-q"])
    assert r.exit_code != 0 and "--tune-rank" in r.output and "Traceback" not in r.output
