#!/usr/bin/env python
"""Real photographs through optinv: the docs strip and the benchmark's real-photo table.

  python scripts/real_photos.py                  # all three (a few minutes on a 2-core CPU)
  python scripts/real_photos.py --only strip     # docs/real_photo.png
  python scripts/real_photos.py --only bench     # "photos" in docs/benchmarks.json → docs/BENCHMARKS.md
  python scripts/real_photos.py --only tuning    # docs/real_photo_tuning.png + W+ vs --tune at equal time
  python scripts/real_photos.py --only edits     # docs/stylemap_edits.png: map sizes, fidelity against edits

Photos: scikit-image's public-domain astronaut (Eileen Collins, NASA) and the first LFW faces
that scikit-image ships (``skimage.data.lfw_subset``: 25×25 grey crops, no download). The
astronaut is aligned and inverted at the model's resolution; each LFW face is enlarged 8× so the
detector can see it, aligned, brought down to 16×16 and super-resolved to the model's size with
``pulse`` (×4 at 64², ×16 at 256²).
Needs the ``[faces]`` extra and scikit-image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from optinv import faces
from optinv.engine import jobs  # noqa: E402
from optinv.io.checkpoints import load_generator  # noqa: E402
from optinv.faces.identity import distance  # noqa: E402
from optinv.engine.metrics import psnr  # noqa: E402

DOCS = ROOT / "docs"


def to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL RGB → [3, H, W] in [0, 1] (what the jobs take for in-memory images)."""
    return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32)).permute(2, 0, 1) / 255


