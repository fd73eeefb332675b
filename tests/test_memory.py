"""A batch that would not fit in memory is refused before it starts, with the estimate in one line."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from conftest import tiny_generator
from optinv.engine import jobs
from optinv.engine import memory as M
from optinv.io.checkpoints import save_generator
from optinv.errors import OptinvError
from optinv.engine.generator import Generator
from optinv.engine.spaces import parse_map_sizes


def tiny1024() -> Generator:
    """1024² with 4 channels everywhere: the real number of layers and map sizes, little arithmetic."""
    torch.manual_seed(0)
    g = Generator(1024, style_dim=16, n_mlp=1, channels={2 ** k: 4 for k in range(2, 11)})
    with torch.no_grad():
        g.w_avg.copy_(g.mean_latent(100))
    g.card = {"name": "tiny1024", "default_recipes": {"invert": "1*L2"}}
    return g.eval().requires_grad_(False)


def test_meta_estimate_counts_what_a_real_forward_keeps():
    g = tiny_generator(64)
    w = g.mapping(torch.randn(2, g.n_latent, g.style_dim)).requires_grad_(True)
    seen, total = set(), 0

    def pack(t):
        nonlocal total
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        g.synthesis(w, noise=g.noise_list())
    assert M.saved_bytes(g, 2) == total


def test_estimate_grows_with_batch_and_spatial_maps():
    g = tiny1024()
    one, four = M.saved_bytes(g, 1), M.saved_bytes(g, 4)
    assert 3.9 * one < four < 4.1 * one
    assert M.saved_bytes(g, 1, parse_map_sizes("4,8,4", g.n_latent)) > one
    full = M.estimate(g, 1, tune="full", locality=True)
    assert full.weights == 3 * sum(p.numel() * 4 for p in g.parameters())
    assert full.saved == M.saved_bytes(g, 2)


def test_a_batch_over_the_limit_is_one_line_with_the_estimate_and_a_batch_that_fits():
    g = tiny1024()
    est = M.estimate(g, 4)
    per = est.total / 4
    limit = int(est.held + 2.5 * per)
    with pytest.raises(OptinvError) as e:
        M.check_fits(g, 4, limit=limit)
    msg = str(e.value)
    assert "\n" not in msg
    assert "a batch of 4 at 1024² needs about" in msg and "GiB" in msg and "use `batch` 2 or fewer" in msg
    assert M.check_fits(g, 2, limit=limit) is not None  # near the limit: the replayed estimate
    assert M.check_fits(g, 64, limit=10 * 2 ** 40) is None  # far below it: the quick bound suffices


@pytest.mark.parametrize("sides", [None, "4,8,4", "8,16,32"])
def test_quick_bound_is_above_the_replayed_estimate(sides):
    for g in (tiny1024(), tiny_generator(32)):
        maps = parse_map_sizes(sides, g.n_latent) if sides else None
        for tune, locality in ((None, False), ("lowrank", True), ("full", True)):
            assert M.upper_bound(g, 3, tune, locality) >= M.estimate(g, 3, tune=tune, locality=locality,
                                                                     map_sizes=maps).total


def test_the_job_is_refused_before_its_first_step(monkeypatch):
    g = tiny1024()
    steps = []
    monkeypatch.setenv(M.LIMIT_ENV, "1M")
    target = torch.rand(4, 3, 1024, 1024)
    with pytest.raises(OptinvError, match="needs about"):
        jobs.invert(list(target), model=g, device="cpu", steps=2, batch=4, progress=False,
                    callback=lambda *a: steps.append(a))
    assert steps == []


def test_cli_refuses_in_one_line_and_writes_nothing(tmp_path):
    from PIL import Image

    from optinv.cli import main

    model = save_generator(tiny1024(), tmp_path / "tiny1024.pt")
    for k in range(2):
        Image.new("RGB", (1024, 1024), (40 * k, 90, 120)).save(tmp_path / f"f{k}.png")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["invert", str(tmp_path / "f0.png"), str(tmp_path / "f1.png"), "--model", str(model),
                                  "--batch", "2", "--steps", "2", "--out", str(out), "-q"],
                           env={M.LIMIT_ENV: "10M"})
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: a batch of 2 at 1024² needs about")
    assert "10 MiB is available: not even one image fits" in lines[0] and "Traceback" not in r.output
    assert not list(out.glob("*.png"))


@pytest.mark.parametrize("text,value", [("6G", 6 * 2 ** 30), ("512M", 512 * 2 ** 20), ("1.5g", int(1.5 * 2 ** 30)),
                                        ("2048", 2048), ("3GiB", 3 * 2 ** 30)])
def test_parse_size(text, value):
    assert M.parse_size(text) == value


def test_bad_limit_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(M.LIMIT_ENV, "lots")
    with pytest.raises(OptinvError, match="not a size"):
        M.available_bytes()
