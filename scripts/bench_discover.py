"""Discovered paths on the embedded model: commutativity, side effects and the order grid.

Used by ``scripts/benchmark.py --only discover``. For each paths file (linear, warped,
curvilinear; w space) and with the attribute predictor as judge (values in [0, 1], differences
×100 = % of an attribute's range):

- commutativity: for every pair of paths k < l, apply k then l by +t, then undo k then l (not the
  reverse order) on ``n_comm`` held-out w; mean |attribute change| per pair; mean and max over
  pairs (and the latent distance, in standardised units);
- side effects: each path at ±t on ``n_eff`` held-out w; per attribute the mean |change| as % of
  the change of the path's target (the attribute it moves most); summary = mean off-target entry
  over the paths that move their target by at least 2 %; and again at equal target change (each
  path at the shift that moves its target by ``LEVEL`` of its range), the comparison that counts;
- the order grid: original → A → A+B against original → B → B+A (A, B the two strongest paths of
  each method), on 4 held-out samples and 2 W+ inversions of held-out renders.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from PIL import Image

from optinv.edit import edits as E
from optinv.engine import jobs
from optinv.edit.discover.apply import edit_editable
from optinv.edit.discover.attributes import load_predictor
from optinv.edit.discover.measure import QUIET, commutativity, path_effects, side_effects, side_effects_at_level
from optinv.edit.discover.pathsfile import load_paths
from optinv.edit.discover.train import Domain
from optinv.io.image_files import atomic_save_image, make_grid
from optinv.io.image_files import to_pil

HELD_OUT_SEED = 1_000_000_007  # torch seeds ≥ 1e9 never drew training z
GRID_TILE = 128  # px per image in the order grid


def w_domain(g, ps) -> Domain:
    """The paths' standardised w units rendered through every layer (no gradients needed here)."""
    def render(x):
        w = ps.unstandardise(x)
        return g.synthesis(w[:, None, :].expand(-1, g.n_latent, -1))
    return Domain(g.style_dim, lambda n: torch.zeros(n, g.style_dim), render, "w", ps.mean, ps.std)


@torch.no_grad()
def held_out_x(g, ps, n: int) -> torch.Tensor:
    z = torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(HELD_OUT_SEED))
    return ps.standardise(g.mapping(z))


LEVEL = 0.10  # equal-change side effects: every path's target moved by 10 % of its range


def measure_paths(g, ps, predictor, n_eff: int, n_comm: int, t: float, level: float = LEVEL) -> dict:
    dom = w_domain(g, ps)
    x = held_out_x(g, ps, max(n_eff, n_comm))
    t0 = time.perf_counter()
    signed, absolute = path_effects(dom, ps.paths, predictor, x[:n_eff], t)
    matrix, target = side_effects(absolute)
    pairs = [(k, l) for k in range(ps.paths.k) for l in range(k + 1, ps.paths.k)]
    comm = commutativity(dom, ps.paths, predictor, x[:n_comm], t, pairs)
    strong = [k for k in range(ps.paths.k) if float(absolute[k, target[k]]) >= QUIET]
    off = [float(matrix[k, a]) for k in strong for a in range(matrix.shape[1]) if a != int(target[k])]
    names = predictor.names
    calibrated = side_effects_at_level(dom, ps.paths, predictor, x[:n_eff], target.tolist(), level)
    off_level = [v for k, row in enumerate(calibrated) if row["side_effects_pct"]
                 for a, v in enumerate(row["side_effects_pct"]) if a != int(target[k])]
    return {
        "method": ps.method, "steps": ps.card.get("steps"), "paths": ps.names,
        "commutativity_mean_pct": round(comm["mean"], 4), "commutativity_max_pct": round(comm["max"], 4),
        "commutativity_latent_mean": round(comm["latent_mean"], 6), "commutativity_latent_max": round(comm["latent_max"], 6),
        "side_effect_mean_pct": round(sum(off) / len(off), 2) if off else None,
        "paths_with_target": len(strong),
        "level_pct": round(100 * level), "paths_reaching_level": sum(1 for r in calibrated if r["side_effects_pct"]),
        "side_effect_at_level_mean_pct": round(sum(off_level) / len(off_level), 2) if off_level else None,
        "targets": {ps.names[k]: {"attribute": names[int(target[k])],
                                  "change_pct": round(100 * float(absolute[k, target[k]]), 2),
                                  "side_effects_pct": {names[a]: round(float(matrix[k, a]), 1)
                                                       for a in range(len(names)) if a != int(target[k])},
                                  "shift_at_level": None if calibrated[k]["shift"] is None else round(calibrated[k]["shift"], 3),
                                  "side_effects_at_level_pct": None if calibrated[k]["side_effects_pct"] is None else
                                  {names[a]: round(v, 1) for a, v in enumerate(calibrated[k]["side_effects_pct"])
                                   if a != int(target[k])}}
                    for k in range(ps.paths.k)},
        "n_effects": n_eff, "n_commutativity": n_comm, "shift": t, "seconds": round(time.perf_counter() - t0, 1),
    }


