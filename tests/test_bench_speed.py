"""scripts/bench_speed.py: efficiency rows on a tiny generator, the stand-ins for rosinality's ops,
and (when a checkout is given) rosinality's Generator rendering what ours renders.

The rosinality test needs a rosinality/stylegan2-pytorch checkout named by the environment
variable OPTINV_ROSINALITY (e.g. ``OPTINV_ROSINALITY=~/stylegan2-pytorch pytest tests/test_bench_speed.py``);
without it that test is skipped.
"""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import load_script, tiny_generator
from optinv.engine.generator import Blur, Upsample



bench = load_script("bench_speed")


def test_efficiency_row_on_tiny_generator():
    g = tiny_generator(16)
    row = bench.efficiency_row(g, 2, "tiny", repeat=2, sgemm_n=256, top=4)
    for key in ("gflops_per_s", "sgemm_gflops_per_s", "gflops_per_cpu_s", "sgemm_gflops_per_cpu_s"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    # the row rounds GFLOP/s to 1 decimal and the ratio to 3: allow for that on a tiny, slow model
    rounding = 0.05 / row["sgemm_gflops_per_s"] + 6e-4
    assert row["ratio"] == pytest.approx(row["gflops_per_s"] / row["sgemm_gflops_per_s"], rel=0.02, abs=rounding)
    assert 0 < row["ratio_cpu"] < 10
    assert "convolution" in row["top_ops"] and row["top_ops"].count(";") == 3


def test_flops_count_conv_work_and_scale_with_batch():
    g = tiny_generator(16)
    one, two = (bench.count_flops(bench.forward_backward(g, b)) for b in (1, 2))
    assert two == 2 * one
    conv1 = 2 * g.channels[4] ** 2 * 9 * 16  # the 4×4 conv's forward alone
    assert one > 2 * conv1  # forward and the backward to W+ of every layer


def test_upfirdn2d_stand_in_matches_our_fir_layers():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 7)
    up = Upsample()
    assert torch.allclose(bench._upfirdn2d(x, up.kernel, up=2, pad=(2, 1)), up(x), atol=1e-6)
    blur = Blur(pad=(2, 1))
    assert torch.allclose(bench._upfirdn2d(x, blur.kernel, pad=(2, 1)), blur(x), atol=1e-6)
    down = bench._upfirdn2d(x, blur.kernel, down=2, pad=(1, 1))
    assert down.shape[-2:] == ((7 + 2 - 4 + 2) // 2,) * 2  # upfirdn2d's output size rule
    assert torch.allclose(down, Blur(pad=(1, 1))(x)[..., ::2, ::2], atol=1e-6)
    k = torch.randn(4, 4)
    for kwargs in ({"up": 2, "pad": (2, 1)}, {"down": 2, "pad": (-1, 2, 1, 0)}):
        a = bench._upfirdn2d(x, k, **kwargs)
        assert torch.allclose(a, bench._upfirdn2d_per_channel(x, k, **kwargs), atol=1e-5)


def test_fused_leaky_relu_stand_in():
    x, b = torch.randn(3, 4, 5, 5), torch.randn(4)
    want = F.leaky_relu(x + b[None, :, None, None], 0.2) * 2 ** 0.5
    assert torch.allclose(bench._fused_leaky_relu(x, b), want)
    act = bench._FusedLeakyReLU(4)
    assert [n for n, _ in act.named_parameters()] == ["bias"]
    assert torch.allclose(act(x), F.leaky_relu(x, 0.2) * 2 ** 0.5)


def test_rosinality_generator_renders_our_image():
    path = os.environ.get("OPTINV_ROSINALITY")
    if not path:
        pytest.skip("set OPTINV_ROSINALITY to a rosinality/stylegan2-pytorch checkout to run this")
    before = {k for k in sys.modules if k == "op" or k.startswith("op.")}
    model = bench.import_rosinality(path)
    assert {k for k in sys.modules if k == "op" or k.startswith("op.")} == before  # stand-ins removed again
    g = tiny_generator(16)
    twin = bench.rosinality_twin(model, g)
    assert bench.max_abs_diff(g, twin) < 1e-3
    row = bench.rosinality_row(model, g, 2, "tiny", repeat=2)
    assert row["ours_s_per_step"] > 0 and row["rosinality_s_per_step"] > 0 and row["speedup"] > 0
