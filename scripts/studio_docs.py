"""Screenshots of every studio tab (docs/studio_*.png) and its two timings, in the headless chromium.

    python scripts/studio_docs.py [--threads 2] [--frames 40] [--no-screenshots] [--record --label TEXT]

Timings (printed as JSON, recorded in docs/BENCHMARKS.md):
- frame: a direction slider moved → the new image shown in the page (request, render, PNG,
  decode), one move at a time, on the embedded default model;
- first progress: "Run" clicked → the first step's numbers shown (job queued, set up, step 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from optinv.cli import to_flags
from optinv.engine.device import get_model
from optinv.studio.app import launch
from optinv.studio.headless import Browser, why_no_browser

DOCS = Path(__file__).resolve().parents[1] / "docs"


def stroke(page, size: int, rows=(11, 15), cols=(25, 41)) -> None:
    """A blue stroke over the top of the head (the hair) of the selected sample (laid out on a
    64-unit grid over the canvas, the brush scaled to the model's ``size``)."""
    page.eval_on_selector("#brush-color", "e => { e.value = '#1030ff'; e.dispatchEvent(new Event('input')); }")
    page.fill("#brush-size", str(round(6 * size / 64)))
    box = page.locator("#paint-canvas").bounding_box()
    px = box["width"] / 64
    for row in rows:
        page.mouse.move(box["x"] + cols[0] * px, box["y"] + row * px)
        page.mouse.down()
        for col in range(cols[0], cols[1], 2):
            page.mouse.move(box["x"] + col * px, box["y"] + row * px)
        page.mouse.up()


def run_tab(page, tab: str, steps: int, timeout_ms: int = 600_000) -> None:
    sec = page.locator(f"#tab-{tab}")
    sec.locator(".opt-steps").fill(str(steps))
    sec.locator(".run").click()
    page.wait_for_function(f"() => document.querySelector('#tab-{tab}').dataset.state === 'done'", timeout=timeout_ms)


def frame_times(page, n: int) -> list[float]:
    page.click("nav [data-tab=edit]")
    sliders = page.locator("#edit-sliders input")
    count = page.evaluate("() => studio.timings.frames.length")
    for i in range(n):
        value = round(3 * ((i % 10) / 5 - 1), 1)
        sliders.nth(i % sliders.count()).evaluate(f"e => {{ e.value = {value}; e.dispatchEvent(new Event('input')); }}")
        page.wait_for_function(f"() => studio.timings.frames.length >= {count + i + 1}")
    return page.evaluate("() => studio.timings.frames")[count:], page.evaluate("() => studio.timings.renders")[count:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (the target is 2 cores)")
    ap.add_argument("--frames", type=int, default=40, help="slider moves to time")
    ap.add_argument("--no-screenshots", action="store_true")
    ap.add_argument("--label", default="shared machine", help="the conditions, the row's key in docs/benchmarks.json")
    ap.add_argument("--record", action="store_true", help="write the row to docs/benchmarks.json and BENCHMARKS.md")
    args = ap.parse_args()
    reason = why_no_browser()
    if reason:
        raise SystemExit(f"studio_docs: {reason}")
    torch.set_num_threads(args.threads)
    g = get_model(None, torch.device("cpu"))
    server = launch(g, wording=to_flags)
    browser = Browser()
    try:
        page = browser.new_page()
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']")
        shots = not args.no_screenshots

        page.select_option("#paint-guide", "1000000.png")
        page.wait_for_timeout(300)
        page.fill("#paint-keep", "30")
        page.dispatch_event("#paint-keep", "input")
        stroke(page, g.size)
        for _ in range(3):  # Run → first progress, three times (short runs)
            run_tab(page, "paint", 5)
        run_tab(page, "paint", 60)
        first = page.evaluate("() => studio.timings.firstProgress")
        if shots:
            page.screenshot(path=str(DOCS / "studio_paint.png"), full_page=True)

        page.click("nav [data-tab=invert]")
        page.select_option("#tab-invert .source-sample", "1000003.png")
        run_tab(page, "invert", 100)
        if shots:
            page.screenshot(path=str(DOCS / "studio_invert.png"), full_page=True)

        page.click("nav [data-tab=pulse]")
        page.select_option("#tab-pulse .source-sample", "1000000_x32.png" if g.size >= 256 else "1000000_x8.png")
        page.fill("#tab-pulse .opt-runs", "2")
        run_tab(page, "pulse", 100)
        if shots:
            page.screenshot(path=str(DOCS / "studio_pulse.png"), full_page=True)

        page.click("nav [data-tab=invert]")
        page.locator("#tab-invert .to-edit").first.click()
        page.wait_for_function("() => studio.timings.frames.length >= 1")
        frames, renders = frame_times(page, args.frames)
        page.click("#edit-reset")
        page.locator("#dir-smile").evaluate("e => { e.value = 1.5; e.dispatchEvent(new Event('input')); }")
        page.locator("#dir-hair_length").evaluate("e => { e.value = -1; e.dispatchEvent(new Event('input')); }")
        page.wait_for_timeout(800)
        if shots:
            page.screenshot(path=str(DOCS / "studio_edit.png"), full_page=True)
    finally:
        browser.close()
        server.stop()
    row = {"conditions": args.label, "model": f"{g.card.get('name', '?')} ({g.size}²)", "load_1min": round(os.getloadavg()[0], 1), "frames": len(frames),
           "frame_median_ms": median(frames), "frame_p90_ms": p90(frames),
           "render_wall_median_ms": median([r["wall"] for r in renders]),
           "render_cpu_median_ms": median([r["cpu"] for r in renders]),
           "first_progress_ms": median(first[1:]), "first_progress_fresh_ms": round(first[0], 1)}
    print(json.dumps(row, indent=2))
    if args.record:
        niced = f"nice -n {os.nice(0)} " if os.nice(0) else ""
        record(row, niced + shlex.join(["python", "scripts/studio_docs.py", *sys.argv[1:]]))


def median(xs: list[float]) -> float:
    return round(statistics.median(xs), 1)


def p90(xs: list[float]) -> float:
    return round(statistics.quantiles(xs, n=10)[-1], 1)


def record(row: dict, command: str) -> None:
    """The row (replacing one of the same conditions) in docs/benchmarks.json, and BENCHMARKS.md redrawn."""
    sys.path.insert(0, str(DOCS.parent / "scripts"))
    import benchmark

    path = DOCS / "benchmarks.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data["studio"] = [r for r in data.get("studio", []) if r["conditions"] != row["conditions"]] + [row]
    from optinv.io.checkpoints import load_generator

    data.setdefault("sections", {})["studio"] = {"command": command, "date": time.strftime("%Y-%m-%d"),
                                                "model": benchmark.model_label(load_generator(None))}
    path.write_text(json.dumps(data, indent=2) + "\n")
    benchmark.write_markdown(data)

if __name__ == "__main__":
    main()