def strongest_two(result: dict) -> tuple[str, str]:
    """The two paths with the largest target change whose targets differ."""
    ranked = sorted(result["targets"].items(), key=lambda kv: -kv[1]["change_pct"])
    a = ranked[0]
    b = next((kv for kv in ranked[1:] if kv[1]["attribute"] != a[1]["attribute"]), ranked[1])
    return a[0], b[0]


def label_blocks(grid, labels: list[str], rows_per_block: int, row_h: int, width: int = 110):
    """A left margin naming each block of rows (one block per method)."""
    from PIL import Image, ImageDraw

    out = Image.new("RGB", (grid.width + width, grid.height), (255, 255, 255))
    out.paste(grid, (width, 0))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(labels):
        y = 2 + i * rows_per_block * row_h
        draw.multiline_text((4, y + 4), text + "\n\norig | +A | +A+B\n| +B | +B+A", fill=(0, 0, 0))
        draw.line([(0, y - 1), (out.width, y - 1)], fill=(0, 0, 0), width=1)
    return out


def invert_one(model: str, image: Path, steps: int) -> dict:
    """A W+ inversion (the benchmark's L2 settings) in its own process: its latent record."""
    torch.set_num_threads(1)
    opts = jobs.JobOptions(space="wplus", steps=steps, batch=1, recipe="1*L2", lr=0.05, schedule="fixed",
                           noise="fixed", init="mean", progress=False)
    return jobs.invert([image], model=model, device="cpu", options=opts)[0].latent


def measure_file(model: str, paths_file: Path, predictor_path: Path, n_eff: int, n_comm: int, t: float) -> dict:
    """:func:`measure_paths` in its own process (one torch thread)."""
    from optinv.io.checkpoints import load_generator

    torch.set_num_threads(1)
    g = load_generator(model).requires_grad_(False)
    return measure_paths(g, load_paths(paths_file), load_predictor(predictor_path), n_eff, n_comm, t)


def order_grid(g, sets: dict, results: dict, images: list[Path], path: Path, inversions: list[dict],
               inversion_steps: int, t: float = 3.0) -> dict:
    """Rows per method and source: original | +A | +A then +B | +B | +B then +A."""
    z = torch.randn(4, g.style_dim, generator=torch.Generator().manual_seed(HELD_OUT_SEED + 1))
    with torch.no_grad():
        w = g.mapping(z)
    noise = [n[0] for n in g.noise_list()]
    sources = [E.Editable(wi[None].expand(g.n_latent, -1).clone(), None, noise) for wi in w]
    sources += [E.from_latent(rec) for rec in inversions]
    tiles, rows = [], []
    for method, ps in sets.items():
        a, b = strongest_two(results[method])
        rows.append({"method": method, "A": a, "B": b})
        for e in sources:
            seq = [e, edit_editable(e, ps, [(a, t)]), edit_editable(e, ps, [(a, t), (b, t)]),
                   edit_editable(e, ps, [(b, t)]), edit_editable(e, ps, [(b, t), (a, t)])]
            tiles += [to_pil(x) for x in E.render(g, seq)]
    # 128 px tiles at any model size: 64² doubled (nearest), 256² halved (Lanczos), so the grid stays readable
    # and a few MB at most
    tiles = [t.resize((GRID_TILE, GRID_TILE), Image.NEAREST if t.width < GRID_TILE else Image.LANCZOS) for t in tiles]
    grid = make_grid(tiles, cols=5)
    atomic_save_image(label_blocks(grid, [f"{r['method']}\nA = {r['A']}\nB = {r['B']}" for r in rows],
                                   len(sources), GRID_TILE + 2), path)
    return {"picture": path.name, "rows": rows, "shift": t, "sources": "4 held-out samples + 2 W+ inversions "
            f"({', '.join(p.name for p in images[:2])}, {inversion_steps} steps)"}


