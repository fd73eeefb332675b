"""The studio in a real browser (headless Debian chromium through Playwright), on the embedded model.

Skipped, with the reason, where the studio extra, Playwright or chromium is missing; CI
installs all three (.ci/run).
"""

from __future__ import annotations

import base64
import io
from urllib.parse import urlparse

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import ROOT

pytest.importorskip("starlette", reason="the studio extra is not installed (pip install -e '.[studio]')")
pytest.importorskip("uvicorn", reason="the studio extra is not installed (pip install -e '.[studio]')")

from optinv.studio.headless import Browser, why_no_browser  # noqa: E402

SAMPLE = ROOT / "samples" / "images" / "1000000.png"


def model_size() -> int:
    from optinv.io.checkpoints import load_generator

    return load_generator(None).size  # the embedded default the studio opens


@pytest.fixture(scope="module")
def studio_url():
    import torch

    from optinv.cli import to_flags
    from optinv.engine.device import get_model
    from optinv.studio.app import launch

    running = launch(get_model(None, torch.device("cpu")), wording=to_flags)
    yield running.url
    running.stop()


@pytest.fixture(scope="module")
def browser():
    reason = why_no_browser()
    if reason:
        pytest.skip(reason)
    b = Browser()
    yield b
    b.close()


@pytest.fixture
def page(browser, studio_url):
    p = browser.new_page()
    p.requests_seen = []  # type: ignore[attr-defined]
    p.on("request", lambda r: p.requests_seen.append(r.url))
    p.goto(studio_url)
    p.wait_for_selector("body[data-ready='1']", timeout=20_000)
    yield p
    p.close()


def _pixels(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.partition(",")[2]))).convert("RGB"), np.float64)


def _blueness(rgb: np.ndarray, mask: np.ndarray) -> float:
    """Mean of B − (R+G)/2 over the masked pixels (0…255 scale)."""
    b = rgb[..., 2] - (rgb[..., 0] + rgb[..., 1]) / 2
    return float(b[mask].mean())


def test_page_loads_with_no_request_leaving_localhost(page, studio_url):
    for tab in ("invert", "pulse", "edit", "paint"):
        page.click(f"nav [data-tab={tab}]")
        assert page.is_visible(f"#tab-{tab}")
    page.wait_for_load_state("networkidle")
    host = urlparse(studio_url).hostname
    network = [u for u in page.requests_seen if urlparse(u).scheme in ("http", "https", "ws", "wss")]
    assert network, "the page made no requests at all"
    assert host == "127.0.0.1" and all(urlparse(u).hostname == host for u in network), network
    assert any(u.endswith("/static/studio.js") for u in network) and any(u.endswith("/api/info") for u in network)


def test_blue_stroke_over_the_hair_and_a_30_step_paint_run(page):
    n = model_size()
    k = n / 64  # the strokes are laid out on a 64-unit grid over the canvas
    page.select_option("#paint-guide", "1000000.png")
    page.wait_for_function(f"() => {{ const c = document.querySelector('#paint-canvas').getContext('2d');"
                           f" return c.getImageData({n // 2}, {n // 2}, 1, 1).data[3] > 0; }}")
    page.eval_on_selector("#brush-color", "e => { e.value = '#0000ff'; e.dispatchEvent(new Event('input')); }")
    page.fill("#brush-size", str(round(6 * k)))
    box = page.locator("#paint-canvas").bounding_box()
    px = box["width"] / 64
    for row in (11, 15):  # the top of the head: hair in this sample
        page.mouse.move(box["x"] + 25 * px, box["y"] + row * px)
        page.mouse.down()
        for col in range(25, 41, 3):
            page.mouse.move(box["x"] + col * px, box["y"] + row * px)
        page.mouse.up()
    alpha = np.array(page.evaluate(f"() => Array.from(studio.paint.layer.getContext('2d')"
                                   f".getImageData(0, 0, {n}, {n}).data.filter((_, i) => i % 4 === 3))"))
    painted = alpha.reshape(n, n) > 0
    assert 60 * k * k < painted.sum() < 600 * k * k

    tab = page.locator("#tab-paint")
    tab.locator(".opt-steps").fill("30")
    tab.locator(".run").click()
    page.wait_for_function("() => document.querySelector('#tab-paint').dataset.state === 'done'", timeout=180_000)
    assert int(tab.get_attribute("data-updates")) >= 2  # live progress arrived while it ran
    assert tab.locator(".live-image").get_attribute("src").startswith("data:image/png")

    before = np.asarray(Image.open(SAMPLE).convert("RGB"), np.float64)
    after = _pixels(tab.locator(".result-image").first.get_attribute("src"))
    gain = _blueness(after, painted) - _blueness(before, painted)
    print(f"painted pixels: blueness {_blueness(before, painted):.1f} → {_blueness(after, painted):.1f}")
    assert gain > 20, gain
    assert "painted-area error" in tab.locator(".result-metrics").first.inner_text()


def test_a_slider_move_changes_the_rendered_image(page):
    page.click("nav [data-tab=edit]")
    page.click("#edit-from-seed")
    page.wait_for_function("() => +document.querySelector('#edit-image').dataset.frames >= 1")
    grab = ("() => { const i = document.querySelector('#edit-image'); const c = document.createElement('canvas');"
            " c.width = i.naturalWidth; c.height = i.naturalHeight; const x = c.getContext('2d'); x.drawImage(i, 0, 0);"
            " return Array.from(x.getImageData(0, 0, c.width, c.height).data); }")
    first = np.array(page.evaluate(grab), np.float64)
    slider = page.locator("#edit-sliders input").first
    slider.evaluate("e => { e.value = 4; e.dispatchEvent(new Event('input')); }")
    page.wait_for_function("() => +document.querySelector('#edit-image').dataset.frames >= 2")
    second = np.array(page.evaluate(grab), np.float64)
    assert first.shape == second.shape == (model_size() ** 2 * 4,)
    assert np.abs(first - second).mean() > 1.0
    assert "frame" in page.inner_text("#edit-timing")


def test_an_invalid_upload_shows_the_clis_message(page, tmp_path):
    from optinv.cli import main

    bad = tmp_path / "notes.png"
    bad.write_text("not an image at all")
    cli = CliRunner().invoke(main, ["invert", str(bad), "-o", str(tmp_path / "out")])
    line = next(x for x in cli.output.splitlines() if x.startswith("error: "))
    expected = line.removeprefix("error: ").replace(str(bad), bad.name)

    page.click("nav [data-tab=invert]")
    page.set_input_files("#tab-invert .source-upload", str(bad))
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == expected
