"""The benchmark's warm-start bookkeeping and its time-to-quality plot (no optimisation run)."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from conftest import ROOT, load_script

sys.path.insert(0, str(ROOT / "scripts"))
benchmark = load_script("benchmark")


def test_warm_row_counts_steps_to_the_cold_levels() -> None:
    cold = [10 + 0.02 * i for i in range(1001)]        # 20 dB at 500 steps, 30 dB at 1000
    warm = [25 + 0.1 * i for i in range(201)]          # 30 dB at step 50, 45 dB at 200
    row = benchmark.warm_row("wplus", "e.pt", 0.1, cold, warm)
    assert row["cold_best_psnr"] == 30.0 and row["cold_psnr_at_500"] == 20.0
    assert row["warm_steps_to_reach_it"] == 50 and row["warm_steps_to_reach_cold_500"] == 0
    assert row["warm_psnr_at_100"] == 35.0 and row["cold_steps_to_match_warm_100"] == ">1000"
    slow = benchmark.warm_row("wplus", "e.pt", 0.05, cold, [5 + 0.1 * i for i in range(101)])
    assert slow["warm_steps_to_reach_it"] == ">100" and slow["warm_steps_to_reach_cold_500"] == ">100"
    assert slow["cold_steps_to_match_warm_100"] == 250


def test_time_to_quality_plot_draws_every_start(tmp_path: Path) -> None:
    cold = {"wplus": [10 + i * 0.01 for i in range(300)]}
    warm = {"wplus": {"e.pt (first pass), lr 0.1": [20 + i * 0.01 for i in range(101)],
                      "e.pt, lr 0.1": [22 + i * 0.01 for i in range(101)],
                      "e.pt, lr 0.05": [21 + i * 0.01 for i in range(101)]}}
    out = tmp_path / "ttq.png"
    benchmark.plot_time_to_quality(cold, warm, {"wplus": 0.1}, {"e.pt": 0.5, "e.pt (first pass)": 0.2}, out)
    img = Image.open(out).convert("RGB")
    colours = {c for _, c in img.getcolors(1 << 16)}
    assert {(150, 150, 230), (90, 90, 200), (20, 20, 140)} <= colours  # cold and both lr-0.1 starts drawn


def test_optimizer_section_passes_each_candidate_to_the_job(monkeypatch) -> None:
    seen = []

    class Result:
        metrics = {"psnr": 30.0}

    def fake_invert(images, model, device, options):
        seen.append((options.space, options.init, options.lr, options.adam_beta2, options.schedule, options.steps))
        return [Result() for _ in images]

    monkeypatch.setattr(benchmark.jobs, "invert", fake_invert)
    rows = benchmark.bench_optimizer_defaults(None, ["a.png", "b.png"], steps=7)
    assert len(rows) == 2 * 2 * len(benchmark.OPTIMIZER_CANDIDATES)
    assert {(lr, b2) for _, _, lr, b2, _, _ in seen} == set(benchmark.OPTIMIZER_CANDIDATES)
    assert {(sp, init) for sp, init, *_ in seen} == {(s, i) for s in ("wplus", "stylemap") for i in ("mean", "encoder")}
    assert all(sch == "cosine-ramp" and steps == 7 for *_, sch, steps in seen)
    assert rows[0]["median_psnr"] == 30.0 and rows[0]["start"] == "w_avg"


def test_a_stylemap_run_alone_gets_rows_at_an_earlier_wplus_time() -> None:
    """invert_hires runs each map-side choice in its own call: W+'s CPU time per step from the
    first call must still give the later ones their equal-time rows."""
    import torch

    from conftest import tiny_generator

    g = tiny_generator(16, style_dim=16, seed=1)
    images = list(torch.rand(2, 3, 16, 16))
    rows, _ = benchmark.bench_invert(g, images, [2, 4], ["stylemap"], batch=2, picture=False)
    assert not any("at_time_of" in r for r in rows)  # no reference: equal-step rows only
    own = rows[0]["cpu_s_per_step"]
    rows, _ = benchmark.bench_invert(g, images, [2, 4], ["stylemap"], batch=2, picture=False,
                                     reference_cpu_per_step=own / 2)  # a reference twice as fast
    timed = [r for r in rows if "at_time_of" in r]
    assert [r["at_time_of"] for r in timed] == ["wplus 2", "wplus 4"]
    assert all(1 <= r["steps"] <= 4 for r in timed) and timed[0]["steps"] <= timed[1]["steps"]


def test_world_recipes_run_the_world_measure_once_per_recipe(monkeypatch) -> None:
    """Each recipe reaches the W+ job, and detail kept is the result's Laplacian energy over the target's."""
    import torch

    from optinv.engine import jobs

    seen = []

    class Result:
        def __init__(self, target: torch.Tensor, image: torch.Tensor) -> None:
            self.target, self.image, self.metrics = target, image, {"psnr": 30.0}

    def fake_invert(images, model, device, options):
        seen.append((options.space, options.recipe, options.steps))
        target = torch.rand(3, 16, 16)
        return [Result(target, target * 0.5) for _ in images]  # half the amplitude: a quarter of the energy

    class G:
        size, card = 16, {"name": "tiny"}

    monkeypatch.setattr(jobs, "invert", fake_invert)
    import world_quality  # the module bench_world_recipes imports (scripts/ is on sys.path)

    monkeypatch.setattr(world_quality, "held_out_renders", lambda images, size: list(images))
    rows = benchmark.bench_world_recipes(G(), ["a.png", "b.png"], quick=True)
    assert [r["recipe"] for r in rows] == list(benchmark.WORLD_RECIPES)
    assert seen == [("wplus", r, 100) for r in benchmark.WORLD_RECIPES]
    assert all(abs(r["detail_kept_median"] - 0.25) < 1e-3 and r["model"] == "tiny" for r in rows)


def test_table_cells_keep_recipe_products_out_of_italics() -> None:
    from md_table import markdown_table

    lines = markdown_table([{"recipe": "1*L2+0.05*EDGE", "note": "**100**"}])
    assert lines[2] == r"| 1\*L2+0.05\*EDGE | **100** |"
