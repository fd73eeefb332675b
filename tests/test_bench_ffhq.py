"""scripts/bench_ffhq.py: the FFHQ-scale tables (numbers themselves live in docs/BENCHMARKS.md)."""

from __future__ import annotations

from conftest import load_script

bench = load_script("bench_ffhq")


def test_interleaved_times_every_function_and_gemm_rates_are_positive():
    calls = {"a": 0, "b": 0}

    def make(k):
        def fn():
            calls[k] += 1
        return fn

    out = bench.interleaved({"a": make("a"), "b": make("b")}, rounds=3)
    assert set(out) == {"a", "b"} and calls == {"a": 4, "b": 4}  # one warm-up + three rounds
    wall, cpu = bench.gemm_rate(bench.torch.float32, n=64, repeat=1)
    assert wall > 0 and cpu > 0


def test_a_job_row_runs_the_invert_job_in_its_own_process():
    (row,) = bench.bench_steps([(32, 1, "bf16", "wplus")], steps=2)
    assert "error" not in row, row
    assert row["resolution"] == 32 and row["precision"] == "bf16" and row["s_per_step"] > 0
    assert row["peak_gib"] >= row["model_loaded_gib"] > 0 and row["estimate_gib"] > row["model_loaded_gib"]


def test_markdown_has_the_section_each_table_and_the_command():
    data = {"ffhq_isa": "avx512_bf16 avx512f", "ffhq_bf16_units": "avx512_bf16",
            "ffhq_speed": [{"precision": "fp32", "fraction_of_gemm": 0.7, "isa": "x"}],
            "ffhq_quality": [{"precision": "bf16", "median_psnr": 35.0}],
            "ffhq_steps": [{"resolution": 1024, "batch": 1, "peak_gib": 3.2}]}
    text = "\n".join(bench.markdown(data, "python scripts/benchmark.py --only ffhq"))
    assert text.startswith("## FFHQ scale")
    assert "`python scripts/benchmark.py --only ffhq`" in text and "avx512_bf16 avx512f" in text
    assert "| precision | fraction_of_gemm |" in text and "| 1024 | 1 | 3.2 |" in text
    assert "| isa |" not in text  # the ISA line is said once, above the tables
    assert "No GPU" in text
    assert bench.markdown({}) == []


# ------------------------------------------------------------------------------ every job beside rosinality's
def _weights(tmp_path):
    from conftest import tiny_generator
    from optinv.io.checkpoints import save_rosinality

    return save_rosinality(tiny_generator(32), tmp_path / "tiny32.pt")


def test_job_rows_time_each_job_in_its_own_process(tmp_path):
    weights = _weights(tmp_path)
    specs = [{"resolution": 32, "job": job, "batch": batch, "precision": "fp32", "steps": steps,
              "weights": str(weights)} for job, batch, steps in (("StyleMap", 1, 2), ("tuning", 2, 2), ("W+", 2, 0))]
    rows = bench.run_job_rows(specs, {"OPTINV_CACHE": str(tmp_path / "cache")})
    assert [r["job"] for r in rows] == ["StyleMap", "tuning", "W+"] and not [r for r in rows if "error" in r], rows
    for r in rows[:2]:  # two clean steps timed, after a first one that carries the one-off costs
        assert r["s_per_step"] > 0 and r["cpu_s_per_step"] > 0 and r["first_step_s"] > 0
        assert r["peak_bytes"] > r["loaded_bytes"] > 0 and r["estimate_bytes"] > r["loaded_bytes"]
    assert rows[2]["s_per_step"] is None and rows[2]["first_step_s"] > 0  # one step: memory only


