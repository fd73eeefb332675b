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