def bench_discover(g, paths_files: dict[str, Path], predictor_path: Path, images: list[Path], picture: Path,
                   n_eff: int = 32, n_comm: int = 16, t: float = 2.0, inversion_steps: int = 150) -> dict:
    """Each method and each inversion in its own process (one thread each), then the grid here."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    predictor = load_predictor(predictor_path)
    sets = {m: load_paths(p) for m, p in paths_files.items() if p.exists()}
    model = g.card.get("source_file") or g.card.get("name")
    with ProcessPoolExecutor(len(sets) + 2, mp_context=get_context("spawn")) as pool:
        jobs_ = {m: pool.submit(measure_file, model, paths_files[m], predictor_path, n_eff, n_comm, t) for m in sets}
        inv = [pool.submit(invert_one, model, im, inversion_steps) for im in images[:2]]
        results = {m: f.result() for m, f in jobs_.items()}
        inversions = [f.result() for f in inv]
    out = {"methods": results, "predictor": predictor.card, "files": {m: str(p) for m, p in paths_files.items()}}
    if sets:
        out["grid"] = order_grid(g, sets, results, images, picture, inversions, inversion_steps)
    return out


def markdown(section: dict | None) -> list[str]:
    """The two tables (commutativity; side effects per method) and the order grid, for BENCHMARKS.md."""
    if not section or not section.get("methods"):
        return []
    methods = section["methods"]
    any_r = next(iter(methods.values()))
    lines = ["## Discovered paths: commutativity and side effects (w space, attribute predictor as judge)", "",
             f"Shift t = {any_r['shift']} (standardised w units). Commutativity: every pair k < l: +t along k, +t "
             f"along l, then −t along k, −t along l, on {any_r['n_commutativity']} held-out w; mean |attribute "
             "change| in % of the attribute's range per pair, mean and max over pairs; `latent_*`: distance to the "
             "start in standardised units. Side effects: each path on "
             f"{any_r['n_effects']} held-out w, at the shift (±) that moves its target (the attribute it moves most "
             f"at ±t) by {any_r.get('level_pct', 10)} % of that attribute's range, found by bisection in (0, 8]; every "
             "other attribute's mean |change| in % of the target's; mean over the off-target entries of the paths "
             "that reach that level. Equal target change is what makes methods comparable: a path that moves its "
             "target twice as far at the same t drags everything else further too. The fixed-t figure (±t, paths "
             "that move their target by ≥ 2 %) is shown beside it. Code: scripts/bench_discover.py; method: "
             "docs/EDITING.md.", "",
             "| method | training steps | commutativity mean % | max % | latent mean | latent max | "
             "side effect at equal change, mean % | paths reaching it | side effect at ±t, mean % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m, r in methods.items():
        lines.append(f"| {m} | {r['steps']} | {r['commutativity_mean_pct']} | {r['commutativity_max_pct']} | "
                     f"{r['commutativity_latent_mean']} | {r['commutativity_latent_max']} | "
                     f"{r.get('side_effect_at_level_mean_pct')} | {r.get('paths_reaching_level')}/{len(r['paths'])} | "
                     f"{r['side_effect_mean_pct']} |")
    lines.append("")
    for m, r in methods.items():
        attrs = list(section.get("predictor", {}).get("attributes", []))
        lines += [f"### Side effects, {m} (% of the target's change, at equal target change)", "",
                  "| path | target change at ±t % | shift for the level | " + " | ".join(attrs) + " |",
                  "|---|---|---|" + "---|" * len(attrs)]
        for name, t in r["targets"].items():
            at = t.get("side_effects_at_level_pct")
            cells = ["**100**" if a == t["attribute"] else ("–" if at is None else str(at.get(a, ""))) for a in attrs]
            lines.append(f"| {name} | {t['change_pct']} | {t.get('shift_at_level') or 'not reached'} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    grid = section.get("grid")
    if grid:
        rows = "; ".join(f"{r['method']}: A = {r['A']}, B = {r['B']}" for r in grid["rows"])
        lines += [f"Order grid ([{grid['picture']}]({grid['picture']})): per method, 6 rows ({grid['sources']}): "
                  f"original | +A | +A then +B | +B | +B then +A, shift {grid['shift']}. {rows}.", ""]
    return lines
