"""scripts/gpu_bench.py on the tiny config on CPU: rows, derived targets, JSON, compile checks."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import load_script



bench = load_script("gpu_bench")
TINY_ARGS = ["--tiny", "--device", "cpu", "--steps", "2", "--warmup", "1", "--batches", "1,2",
             "--compile", "off", "--threads", "1"]


def _by_key(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["batch"], r["precision"]): r for r in rows}


def test_tiny_cpu_run_writes_rows_targets_json_and_markdown(tmp_path, capsys):
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    assert bench.main(TINY_ARGS + ["--out", str(out), "--markdown", str(md)]) == 0
    report = json.loads(out.read_text())
    assert report["torch"] == torch.__version__ and report["device"] and report["date"].endswith("+00:00")
    rows = _by_key(report["rows"])
    assert set(rows) == {(b, p) for b in (1, 2) for p in ("fp32", "bf16")}
    for (batch, _), r in rows.items():
        assert r["size"] == 32 and r["compile"] is False and r["timed_steps"] == 2
        for key in ("steps_per_s", "images_per_s", "s_per_step", "seconds"):
            assert math.isfinite(r[key]) and r[key] > 0, (key, r)
        assert math.isfinite(r["final_loss"])
        assert r["images_per_s"] == pytest.approx(batch * r["steps_per_s"])
        assert r["s_per_step"] == pytest.approx(1 / r["steps_per_s"])
    targets = {t["precision"]: t for t in report["targets"]}
    assert set(targets) == {"fp32", "bf16"}
    for prec, t in targets.items():
        assert t["batch_hi"] == 2
        assert t["batch_scaling"] == pytest.approx(rows[(2, prec)]["images_per_s"] / rows[(1, prec)]["images_per_s"])
        assert t["inversion_500_s"] == pytest.approx(500 * rows[(1, prec)]["s_per_step"])
        assert t["inversion_note"] == "extrapolated from 2 timed steps at batch 1"
        assert t["scaling_ok"] is None and t["inversion_ok"] is None  # batch 16 / 1024² targets only
    table = md.read_text()
    assert table in capsys.readouterr().out
    assert "| 32 | 2 | bf16 | off |" in table and "b2: " in table


def test_missing_cuda_is_one_line_and_exit_2(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert bench.main(["--tiny", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cuda" in err and err.startswith("gpu_bench: error:")


def test_compile_failure_is_recorded_and_the_run_goes_on(monkeypatch, tmp_path):
    def broken(render, backend="inductor"):
        def fail(w):
            raise RuntimeError("no compiler here\nsecond line of a long trace")
        return fail

    monkeypatch.setattr(bench, "compiled", broken)
    out = tmp_path / "b.json"
    args = ["--tiny", "--device", "cpu", "--steps", "2", "--warmup", "0", "--batches", "1", "--threads", "1",
            "--compile", "on,off", "--precisions", "fp32", "--out", str(out)]
    assert bench.main(args) == 0
    on, off = json.loads(out.read_text())["rows"]
    assert on["compile"] is True and on["compile_error"] == "RuntimeError: no compiler here"
    assert "steps_per_s" not in on
    assert off["compile"] is False and off["steps_per_s"] > 0


def test_compile_equivalence_on_the_tiny_generator():
    g = bench.build_generator(32, tiny=True, dev=torch.device("cpu"))
    noise, _, w_start = bench.inversion_setup(g, torch.device("cpu"))
    w = (w_start[None, None] + 0.3 * torch.randn(2, g.n_latent, g.style_dim)).requires_grad_(True)
    eager = bench.make_render(g, noise, "fp32", w.device)
    # the measure itself must see a real difference
    assert bench.max_abs_diff(lambda x: eager(x) + 1e-3, eager, w) == pytest.approx(1e-3, rel=1e-2)
    try:  # aot_eager traces forward and backward as inductor does, without a C++ build (seconds, not a minute)
        diff = bench.compile_equivalence(g, w, noise, backend="aot_eager")
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"torch.compile unavailable here: {err}")
    assert 0.0 <= diff <= bench.EQUIV_TOL


def test_derived_targets_judge_batch_16_and_1024():
    def row(batch, s_per_step, size=1024):
        return {"size": size, "batch": batch, "precision": "bf16", "compile": True, "timed_steps": 20,
                "s_per_step": s_per_step, "images_per_s": batch / s_per_step}

    rows = [row(1, 0.02), row(4, 0.03), row(16, 0.05), {"size": 1024, "batch": 32, "precision": "bf16",
                                                         "compile": True, "error": "OutOfMemoryError: x"}]
    (t,) = bench.derived_targets(rows)
    assert t["batch_hi"] == 16 and t["batch_scaling"] == pytest.approx(16 * 0.02 / 0.05)  # 6.4×
    assert t["scaling_ok"] is False
    assert t["inversion_500_s"] == pytest.approx(10.0) and t["inversion_ok"] is True
    (slow,) = bench.derived_targets([row(1, 0.04), row(16, 0.04)])
    assert slow["scaling_ok"] is True and slow["inversion_ok"] is False
    (small,) = bench.derived_targets([row(1, 0.04, size=256)])
    assert small["inversion_ok"] is None and "batch_scaling" not in small
