"""Encoders: shapes for two generator sizes, training resumes exactly, warm starts help."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, tiny_generator
from optinv.engine import jobs
from optinv.io.checkpoints import load_generator, save_generator
from optinv.engine.encoder import build_for, load_encoder, save_encoder
from optinv.engine.operators import Identity

sys.path.insert(0, str(ROOT / "scripts"))
from optinv.run import encoder_training as train_encoder  # noqa: E402


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("kind", ["wplus", "stylemap"])
def test_encoder_output_shapes(size: int, kind: str) -> None:
    g = tiny_generator(size, style_dim=16)
    enc = build_for(g, kind, width=16)
    out = enc(torch.rand(2, 3, size, size))
    if kind == "wplus":
        assert out.shape == (2, g.n_latent, 16)
    else:
        from optinv.engine.spaces import default_map_sizes

        assert [tuple(m.shape) for m in out] == [(2, 16, s, s) for s in default_map_sizes(g.n_latent, 2, 4, 1)]  # the encoder's own sides
    # untrained heads start near w_avg (offsets are added to it)
    vec = out if kind == "wplus" else torch.stack([m.mean(dim=(2, 3)) for m in out], 1)
    assert (vec.mean(dim=(0, 1)) - g.w_avg).abs().mean() < (g.w_avg.abs().mean() + 1.0)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    g = tiny_generator(32, style_dim=16)
    enc = build_for(g, "stylemap", width=16)
    x = torch.rand(1, 3, 32, 32)
    again = load_encoder(save_encoder(enc, tmp_path / "e.pt"))
    assert all(torch.equal(a, b) for a, b in zip(enc(x), again(x)))
    small = save_encoder(enc, tmp_path / "h.pt", half=True)
    assert small.stat().st_size < 0.6 * (tmp_path / "e.pt").stat().st_size
    halved = load_encoder(small)
    assert all(p.dtype == torch.float32 for p in halved.parameters())
    assert max((a - b).abs().max().item() for a, b in zip(enc(x), halved(x))) < 1e-2


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    g = tiny_generator(16, style_dim=16, seed=4)
    g.card = {"name": "tiny16"}
    return save_generator(g, tmp_path_factory.mktemp("m") / "tiny16.pt")


ARGS = ["--width", "16", "--batch", "16", "--save-every", "1000", "--image-every", "2", "--kimg", "10"]


def test_training_runs_two_iterations_and_resumes_exactly(tiny_model: Path, tmp_path: Path) -> None:
    common = ["--model", str(tiny_model), *ARGS]
    train_encoder.main([str(tmp_path / "a"), *common, "--max-steps", "4"])
    train_encoder.main([str(tmp_path / "b"), *common, "--max-steps", "2"])
    train_encoder.main([str(tmp_path / "b"), *common, "--max-steps", "2"])
    a = torch.load(tmp_path / "a" / "latest.pt", weights_only=True)["enc"]
    b = torch.load(tmp_path / "b" / "latest.pt", weights_only=True)["enc"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_keeps_recipe_and_a_new_loss_weight_restarts_adam(tiny_model: Path, tmp_path: Path,
                                                                   capsys) -> None:
    run = tmp_path / "r"
    common = ["--model", str(tiny_model), *ARGS]
    train_encoder.main([str(run), *common, "--image-weight", "5", "--max-steps", "2"])
    train_encoder.main([str(run), *common, "--max-steps", "2"])  # no flag: continues with weight 5
    assert "restarting Adam" not in capsys.readouterr().out
    train_encoder.main([str(run), *common, "--image-weight", "50", "--lr", "5e-4", "--max-steps", "2"])
    assert "loss settings changed: restarting Adam" in capsys.readouterr().out
    state = torch.load(run / "latest.pt", weights_only=True)
    hist = state["history"]
    assert [(h["from"], h["to"], h["image_weight"]) for h in hist] == [(0, 4, 5.0), (4, 6, 50.0)]
    assert state["opt"]["param_groups"][0]["lr"] == 5e-4
    assert state["opt"]["state"][0]["step"] == 2  # Adam's moments restarted at step 4
    enc_file = tmp_path / "e.pt"
    train_encoder.main([str(run), "--model", str(tiny_model), "--export", str(enc_file)])
    card = torch.load(enc_file, weights_only=True)["card"]
    assert card["steps"] == 6 and len(card["history"]) == 2 and "50.0·image MSE" in card["losses"]


def test_lpips_term_trains_and_a_missing_backbone_is_a_clear_error(tiny_model: Path, tmp_path: Path,
                                                                     monkeypatch) -> None:
    from losses import perceptual

    common = ["--model", str(tiny_model), *ARGS, "--lpips-weight", "0.8", "--max-steps", "2"]
    missing = tmp_path / "no_such_vgg.pth"
    with pytest.raises(SystemExit, match="cannot read LPIPS backbone"):
        train_encoder.main([str(tmp_path / "a"), *common, "--lpips-backbone", str(missing)])
    # an untrained backbone exercises the plumbing (not a perceptual metric)
    monkeypatch.setattr(train_encoder, "make_lpips", lambda net, backbone: perceptual.make_lpips(net, random_backbone=True))
    train_encoder.main([str(tmp_path / "b"), *common, "--lpips-net", "alex"])
    state = torch.load(tmp_path / "b" / "latest.pt", weights_only=True)
    assert state["step"] == 2 and state["history"][0]["lpips_weight"] == 0.8


def test_warm_start_beats_mean_init_at_step_zero(tiny_model: Path, tmp_path: Path) -> None:
    run = tmp_path / "enc"
    train_encoder.main([str(run), "--model", str(tiny_model), *ARGS, "--image-every", "0", "--max-steps", "150",
                        "--lr", "3e-3"])
    enc_file = tmp_path / "enc.pt"
    train_encoder.main([str(run), "--model", str(tiny_model), "--export", str(enc_file)])
    from optinv.io.checkpoints import load_generator

    g = load_generator(tiny_model)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        target = (g(z) + 1) / 2
    psnr = {}
    for init in ("mean", "encoder"):
        opts = jobs.JobOptions(space="wplus", recipe="1*L2", steps=1, lr=1e-9, init=init, encoder=str(enc_file),
                               progress=False)
        res = jobs.solve("invert", g, target, list("abcd"), Identity(), opts)
        psnr[init] = sum(r.metrics["psnr"] for r in res) / len(res)
    assert psnr["encoder"] > psnr["mean"] + 1.0, psnr
    # the DOMAIN term runs with that encoder, in W+ and in StyleMap space
    for space in ("wplus", "stylemap"):
        opts = jobs.JobOptions(space=space, recipe="1*L2+2*DOMAIN", steps=3, init="encoder", encoder=str(enc_file),
                               progress=False)
        r = jobs.solve("invert", g, target[:1], ["a"], Identity(), opts)[0]
        assert r.metrics["term_DOMAIN"] >= 0


def test_domain_without_encoder_is_a_clear_error(tiny_model: Path) -> None:
    from optinv.io.checkpoints import load_generator
    from optinv.errors import OptinvError

    g = load_generator(tiny_model)
    with pytest.raises(OptinvError, match="needs an encoder"):
        jobs.solve("invert", g, torch.rand(1, 3, 16, 16), ["a"], Identity(),
                   jobs.JobOptions(space="wplus", recipe="1*L2+1*DOMAIN", steps=1, progress=False))


def test_encode_command_writes_outputs_without_optimising(tiny_model: Path, tmp_path: Path) -> None:
    import numpy as np
    from click.testing import CliRunner
    from PIL import Image

    from optinv.io.checkpoints import load_generator
    from optinv.cli import main

    enc_file = save_encoder(build_for(load_generator(tiny_model), "stylemap", width=16), tmp_path / "e.pt")
    img = tmp_path / "x.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(img)
    r = CliRunner().invoke(main, ["encode", str(img), "--space", "stylemap", "--encoder", str(enc_file),
                                  "--model", str(tiny_model), "--out", str(tmp_path / "o")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    for suffix in (".png", ".latent.pt", ".compare.png", ".json"):
        assert (tmp_path / "o" / f"x{suffix}").exists()
    lat = torch.load(tmp_path / "o" / "x.latent.pt", weights_only=True)
    assert lat["space"] == "stylemap" and lat["settings"]["steps"] == 0
    r = CliRunner().invoke(main, ["encode", str(img), "--model", str(tiny_model), "--out", str(tmp_path / "o2")])
    assert r.exit_code == 1 and "needs an encoder" in r.output


@pytest.mark.parametrize("space", ["wplus", "stylemap"])
def test_warm_start_is_deterministic(tiny_model: Path, tmp_path: Path, space: str) -> None:
    """Two encoder-started runs of the same images give bit-identical latents and images."""
    from optinv.io.checkpoints import load_generator

    g = load_generator(tiny_model)
    enc_file = save_encoder(build_for(g, space, width=16), tmp_path / "e.pt")
    with torch.no_grad():
        target = (g(torch.randn(2, 16, generator=torch.Generator().manual_seed(5))) + 1) / 2
    runs = []
    for _ in range(2):
        opts = jobs.JobOptions(space=space, recipe="1*L2", steps=5, init="encoder", encoder=str(enc_file),
                               progress=False)
        runs.append(jobs.solve("invert", g, target, ["a", "b"], Identity(), opts))
    for a, b in zip(*runs):
        assert torch.equal(a.image, b.image)
        assert all(torch.equal(a.latent["tensors"][k], b.latent["tensors"][k]) for k in a.latent["tensors"])
        assert torch.equal(a.latent["wplus"], b.latent["wplus"])


def test_iterative_encoder_starts_as_its_one_pass_encoder_and_round_trips(tmp_path: Path) -> None:
    from optinv.engine import warmstart
    from optinv.engine.encoder import iterate, widen_to_iterative
    from optinv.errors import OptinvError

    g = tiny_generator(32, style_dim=16)
    one = build_for(g, "wplus", width=16)
    torch.nn.init.normal_(one.heads[0].linear.weight)  # a non-trivial first pass
    many = widen_to_iterative(one, passes=3)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(one(x), many(x))  # the first pass is the one-pass encoder
    assert many.refine_backbone.stem[0].weight.shape[1] == 6
    renders = []
    codes = iterate(many, lambda c: renders.append(c) or torch.rand(2, 3, 32, 32), x)
    assert len(renders) == 2 and torch.equal(codes, one(x))  # an untrained refiner corrects nothing
    torch.nn.init.normal_(many.refine_heads[0].linear.weight, std=0.1)
    a = many(x, torch.rand(2, 3, 32, 32), codes)
    b = many(x, torch.rand(2, 3, 32, 32), codes)
    assert not torch.equal(a, b) and torch.equal(a[:, 1:], codes[:, 1:])  # head 0 corrects, from the image
    with pytest.raises(ValueError, match="refinement pass"):
        one(x, torch.rand(2, 3, 32, 32), codes)
    with pytest.raises(OptinvError, match="needs the generator"):
        warmstart.encode(many, x)
    again = load_encoder(save_encoder(many, tmp_path / "r.pt"))
    assert again.passes == 3 and torch.equal(warmstart.encode(many, x, g), warmstart.encode(again, x, g))
    assert not torch.equal(warmstart.encode(many, x, g, passes=1), warmstart.encode(many, x, g))
    with pytest.raises(ValueError, match="passes"):
        build_for(g, "stylemap", width=16, passes=2)


def test_iterative_training_resumes_exactly_and_warm_starts_deterministically(tiny_model: Path, tmp_path: Path) -> None:
    from optinv.io.checkpoints import load_generator

    first = save_encoder(build_for(load_generator(tiny_model), "wplus", width=16), tmp_path / "one.pt")
    with pytest.raises(SystemExit, match="--init"):
        train_encoder.main([str(tmp_path / "x"), "--model", str(tiny_model), *ARGS, "--passes", "2"])
    common = ["--model", str(tiny_model), *ARGS, "--passes", "3", "--init", str(first)]
    train_encoder.main([str(tmp_path / "a"), *common, "--max-steps", "4"])
    train_encoder.main([str(tmp_path / "b"), *common, "--max-steps", "2"])
    train_encoder.main([str(tmp_path / "b"), "--model", str(tiny_model), "--max-steps", "2"])  # passes come from the run
    a = torch.load(tmp_path / "a" / "latest.pt", weights_only=True)["enc"]
    b = torch.load(tmp_path / "b" / "latest.pt", weights_only=True)["enc"]
    assert a["refine_backbone.stem.0.weight"].shape[1] == 6 and all(torch.equal(a[k], b[k]) for k in a)
    one = torch.load(first, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], one[k]) for k in one)  # the first pass stayed frozen
    assert a["refine_heads.0.linear.weight"].abs().sum() > 0  # the refiner learned
    enc_file = tmp_path / "r.pt"
    train_encoder.main([str(tmp_path / "a"), "--model", str(tiny_model), "--export", str(enc_file)])

    g = load_generator(tiny_model)
    with torch.no_grad():
        target = (g(torch.randn(2, 16, generator=torch.Generator().manual_seed(5))) + 1) / 2
    runs = [jobs.solve("invert", g, target, ["a", "b"], Identity(),
                       jobs.JobOptions(space="wplus", recipe="1*L2", steps=3, init="encoder", encoder=str(enc_file),
                                       progress=False)) for _ in range(2)]
    assert all(torch.equal(p.image, q.image) for p, q in zip(*runs))


def test_optinv_train_encoder_trains_and_exports_from_the_command_line(tiny_model: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from optinv.cli import main

    run, out = tmp_path / "run", tmp_path / "enc.pt"
    common = ["train-encoder", str(run), "--model", str(tiny_model), *ARGS]
    res = CliRunner().invoke(main, [*common, "--max-steps", "1"])
    assert res.exit_code == 0, res.output
    assert torch.load(run / "latest.pt", weights_only=True)["step"] == 1
    res = CliRunner().invoke(main, [*common, "--export", str(out)])
    assert res.exit_code == 0, res.output
    assert load_encoder(out) is not None


@pytest.mark.parametrize("kind", ["wplus", "stylemap"])
def test_a_grown_generator_uses_its_parents_encoder_with_the_new_layers_extended(tmp_path: Path, kind: str) -> None:
    from optinv.engine import warmstart
    from optinv.errors import OptinvError
    from optinv.world.grow import grow_generator

    small = tiny_generator(16, style_dim=16, seed=2)
    small.card = {"name": "small16"}
    big = grow_generator(small, 32, {**small.channels, 32: 8})
    enc = build_for(small, kind, width=16, passes=2 if kind == "wplus" else 1)
    torch.nn.init.normal_(enc.heads[-1].linear.weight, std=0.1)  # the fine head (Map2Style in both kinds)
    enc_file = save_encoder(enc, tmp_path / "enc.pt", card={"generator": "small16"})
    with pytest.raises(OptinvError, match="was not grown from small16"):
        warmstart.find_encoder(big, kind, str(enc_file))
    big.card["grown_from"] = "small16"
    grown = warmstart.find_encoder(big, kind, str(enc_file))
    assert grown.layers == big.n_latent and grown.n_latent == small.n_latent
    x = torch.rand(2, 3, 32, 32)
    own = warmstart.encode(enc, x, small)
    codes = warmstart.encode(grown, x, big)
    if kind == "wplus":
        assert codes.shape == (2, big.n_latent, 16)
        assert torch.equal(codes[:, small.n_latent:], codes[:, small.n_latent - 1:small.n_latent].expand(-1, 2, -1))
    else:
        assert len(codes) == big.n_latent and all(torch.equal(c, own[-1]) for c in codes[small.n_latent:])
        assert all(torch.equal(a, b) for a, b in zip(codes[:small.n_latent], own))  # same image in, same codes
    again = load_encoder(save_encoder(grown, tmp_path / "grown.pt"))
    assert again.layers == big.n_latent
    # the grown generator's own job runs from it
    out = jobs.invert(x[:1], model=big, options=jobs.JobOptions(space=kind, init="encoder", encoder=str(enc_file),
                                                                 steps=2, progress=False))
    assert out[0].image.shape == (3, 32, 32)
    with pytest.raises(OptinvError, match="belongs to another model"):
        warmstart.find_encoder(small, kind, str(tmp_path / "grown.pt"))


@pytest.mark.parametrize("kind,passes", [("wplus", 1), ("wplus", 2), ("stylemap", 1)])
def test_growing_to_a_larger_input_starts_as_the_parent_and_reads_the_new_detail(kind: str, passes: int) -> None:
    """grow_encoder(..., input_size): the detail branch and the new layers' heads start as the parent's
    answer (codes extended, input area-downscaled), and the branch does see what the downscale drops."""
    from optinv.engine.encoder import grow_encoder

    small = tiny_generator(16, style_dim=16, seed=2)
    enc = build_for(small, kind, width=16, passes=passes)
    for p in enc.parameters():  # a trained-looking encoder (an untrained refiner would hide differences)
        torch.nn.init.normal_(p, std=0.05)
    extended = grow_encoder(enc, small.n_latent + 2)
    grown = grow_encoder(enc, small.n_latent + 2, input_size=64)
    assert grown.config["input_size"] == 64 and grown.config["top_heads"]
    x = torch.rand(2, 3, 64, 64)

    def flat(codes):
        return codes if isinstance(codes, torch.Tensor) else torch.cat([c.flatten(1) for c in codes], 1)

    with torch.no_grad():
        assert torch.allclose(flat(grown(x)), flat(extended(x)), atol=1e-6)
        if passes > 1:
            prev, codes = torch.rand(2, 3, 64, 64), extended(x)
            assert torch.allclose(grown(x, prev, codes), extended(x, prev, codes), atol=1e-6)
        torch.nn.init.normal_(grown.detail.out.weight, std=1.0)
        checker = (torch.arange(64)[:, None] + torch.arange(64)[None]) % 2  # invisible at 16² (area mean 0.5)
        flat_grey, fine = torch.full((1, 3, 64, 64), 0.5), checker.float().expand(1, 3, 64, 64)
        assert torch.allclose(extended(flat_grey)[0] if kind == "wplus" else flat(extended(flat_grey)),
                              extended(fine)[0] if kind == "wplus" else flat(extended(fine)), atol=1e-6)
        assert (flat(grown(flat_grey)) - flat(grown(fine))).abs().max() > 1e-4
    with pytest.raises(ValueError, match="power-of-two"):
        grow_encoder(enc, small.n_latent, input_size=48)


def test_train_encoder_grows_a_parents_encoder_for_a_grown_generator(tmp_path: Path) -> None:
    """`--init PARENT.pt` on a generator grown from the parent: the run grows the encoder to the
    generator's layers and input, trains it (first pass included), resumes, and exports an encoder
    the grown generator uses as it is."""
    from optinv.engine import warmstart
    from optinv.world.grow import grow_generator

    small = tiny_generator(16, style_dim=16, seed=2)
    small.card = {"name": "small16"}
    big = grow_generator(small, 32, {**small.channels, 32: 8})
    big.card = {"name": "big32", "grown_from": "small16"}
    model = save_generator(big, tmp_path / "big.pt")
    parent = save_encoder(build_for(small, "wplus", width=16, passes=2), tmp_path / "parent.pt",
                          card={"generator": "small16"})
    run = tmp_path / "run"
    args = [str(run), "--model", str(model), "--kind", "wplus", "--passes", "2", "--width", "16", "--batch", "2",
            "--init", str(parent), "--threads", "1", "--save-every", "1"]
    train_encoder.main([*args, "--max-steps", "2"])
    state = torch.load(run / "latest.pt", weights_only=True)
    assert state["step"] == 2 and state["config"]["input_size"] == 32 and state["config"]["layers"] == big.n_latent
    trained = build_for(small, "wplus", width=16, passes=2)
    trained.load_state_dict({k: v for k, v in state["enc"].items() if not k.startswith(("detail", "refine_detail",
                                                                                           "top_heads", "refine_top"))})
    first = load_encoder(parent)
    assert not torch.equal(trained.backbone.stem[0].weight, first.backbone.stem[0].weight)  # the first pass trains
    train_encoder.main([*args, "--max-steps", "1"])
    assert torch.load(run / "latest.pt", weights_only=True)["step"] == 3
    out = tmp_path / "enc32.pt"
    train_encoder.main([str(run), "--export", str(out)])
    enc = warmstart.find_encoder(load_generator(model), "wplus", str(out))
    assert enc.input_size == 32 and enc.layers == big.n_latent and enc.card["generator"] == "big32"
