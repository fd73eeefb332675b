"""`precision`: bf16 autocast for the generator, fp32 latents and optimiser state, auto by hardware."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_generator
from optinv.engine import jobs
from optinv.errors import OptinvError
from optinv.engine.metrics import psnr
from optinv.engine.operators import Identity
from optinv.engine.precision import autocast, cpu_bf16_units, resolve_precision


def test_auto_follows_the_cpu_flags():
    assert resolve_precision("auto", "cpu", frozenset({"avx2", "avx512_bf16"})) == "bf16"
    assert resolve_precision("auto", "cpu", frozenset({"avx2", "amx_bf16", "amx_tile"})) == "bf16"
    assert resolve_precision("auto", "cpu", frozenset({"avx2", "avx512f"})) == "fp32"
    assert resolve_precision(None, "cpu", frozenset()) == "fp32"
    assert resolve_precision("fp32", "cpu", frozenset({"amx_bf16"})) == "fp32"
    assert resolve_precision("bf16", "cpu", frozenset()) == "bf16"  # asked for: runs (slowly) anywhere on CPU
    assert cpu_bf16_units(frozenset({"amx_bf16", "avx512_bf16"})) == "amx_bf16"
    with pytest.raises(OptinvError, match="unknown `precision`"):
        resolve_precision("fp8", "cpu")
    with pytest.raises(OptinvError, match="not available on meta"):
        resolve_precision("bf16", "meta")


def test_autocast_renders_in_bf16_only_when_asked():
    from optinv.engine.generator import REDUCED_MIN_SIDE

    out = {}
    for name, g in (("16", tiny_generator(16)), ("32", tiny_generator(32))):
        w = g.w_avg[None, None].expand(1, g.n_latent, -1)
        with torch.no_grad(), autocast("bf16", "cpu"):
            low = g.synthesis(w)
        with torch.no_grad(), autocast("fp32", "cpu"):
            full = g.synthesis(w)
        assert low.dtype == torch.float32  # the image is summed in fp32
        out[name] = (low - full).abs().max()
    assert REDUCED_MIN_SIDE == 32
    assert out["16"] == 0  # every layer below the bf16 threshold: fp32 throughout
    assert 0 < out["32"] < 0.05  # bf16 rounding at 32², nothing worse


def _targets(g, n=2):
    z = torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return ((g(z) + 1) / 2).clamp(0, 1)


def test_bf16_inversion_keeps_fp32_latents_and_fits_as_well():
    g = tiny_generator(32)
    t = _targets(g)
    res = {}
    for p in ("fp32", "bf16"):
        opts = jobs.JobOptions(space="wplus", recipe="1*L2", steps=40, lr=0.05, progress=False, batch=2, precision=p)
        res[p] = jobs.solve("invert", g, t, ["a", "b"], Identity(), opts)
    for r in res["bf16"]:
        assert r.latent["tensors"]["wplus"].dtype == torch.float32
        assert r.latent["settings"]["precision"] == "bf16"
    a, b = res["fp32"][0].latent["tensors"]["wplus"], res["bf16"][0].latent["tensors"]["wplus"]
    assert not torch.equal(a, b)  # the arithmetic did change
    for r32, r16 in zip(res["fp32"], res["bf16"]):
        assert abs(psnr(r16.image, r16.target) - psnr(r32.image, r32.target)) < 0.5


def test_bf16_runs_the_first_steps_and_fp32_the_tail():
    from optinv.engine.optimize import Settings, precision_at

    s = Settings(steps=20, precision="bf16", fp32_tail=0.1)
    assert [precision_at(s, k) for k in (0, 17, 18, 19, 20)] == ["bf16", "bf16", "fp32", "fp32", "fp32"]
    assert precision_at(Settings(steps=20, precision="bf16", fp32_tail=0.0), 19) == "bf16"
    assert precision_at(Settings(steps=20, precision="fp32"), 0) == "fp32"
    with pytest.raises(OptinvError, match="fp32_tail"):
        Settings(steps=20, precision="bf16", fp32_tail=1.5).validate()


def test_bf16_tuning_stores_an_fp32_delta():
    g = tiny_generator(16)
    t = _targets(g, 1)
    opts = jobs.JobOptions(recipe="1*L2", steps=3, progress=False, tune=True, tune_steps=3, precision="bf16")
    (r,) = jobs.solve("invert", g, t, ["a"], Identity(), opts)
    tuning = r.latent["tuning"]
    assert tuning["settings"]["precision"] == "bf16"
    assert all(x.dtype == torch.float32 for x in tuning["a"] + tuning["b"])
    assert any(x.abs().max() > 0 for x in tuning["b"])


def test_option_checked_and_offered_on_the_command_line():
    from click.testing import CliRunner

    from optinv.cli import main

    with pytest.raises(OptinvError, match="unknown `precision`"):
        jobs.JobOptions.of(precision="half")
    r = CliRunner().invoke(main, ["invert", "--help"])
    assert "--precision [auto|fp32|bf16]" in r.output
    r = CliRunner().invoke(main, ["invert", "x.png", "--precision", "fp16"])
    assert r.exit_code != 0 and "fp16" in r.output
