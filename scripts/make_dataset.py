"""Write a folder of procedural portraits plus their labels (resumable).

Usage: python scripts/make_dataset.py OUT_DIR --start 0 --count N --size 64

Images go to OUT_DIR/{seed:06d}.png and labels to OUT_DIR/labels.jsonl (one JSON
object per line). Seeds whose PNG already exists, or whose label line is already
in labels.jsonl, are skipped, so an interrupted run can simply be started again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


from tqdm import tqdm

from optinv.io.image_files import atomic_save_image
from optinv.world.synthfaces import labels_from_params, params_from_seed, render


def _known_seeds(labels_path: Path) -> set[int]:
    """Seeds already labelled; a torn last line (killed run) is ignored."""
    seeds: set[int] = set()
    if not labels_path.exists():
        return seeds
    with labels_path.open() as f:
        for line in f:
            try:
                seeds.add(int(json.loads(line)["seed"]))
            except (ValueError, KeyError, TypeError):
                continue
    return seeds


def _repair_tail(labels_path: Path) -> None:
    """Make sure the file ends with a newline so appended lines stay separate."""
    if labels_path.exists() and labels_path.stat().st_size > 0:
        with labels_path.open("rb+") as f:
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.write(b"\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--count", type=int, required=True, help="number of images")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--supersample", type=int, default=4)
    args = ap.parse_args(argv)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    labels_path = args.out_dir / "labels.jsonl"
    _repair_tail(labels_path)
    known = _known_seeds(labels_path)
    written = 0
    with labels_path.open("a") as labels_file:
        for seed in tqdm(range(args.start, args.start + args.count), desc="portraits", unit="img"):
            png = args.out_dir / f"{seed:06d}.png"
            if png.exists():
                if seed not in known:  # image survived but its label line did not
                    lab = labels_from_params(params_from_seed(seed))
                    lab["seed"] = seed
                    labels_file.write(json.dumps(lab) + "\n")
                continue
            img, lab = render(seed, args.size, args.supersample)
            atomic_save_image(img, png)  # a killed run never leaves a half PNG
            if seed not in known:
                labels_file.write(json.dumps(lab) + "\n")
            written += 1
    print(f"wrote {written} images to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
