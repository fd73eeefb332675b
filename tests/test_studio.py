"""The studio without a browser: the job queue, and the HTTP API on a tiny generator."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from PIL import Image

from conftest import tiny_generator

from optinv.errors import OptinvError
from optinv.studio.queue import JobQueue

PAGE = "testpage0001"


def _wait(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_queue_positions_one_job_per_page_and_cancel():
    q = JobQueue()
    gate, order = threading.Event(), []

    def blocking(job):
        order.append(job.page)
        while not gate.wait(0.01):
            job.check()
        return job.page

    def quick(job):
        order.append(job.page)
        return job.page

    first = q.submit("a", "paint", blocking)
    assert _wait(lambda: first.state == "running")
    b1, c = q.submit("b", "invert", quick), q.submit("c", "invert", quick)
    assert (q.position(first), q.position(b1), q.position(c)) == (0, 1, 2)
    b2 = q.submit("b", "pulse", quick)  # the same page again: its queued job is replaced
    assert b1.state == "cancelled" and (q.position(c), q.position(b2)) == (1, 2)
    gate.set()
    assert _wait(lambda: b2.finished)
    assert order == ["a", "c", "b"] and first.result == "a" and b2.state == "done"

    gate.clear()
    running = q.submit("d", "paint", blocking)
    assert _wait(lambda: running.state == "running")
    assert q.cancel(running.id)
    assert _wait(lambda: running.finished, 2.0) and running.state == "cancelled"
    q.close()


def test_queue_errors_are_one_line_and_the_worker_survives():
    q = JobQueue(describe_error=lambda e: f"said: {e}")

    def user_error(job):
        raise OptinvError("`steps` must be ≥ 1, got 0")

    def bug(job):
        raise ValueError("first line\nsecond line")

    a, b = q.submit("a", "paint", user_error), q.submit("b", "paint", bug)
    c = q.submit("c", "paint", lambda job: 42)
    assert _wait(lambda: c.finished)
    assert (a.state, a.error) == ("error", "said: `steps` must be ≥ 1, got 0")
    assert (b.state, b.error) == ("error", "ValueError: first line")
    assert (c.state, c.result) == ("done", 42)
    q.close()


# ------------------------------------------------------------------------------ HTTP API
@pytest.fixture(scope="module")
def server():
    pytest.importorskip("starlette", reason="the studio extra is not installed")
    pytest.importorskip("uvicorn", reason="the studio extra is not installed")
    from optinv.cli import to_flags
    from optinv.studio.app import launch

    running = launch(tiny_generator(32), wording=to_flags)
    yield running
    running.stop()


def _post(url, body, ctype="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _canvas(size=32):
    im = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    im.paste((20, 40, 230, 255), (4, 4, 20, 12))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _events(url, job_id, limit=10_000, page=PAGE):
    with urllib.request.urlopen(f"{url}api/jobs/{job_id}/events?page={page}", timeout=60) as r:
        for raw in r:
            line = raw.decode().strip()
            if line.startswith("data: "):
                yield json.loads(line[6:])
                limit -= 1
                if limit == 0:
                    return


def test_a_paint_job_streams_progress_and_returns_downloads(server):
    url = server.url
    status, job = _post(f"{url}api/jobs", {"page": PAGE, "job": "paint", "runs": 2,
                                          "source": {"canvas": _canvas(), "name": "stroke"},
                                          "options": {"steps": 12, "space": "wplus"}})
    assert status == 200, job
    views = list(_events(url, job["id"]))
    steps = [(v["progress"]["run"], v["progress"]["step"]) for v in views if "step" in v["progress"]]
    assert steps and steps[-1] == (2, 12) and steps == sorted(steps)
    assert any("preview" in v for v in views)
    done = views[-1]
    assert done["state"] == "done" and [r["name"] for r in done["results"]] == ["stroke_seed0", "stroke_seed1"]
    r = done["results"][0]
    assert r["metrics"]["steps"] == 12 and r["metrics"]["masked_mse"] >= 0
    with urllib.request.urlopen(f"{url}api/results/{r['id']}/latent?page={PAGE}") as resp:
        assert resp.headers["Content-Disposition"].endswith('stroke_seed0.latent.pt"')
        import torch

        rec = torch.load(io.BytesIO(resp.read()), weights_only=True)
        assert rec["space"] == "wplus" and rec["wplus"].shape == (server.app.state.studio.g.n_latent, 32)
    with pytest.raises(urllib.error.HTTPError):  # another page cannot read it
        urllib.request.urlopen(f"{url}api/results/{r['id']}/image?page=otherpage0001")


def test_closing_the_event_stream_cancels_the_job(server):
    status, job = _post(f"{server.url}api/jobs", {"page": PAGE + "x", "job": "paint",
                                                 "source": {"canvas": _canvas()}, "options": {"steps": 5000}})
    assert status == 200
    views = list(_events(server.url, job["id"], limit=3, page=PAGE + "x"))  # then the connection closes, as a closed tab's does
    assert views[-1]["state"] in ("queued", "running")
    j = server.app.state.studio.queue.get(job["id"])
    assert _wait(lambda: j.finished, 15.0) and j.state == "cancelled"
    assert j.progress.get("step", 0) < 5000


def test_bad_requests_get_one_line_messages(server):
    url = server.url
    status, out = _post(f"{url}api/upload?page={PAGE}&purpose=pulse&name=face.png",
                        open(__file__.replace("test_studio.py", "../samples/lowres/1000000_x8.png"), "rb").read()[:40],
                        "application/octet-stream")
    assert status == 400 and out["error"].startswith("face.png: ") and "\n" not in out["error"]
    buf = io.BytesIO()
    Image.new("RGB", (24, 24)).save(buf, format="PNG")
    status, out = _post(f"{url}api/upload?page={PAGE}&purpose=pulse&name=small.png", buf.getvalue(),
                        "application/octet-stream")
    assert status == 400 and out["error"].startswith("the low-res input is 24×24 but the model makes 32×32")
    status, out = _post(f"{url}api/upload?page={PAGE}&purpose=invert&name=big.png", b"\0" * (16 * 2**20 + 1),
                        "application/octet-stream")
    assert status == 400 and "16 MB" in out["error"]
    status, out = _post(f"{url}api/jobs", {"page": PAGE, "job": "paint", "source": {"canvas": _canvas()},
                                           "options": {"steps": 0}})
    assert (status, out["error"]) == (400, "--steps must be ≥ 1, got 0")
    status, out = _post(f"{url}api/jobs", {"page": PAGE, "job": "invert", "source": {"sample": "1000000.png"}},
                        ctype="text/plain")
    assert status == 400  # plain form posts from other sites are refused


def test_a_photo_for_alignment_may_be_any_shape(server):
    buf = io.BytesIO()
    Image.new("RGB", (60, 40), (120, 90, 80)).save(buf, format="PNG")
    url = f"{server.url}api/upload?page={PAGE}&purpose=invert&name=photo.png"
    status, out = _post(url + "&align=0", buf.getvalue(), "application/octet-stream")
    assert status == 400 and out["error"] == "photo.png: image is 60×40, not square; pass --crop center (or pad)"
    status, out = _post(url + "&align=1", buf.getvalue(), "application/octet-stream")
    assert status == 200 and out["name"] == "photo" and out["preview"].startswith("data:image/png")