def to_pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray((x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy())


def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def lfw_faces(n: int) -> list[tuple[str, Image.Image]]:
    """The first ``n`` LFW crops the detector finds once enlarged 8× (bicubic), as 200×200 RGB."""
    from skimage import data

    found = []
    for i, arr in enumerate(data.lfw_subset()[:100]):  # the first 100 are faces, the rest are not
        im = Image.fromarray((arr * 255 + 0.5).astype(np.uint8)).convert("RGB").resize((200, 200), Image.BICUBIC)
        try:
            faces.align_photo(im, 16, name=f"lfw{i:03d}")
        except faces.FacesUnavailable:
            raise
        except Exception:
            continue
        found.append((f"lfw{i:03d}", im))
        if len(found) == n:
            break
    return found


def invert_options(steps: int) -> jobs.JobOptions:
    return jobs.JobOptions(steps=steps, progress=False)  # the invert job's defaults (StyleMap, encoder start)


def strip(g, steps: int, direction: str, alpha: float) -> Path:
    """photo | aligned | inverted | edited | pasted back (whole photo) | pasted back (face)."""
    from optinv.edit import edits as E
    from optinv.edit.directions import load_direction

    photo = astronaut()
    al = faces.align_photo(photo, g.size, name="astronaut.png")
    res = jobs.invert([to_tensor(al.image)], model=g, options=invert_options(steps))[0]
    name, vec = load_direction(direction, g)
    edited = E.render(g, [E.apply_direction(E.from_latent(res.latent), vec, alpha)])[0]
    pasted = faces.paste_back(to_pil(edited), photo, al.transform)
    left, top, right, bottom = faces.paste.region(al.transform)
    side = 256
    panels = [photo.resize((side, side), Image.LANCZOS), al.image.resize((side, side), Image.NEAREST),
              to_pil(res.image).resize((side, side), Image.NEAREST), to_pil(edited).resize((side, side), Image.NEAREST),
              pasted.resize((side, side), Image.LANCZOS),
              pasted.crop((left, top, right, bottom)).resize((side, side), Image.LANCZOS)]
    canvas = Image.new("RGB", (len(panels) * (side + 4) - 4, side), (255, 255, 255))
    for k, p in enumerate(panels):
        canvas.paste(p, (k * (side + 4), 0))
    dest = DOCS / "real_photo.png"
    canvas.save(dest)
    print(f"strip: inversion PSNR {res.metrics['psnr']:.2f} dB, {name} {alpha:+g} → {dest}")
    return dest


EDIT_SIDES = ("4,8,1", "4,8,2", "4,8,4")  # the default, then 2×2 and 4×4 spatial fine maps
EDITS = (("smile", 3.0), ("smile", -3.0), ("blonde_minus_black", 3.0))


def stylemap_edits(g, steps: int) -> tuple[Path, list[dict]]:
    """Fidelity against editability: the astronaut and a held-out render inverted with each map
    size in EDIT_SIDES, then edited (docs/stylemap_edits.png). Rows: input | inverted | edits."""
    from optinv.edit import edits as E
    from optinv.edit.directions import load_direction
    from optinv.io.image_files import load_image

    al = faces.align_photo(astronaut(), g.size, name="astronaut.png")
    inputs = {"astronaut": to_tensor(al.image),
              "render 1000003": load_image(ROOT / "samples" / "images" / "1000003.png", size=g.size)}
    vectors = [(load_direction(direction, g)[1], alpha) for direction, alpha in EDITS]
    side, panels, rows = 192, [], []
    for label, x in inputs.items():
        for sides in EDIT_SIDES:
            opts = jobs.JobOptions(steps=steps, progress=False, stylemap_res=sides)
            res = jobs.invert([x], model=g, options=opts)[0]
            row = [(x + 1) / 2, res.image]
            for vec, alpha in vectors:
                row.append(E.render(g, [E.apply_direction(E.from_latent(res.latent), vec, alpha)])[0])
            panels.append([to_pil(t).resize((side, side), Image.NEAREST) for t in row])
            rows.append({"input": label, "stylemap_res": sides, "psnr_db": round(res.metrics["psnr"], 2)})
            print(f"edits: {label}, sides {sides}: {rows[-1]['psnr_db']} dB")
    canvas = Image.new("RGB", (len(panels[0]) * (side + 4) - 4, len(panels) * (side + 4) - 4), (255, 255, 255))
    for r, row in enumerate(panels):
        for k, p in enumerate(row):
            canvas.paste(p, (k * (side + 4), r * (side + 4)))
    dest = DOCS / "stylemap_edits.png"
    canvas.save(dest)
    return dest, rows


def tuning_strip(g, direction: str, alpha: float) -> tuple[Path, list[dict]]:
    """photo | aligned | W+ | pivotal tuning | tuning + edit (docs/real_photo_tuning.png), and the
    W+ and tuned rows for the table: W+ gets the tuned job's seconds (equal wall time)."""
    from optinv.edit import edits as E
    from optinv.edit.directions import load_direction
    from optinv.engine.tuning import tuned_generator

    photo = astronaut()
    al = faces.align_photo(photo, g.size, name="astronaut.png")
    x = to_tensor(al.image)
    t0 = time.perf_counter()
    tuned = jobs.invert([x], model=g, options=jobs.JobOptions(tune=True, tune_rank=8, progress=False))[0]
    tuned_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    probe = jobs.invert([x], model=g, options=jobs.JobOptions(space="wplus", steps=20, progress=False))[0]
    wplus_steps = max(20, round(tuned_s / ((time.perf_counter() - t0) / 20)))
    t0 = time.perf_counter()
    plain = jobs.invert([x], model=g, options=jobs.JobOptions(space="wplus", steps=wplus_steps, progress=False))[0]
    plain_s = time.perf_counter() - t0
    _, vec = load_direction(direction, g)
    g2 = tuned_generator(g, tuned.latent.get("tuning"))
    edited = E.render(g2, [E.apply_direction(E.from_latent(tuned.latent), vec, alpha)])[0]
    side = 256
    panels = [photo.resize((side, side), Image.LANCZOS)] + [
        im.resize((side, side), Image.NEAREST) for im in (al.image, to_pil(plain.image), to_pil(tuned.image), to_pil(edited))]
    canvas = Image.new("RGB", (len(panels) * (side + 4) - 4, side), (255, 255, 255))
    for k, p in enumerate(panels):
        canvas.paste(p, (k * (side + 4), 0))
    dest = DOCS / "real_photo_tuning.png"
    canvas.save(dest)
    del probe
    rows = [{"photo": f"astronaut (512², aligned to {g.size}²)", "job": f"invert wplus, {wplus_steps} steps (the tuned job's time)",
             "psnr_db": round(plain.metrics["psnr"], 2), "fit_psnr_db": "",
             "identity_distance": round(distance(al.image, to_pil(plain.image)), 3), "bicubic_identity_distance": "",
             "align_s": "", "job_s": round(plain_s, 1)},
            {"photo": f"astronaut (512², aligned to {g.size}²)", "job": "invert --tune (W pivot, rank-8 tuning, PTI's steps)",
             "psnr_db": round(tuned.metrics["psnr"], 2), "fit_psnr_db": "",
             "identity_distance": round(distance(al.image, to_pil(tuned.image)), 3), "bicubic_identity_distance": "",
             "align_s": "", "job_s": round(tuned_s, 1)}]
    print(f"tuning strip: W+ {plain.metrics['psnr']:.2f} dB, tuned {tuned.metrics['psnr']:.2f} dB → {dest}")
    return dest, rows


def bench(g, steps: int, n_lfw: int, pulse_steps: int) -> list[dict]:
    rows = []
    photo = astronaut()
    t0 = time.perf_counter()
    al = faces.align_photo(photo, g.size, name="astronaut.png")
    align_s = time.perf_counter() - t0
    for space in ("wplus", "stylemap"):
        t0 = time.perf_counter()
        r = jobs.invert([to_tensor(al.image)], model=g, options=jobs.JobOptions(space=space, steps=steps, progress=False))[0]
        secs = time.perf_counter() - t0
        rows.append({"photo": f"astronaut (512², aligned to {g.size}²)", "job": f"invert {space}, {steps} steps, {r.metrics['recipe']}",
                     "psnr_db": round(r.metrics["psnr"], 2), "fit_psnr_db": "",
                     "identity_distance": round(distance(al.image, to_pil(r.image)), 3),
                     "bicubic_identity_distance": "", "align_s": round(align_s, 2), "job_s": round(secs, 1)})
    found = lfw_faces(n_lfw)
    psnrs, ids, fits, secs_all, base_ids = [], [], [], [], []
    for name, im in found:
        t0 = time.perf_counter()
        al = faces.align_photo(im, g.size, name=name)
        low = al.image.resize((16, 16), Image.BICUBIC, reducing_gap=None)
        a_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = jobs.pulse([to_tensor(low)], scale=g.size // 16, model=g,
                       options=jobs.JobOptions(steps=pulse_steps, progress=False))[0]
        secs_all.append(a_s + time.perf_counter() - t0)
        psnrs.append(psnr(r.image, to_tensor(al.image)))
        fits.append(psnr(r.observed, to_tensor(low)))
        ids.append(distance(al.image, to_pil(r.image)))
        base_ids.append(distance(al.image, low.resize((g.size, g.size), Image.BICUBIC)))
    if found:
        med = lambda xs: round(float(statistics.median(xs)), 3)  # noqa: E731
        rows.append({"photo": f"LFW ×{len(found)} (25² grey, ×8 bicubic, aligned, 16²)",
                     "job": f"pulse ×{g.size // 16}, ≤{pulse_steps} steps (median)",
                     "psnr_db": round(med(psnrs), 2), "fit_psnr_db": round(med(fits), 2), "identity_distance": med(ids),
                     "bicubic_identity_distance": med(base_ids), "align_s": "", "job_s": round(med(secs_all), 1)})
    return rows


def _same_kind(old: dict, rows: list[dict]) -> bool:
    """Rows of the part that was re-run (tuning rows by 'tune'/'tuned job', the others by their photo)."""
    tuning = lambda r: "tune" in r["job"]  # noqa: E731
    return any(tuning(old) == tuning(r) and old["photo"].split(" ")[0] == r["photo"].split(" ")[0] for r in rows)


def write_bench(rows: list[dict], command: str, model: str | None = None) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import benchmark

    path = DOCS / "benchmarks.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    fresh = {r["job"] for r in rows}  # a partial run (one --only part) replaces only its own rows
    data["photos"] = [r for r in data.get("photos", []) if r["job"] not in fresh and not _same_kind(r, rows)] + rows
    from optinv.io.checkpoints import load_generator

    data.setdefault("sections", {})["photos"] = {"command": command, "date": time.strftime("%Y-%m-%d"),
                                                "model": benchmark.model_label(load_generator(model))}
    path.write_text(json.dumps(data, indent=2) + "\n")
    benchmark.write_markdown(data)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="strip,bench,tuning")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lfw", type=int, default=8)
    ap.add_argument("--pulse-steps", type=int, default=100)
    ap.add_argument("--direction", default="smile")
    ap.add_argument("--alpha", type=float, default=3.0)
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    g = load_generator(args.model)
    only = set(args.only.split(","))
    if "strip" in only:
        strip(g, args.steps, args.direction, args.alpha)
    rows = bench(g, args.steps, args.lfw, args.pulse_steps) if "bench" in only else []
    if "tuning" in only:
        rows += tuning_strip(g, args.direction, args.alpha)[1]
    if "edits" in only:
        print(stylemap_edits(g, args.steps)[1])
    if rows:
        for r in rows:
            print(r)
        write_bench(rows, " ".join(["python scripts/real_photos.py", *(argv if argv is not None else sys.argv[1:])]),
                    args.model)


if __name__ == "__main__":
    main()