def test_a_rosinality_row_runs_its_generator_on_the_same_file(tmp_path):
    import os

    import pytest

    path = os.environ.get("OPTINV_ROSINALITY")
    if not path:
        pytest.skip("set OPTINV_ROSINALITY to a rosinality/stylegan2-pytorch checkout to run this")
    spec = {"resolution": 32, "job": bench.ROSINALITY, "batch": 1, "precision": "fp32", "steps": 2,
            "weights": str(_weights(tmp_path)), "rosinality": path, "fir": "per-channel"}
    (row,) = bench.run_job_rows([spec])
    assert "error" not in row, row
    assert row["s_per_step"] > 0 and row["peak_bytes"] > row["loaded_bytes"] > 0


def test_memory_and_time_tables_put_each_job_beside_rosinality():
    gib = 2 ** 30
    raw = [{"resolution": 1024, "job": "W+", "batch": 1, "precision": "fp32", "s_per_step": 9.0,
            "cpu_s_per_step": 8.0, "first_step_s": 12.0, "peak_bytes": 3 * gib, "loaded_bytes": gib,
            "estimate_bytes": 3.5 * gib},
           {"resolution": 1024, "job": "W+", "batch": 1, "precision": "bf16", "s_per_step": 5.0,
            "cpu_s_per_step": 4.0, "first_step_s": 7.0, "peak_bytes": 2 * gib, "loaded_bytes": gib,
            "estimate_bytes": 3.5 * gib},
           {"resolution": 1024, "job": bench.ROSINALITY, "batch": 1, "precision": "fp32", "s_per_step": 25.0,
            "cpu_s_per_step": 24.0, "first_step_s": 30.0, "peak_bytes": 6 * gib, "loaded_bytes": gib},
           {"resolution": 1024, "job": "tuning", "batch": 4, "precision": "fp32", "error": "killed"},
           {"resolution": 256, "job": "Z+", "batch": 1, "precision": "fp32", "s_per_step": 3.0,
            "cpu_s_per_step": 2.0, "first_step_s": 4.0, "peak_bytes": gib, "loaded_bytes": gib // 2,
            "estimate_bytes": gib}]
    memory = bench.memory_table(raw, 1024)
    assert [(r["job"], r["batch"]) for r in memory] == [("W+", 1), (bench.ROSINALITY, 1), ("tuning", 4)]
    assert memory[0] == {"job": "W+", "batch": 1, "peak_gib": 3.0, "model_loaded_gib": 1.0, "step_gib": 2.0,
                         "estimate_gib": 3.5, "peak_vs_rosinality": 0.5}
    assert memory[2] == {"job": "tuning", "batch": 4, "error": "killed"}
    time_rows = bench.time_table(raw)
    assert [(r["resolution"], r["job"], r["precision"]) for r in time_rows] == [
        (256, "Z+", "fp32"), (1024, "W+", "fp32"), (1024, "W+", "bf16"), (1024, bench.ROSINALITY, "fp32")]
    assert [r.get("rosinality_cpu_s_over_this") for r in time_rows] == [None, 3.0, 6.0, 1.0]
    text = "\n".join(bench.markdown({"ffhq_memory": memory, "ffhq_time": time_rows, "ffhq_commands": {"jobs": "X"}}))
    assert "peak memory beside rosinality's generator" in text and "seconds per step beside rosinality's" in text
    assert "| W+ | 1 | 3.0 | 1.0 | 2.0 | 3.5 | 0.5 |" in text and "upfirdn2d_native" in text and "`X`" in text


def test_a_row_over_its_memory_limit_fails_alone_with_one_line(tmp_path):
    spec = {"resolution": 32, "job": "W+", "batch": 1, "precision": "fp32", "steps": 0,
            "weights": str(_weights(tmp_path)), "memory_limit_gib": 0.01}  # 10 MiB more than at start
    rows = bench.run_job_rows([spec, {**spec, "memory_limit_gib": 4}])
    assert rows[0]["job"] == "W+" and "\n" not in rows[0]["error"], rows  # the row fails, alone, in one line
    assert "error" not in rows[1] and rows[1]["peak_bytes"] > 0, rows
