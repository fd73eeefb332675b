"""Hostile use, second round: absurd numbers, names from files, symlinks, partial writes, studio bodies.

Each test is named after the behaviour it protects (docs/RELIABILITY.md lists the classes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import tiny_generator
from optinv.engine import jobs
from optinv.io.checkpoints import load_generator, save_generator
from optinv.cli import main
from optinv.edit.directions import save_directions
from optinv.io.latents import save_latent


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A tiny model, one W+ latent of it and a unit direction."""
    d = tmp_path_factory.mktemp("hostile2")
    g = tiny_generator(32, style_dim=32, seed=5)
    g.card = {"name": "tiny32", "default_recipes": {"invert": "1*L2"}}
    model = save_generator(g, d / "tiny32.pt")
    g = load_generator(model)
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    r = jobs.invert([x], model=g, device="cpu", steps=1, space="wplus", recipe="1*L2", progress=False)[0]
    latent = save_latent(r.latent, d / "a.latent.pt")
    vec = torch.zeros(32)
    vec[0] = 1.0
    dirs = save_directions({"up": {"vector": vec, "method": "test"}}, g, d / "up.pt")
    return {"dir": d, "model": model, "g": g, "latent": latent, "up": dirs}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(r) -> str:
    """The run failed with exactly one 'error:' line and no traceback."""
    assert r.exit_code != 0, r.stdout
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith(("error:", "Error:"))]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    return errors[0]


def files(folder: Path) -> list[str]:
    """What a run left in ``folder``, besides its lock file."""
    return sorted(p.name for p in folder.rglob("*") if p.name != ".optinv.lock") if folder.exists() else []


# ------------------------------------------------------------------------------ silently wrong
@pytest.mark.parametrize("amount", ["nan", "inf", "-inf"])
def test_path_edit_amounts_must_be_finite_like_alpha(world, tmp_path, amount) -> None:
    out = tmp_path / "o"
    assert "finite" in one_line_error(invoke("edit", world["latent"], "-e", f"bangs={amount}", "--out", out))
    assert "finite" in one_line_error(invoke("edit", world["latent"], "-d", world["up"], "-a", amount, "--out", out))
    assert not list(out.glob("*.latent.pt"))


def test_edit_with_an_absurd_alpha_is_refused_before_writing(world, tmp_path) -> None:
    out = tmp_path / "o"
    msg = one_line_error(invoke("edit", world["latent"], "-d", world["up"], "-a", "1e30", "--out", out))
    assert "typical distance" in msg
    assert files(out) == []
    r = invoke("edit", world["latent"], "-d", world["up"], "-a", "3", "--out", out)
    assert r.exit_code == 0, r.output


def test_a_direction_file_with_huge_values_is_refused(world, tmp_path) -> None:
    big = tmp_path / "big.pt"
    torch.save(torch.full((32,), 1e38), big)
    msg = one_line_error(invoke("edit", world["latent"], "-d", big, "-a", "1", "--out", tmp_path / "o"))
    assert "infinite" in msg or "typical distance" in msg
    assert files(tmp_path / "o") == []


def test_a_ganspace_file_with_a_huge_stdev_is_refused(world, tmp_path) -> None:
    npz = tmp_path / "gs.npz"
    comp = np.eye(32, dtype=np.float32)[:2, None]
    np.savez(npz, lat_comp=comp, lat_stdev=np.array([1e30, 1.0], np.float32), lat_mean=np.zeros((1, 32), np.float32))
    msg = one_line_error(invoke("edit", world["latent"], "-d", f"{npz}:pc0", "-a", "1", "--out", tmp_path / "o"))
    assert "typical distance" in msg
    r = invoke("edit", world["latent"], "-d", f"{npz}:pc1", "-a", "1", "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output


def test_generate_refuses_a_truncation_that_would_render_a_flat_image(world, tmp_path) -> None:
    msg = one_line_error(invoke("generate", "--model", world["model"], "--truncation", "1e30", "--out", tmp_path))
    assert "truncation" in msg and "typical distance" in msg
    assert not list(tmp_path.glob("*.png"))
    assert invoke("generate", "--model", world["model"], "--truncation", "2", "--out", tmp_path).exit_code == 0


@pytest.fixture(scope="module")
def studio():
    from optinv.studio.service import Studio

    st = Studio(tiny_generator(32))
    st.directions = {"up": torch.eye(32)[0]}
    yield st
    st.queue.close()


@pytest.mark.parametrize("truncation", [float("nan"), 1e308, "x"])
def test_studio_refuses_a_seed_truncation_that_is_not_a_sensible_number(studio, truncation) -> None:
    from optinv.errors import OptinvError

    with pytest.raises(OptinvError, match="truncation"):
        studio.seed_latent(studio.page("testpage0001"), 3, truncation)


@pytest.mark.parametrize("seed", ["1" * 30, -1, 1.5, None])
def test_studio_refuses_seeds_torch_cannot_take_in_one_line(studio, seed) -> None:
    from optinv.errors import OptinvError

    with pytest.raises(OptinvError, match="seed"):
        studio.seed_latent(studio.page("testpage0001"), seed, 0.7)


@pytest.mark.parametrize("alpha", [float("nan"), 1e308, "smile"])
def test_studio_refuses_edit_amounts_that_are_not_sensible_before_render_or_save(studio, alpha) -> None:
    from optinv.errors import OptinvError

    page = studio.page("testpage0001")
    key = studio.seed_latent(page, 3, 0.7)["id"]
    body = {"page": "testpage0001", "a": key, "alphas": {"up": alpha}}
    for call in (studio.render, studio.save_edit):
        with pytest.raises(OptinvError, match="amount|typical distance"):
            call(body)
    assert studio.render({**body, "alphas": {"up": 2}})[0].startswith(b"\x89PNG")


# ------------------------------------------------------------------------------ data loss
def test_only_optinv_temporary_files_are_cleaned_never_a_users_dot_tmp(world, tmp_path) -> None:
    out = tmp_path / "d"
    out.mkdir()
    notes, scan = out / ".notes.tmp", out / ".scan.tmp"
    notes.write_text("mine")
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(scan, format="PNG")
    stale = out / ".old.png.optinv.tmp"
    stale.write_bytes(b"half")
    r = invoke("invert", scan, "--model", world["model"], "--steps", "1", "--space", "w", "-q", "-o", out)
    assert r.exit_code == 0, r.output
    assert notes.read_text() == "mine" and scan.is_file() and not stale.exists()


def test_an_input_that_links_into_out_is_never_overwritten(world, tmp_path) -> None:
    from PIL import Image

    (tmp_path / "in").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    real = out / "face.png"
    Image.fromarray((np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)).save(real)
    before = real.read_bytes()
    link = tmp_path / "in" / "face.png"
    link.symlink_to(Path("..") / "out" / "face.png")
    r = invoke("invert", link, "--model", world["model"], "--steps", "1", "--space", "w", "-q", "-o", out)
    assert r.exit_code == 0, r.output
    assert real.read_bytes() == before and (out / "face_1.png").is_file()
    r = invoke("batch", tmp_path / "in", "--job", "invert", "--model", world["model"], "--steps", "1",
               "--space", "w", "-q", "--out", out)
    assert r.exit_code == 0, r.output
    assert real.read_bytes() == before


def test_lock_and_probe_files_never_write_through_a_planted_link(world, tmp_path) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("precious")
    (out / ".optinv.lock").symlink_to(victim)
    (out / ".optinv_write_probe").symlink_to(victim)
    msg = one_line_error(invoke("generate", "--model", world["model"], "--seed", "1", "-o", out))
    assert "symbolic link" in msg
    (out / ".optinv.lock").unlink()
    (out / ".seed0001.png.optinv.tmp").symlink_to(victim)
    r = invoke("generate", "--model", world["model"], "--seed", "1", "-o", out)
    assert r.exit_code == 0, r.output
    assert victim.read_text() == "precious" and (out / "seed0001.png").is_file()


def test_discover_checks_it_can_write_its_result_before_training(world, tmp_path, monkeypatch) -> None:
    import optinv.edit.discover.run as run

    monkeypatch.setattr(run, "discover", lambda *a, **k: pytest.fail("trained before checking the output"))
    msg = one_line_error(invoke("directions", "discover", "--model", world["model"], "--steps", "1", "--k", "2",
                                "--predictor", "none", "-o", tmp_path / "missing" / "x.pt"))
    assert "does not exist" in msg


@pytest.mark.parametrize("flag, value", [("--alpha", "nan"), ("--speed", "inf"), ("--speed", "-1"),
                                         ("--max-minutes", "nan"), ("--max-minutes", "0"), ("--lr-paths", "nan")])
def test_discover_refuses_non_finite_or_negative_weights(world, tmp_path, flag, value) -> None:
    msg = one_line_error(invoke("directions", "discover", "--model", world["model"], "--steps", "1", "--k", "2",
                                "--predictor", "none", flag, value, "-o", tmp_path / "x.pt"))
    assert flag.lstrip("-").replace("-", "_") in msg or flag in msg
    assert not (tmp_path / "x.pt").exists()


# ------------------------------------------------------------------------------ directions
def _listing(tmp_path: Path, rows: list[tuple[Path, float]]) -> Path:
    import json

    p = tmp_path / "l.jsonl"
    p.write_text("".join(json.dumps({"latent": str(lat), "smile": y}) + "\n" for lat, y in rows))
    return p


def test_fit_refuses_identical_latents_instead_of_writing_a_zero_direction(world, tmp_path) -> None:
    listing = _listing(tmp_path, [(world["latent"], k % 2) for k in range(6)])
    assert "the same" in one_line_error(invoke("directions", "fit", listing, "--label", "smile", "-o", tmp_path / "d.pt"))
    assert not (tmp_path / "d.pt").exists()


def test_fit_with_huge_labels_gives_the_same_finite_direction(world, tmp_path) -> None:
    from optinv.edit.edits import fit_direction

    torch.manual_seed(0)
    x = torch.randn(8, 32)
    y = torch.tensor([1.0, -1, 2, -2, 3, -3, 0.5, -0.5])
    small, huge = fit_direction(x, y), fit_direction(x, [v * 1e300 for v in y.tolist()])
    assert torch.isfinite(huge).all() and torch.allclose(small, huge, atol=1e-5)


def test_a_model_card_name_never_decides_where_files_go(world, tmp_path, monkeypatch) -> None:
    from optinv.io.checkpoints import card_name

    g = tiny_generator(32, style_dim=32, seed=5)
    planted = tmp_path / "elsewhere" / "planted"
    planted.parent.mkdir()
    model = save_generator(g, tmp_path / "m.pt", card={"name": str(planted)})
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    r = invoke("directions", "sefa", "--model", model, "--k", "2")
    assert r.exit_code == 0, r.output
    assert list(planted.parent.iterdir()) == [] and len(list(work.glob("*.sefa.pt"))) == 1
    g.card = {"name": "../../x"}
    assert "/" not in card_name(g) and not card_name(g).startswith(".")


def test_paste_back_without_an_alignment_fails_before_writing_anything(world, tmp_path) -> None:
    out = tmp_path / "o"
    msg = one_line_error(invoke("edit", world["latent"], "-d", world["up"], "-a", "1", "--paste-back", "--out", out))
    assert "no alignment" in msg
    assert not [p for p in out.glob("*") if not p.name.startswith(".")]


def test_encoder_passes_far_beyond_training_are_refused_and_psnr_is_on_the_clamped_image() -> None:
    from optinv.engine import warmstart
    from optinv.engine.encoder import build_for, widen_to_iterative
    from optinv.errors import OptinvError
    from optinv.engine.metrics import psnr

    g = tiny_generator(32, style_dim=16)
    many = widen_to_iterative(build_for(g, "wplus", width=16), passes=3)
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(OptinvError, match="trained for"):
        warmstart.encode(many, x, g, passes=100)
    assert warmstart.encode(many, x, g, passes=6).shape == warmstart.encode(many, x, g).shape
    target = torch.ones(3, 4, 4)
    assert psnr(target * 5, target) == float("inf")  # saturated pixels are saved as 1: no error there


@pytest.mark.parametrize("quad", [[[float("nan"), 0], [0, 32], [32, 32], [32, 0]],
                                  [[5, 5], [5, 5], [5, 5], [5, 5]], [[0, 0], [10, 10], [20, 20], [30, 30]],
                                  [[0, 0], [0, 1e300], [1e300, 1e300], [1e300, 0]]])
def test_paste_refuses_a_nan_or_degenerate_quad_instead_of_writing_the_photo_unchanged(tmp_path, quad) -> None:
    import json

    from PIL import Image

    from optinv.faces.align import TRANSFORM_FORMAT

    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "r.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "photo.png")
    t = tmp_path / "t.align.json"
    t.write_text(json.dumps({"format": TRANSFORM_FORMAT, "quad": quad, "size": 32, "photo_size": [64, 64]}))
    msg = one_line_error(invoke("paste", tmp_path / "r.png", "--into", tmp_path / "photo.png", "--transform", t,
                                "-o", tmp_path / "o"))
    assert "quad" in msg
    assert not list((tmp_path / "o").glob("*.png"))


def test_sefa_preview_must_be_a_png_and_is_kept_unless_overwrite(world, tmp_path) -> None:
    base = ["directions", "sefa", "--model", world["model"], "--k", "2"]
    for bad in (world["model"], tmp_path / "noext"):
        assert ".png" in one_line_error(invoke(*base, "-o", tmp_path / "d.pt", "--preview", bad))
    assert "directions file" in one_line_error(invoke(*base, "-o", tmp_path / "x.png", "--preview", tmp_path / "x.png"))
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"my notes")
    r = invoke(*base, "-o", tmp_path / "d.pt", "--preview", notes)
    assert r.exit_code == 0 and "kept" in r.output and notes.read_bytes() == b"my notes"
    assert (tmp_path / "d.pt").is_file()
    r = invoke(*base, "-o", tmp_path / "d2.pt", "--preview", notes, "--overwrite")
    assert r.exit_code == 0 and notes.read_bytes().startswith(b"\x89PNG")


def test_an_edit_with_other_alphas_never_replaces_an_earlier_strip(world, tmp_path) -> None:
    out = tmp_path / "o"
    assert invoke("edit", world["latent"], "-d", world["up"], "-a", "-1", "-a", "1", "-o", out).exit_code == 0
    first = (out / "a.up.png").read_bytes()
    r = invoke("edit", world["latent"], "-d", world["up"], "-a", "2", "-o", out)
    assert r.exit_code == 0, r.output
    assert (out / "a.up.png").read_bytes() == first and (out / "a.up_1.png").is_file()
    assert (out / "a.up_1+2.latent.pt").is_file() and "another result" in r.stderr
    r = invoke("edit", world["latent"], "-d", world["up"], "-a", "-1", "-a", "1", "-o", out)
    assert "kept" in r.output and (out / "a.up.png").read_bytes() == first


def test_a_failed_overwrite_leaves_the_old_result_whole(world, tmp_path, monkeypatch) -> None:
    from PIL import Image

    import optinv.io.outputs as outputs

    src = tmp_path / "face.png"
    Image.fromarray((np.random.default_rng(2).random((32, 32, 3)) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "o"
    args = ["invert", src, "--model", world["model"], "--steps", "1", "--space", "w", "-q", "-o", out]
    assert invoke(*args).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}

    def full_disk(item):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "compare_strip", full_disk)
    r = invoke(*args, "--seed", "1", "--overwrite")
    assert r.exit_code != 0 and "Traceback" not in r.stderr
    after = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    assert after == before
    assert not list(out.glob(".*.optinv.tmp"))


def test_edit_mix_blend_and_interpolate_take_the_folder_lock(world, tmp_path) -> None:
    from optinv.io.outputs import OutputLock

    out = tmp_path / "o"
    out.mkdir()
    lat = world["latent"]
    with OutputLock(out):
        for cmd in (["edit", lat, "-d", world["up"], "-a", "1"], ["mix", lat, lat, "--layers", "0-1"],
                    ["blend", lat, lat], ["interpolate", lat, lat]):
            assert "is writing to" in one_line_error(invoke(*cmd, "-o", out))
    assert invoke("mix", lat, lat, "--layers", "0-1", "-o", out).exit_code == 0


# ------------------------------------------------------------------------------ hangs and resources
def test_tune_steps_are_capped_like_steps() -> None:
    from optinv.errors import OptinvError
    from optinv.engine.options import MAX_STEPS, JobOptions

    with pytest.raises(OptinvError, match="tune_steps"):
        JobOptions.of(tune_steps=MAX_STEPS + 1)
    JobOptions.of(tune_steps=0)


def test_pulse_duplicates_are_bounded_before_any_work(world, tmp_path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "low.png")
    for n in ("100000", "0"):
        msg = one_line_error(invoke("pulse", tmp_path / "low.png", "--model", world["model"], "--steps", "1",
                                    "--duplicates", n, "-q", "-o", tmp_path / "o"))
        assert "duplicates" in msg


def test_padding_a_long_strip_never_builds_a_huge_canvas(tmp_path, monkeypatch) -> None:
    from PIL import Image

    from optinv.io.image_files import load_image

    Image.new("RGB", (20000, 4), (250, 0, 0)).save(tmp_path / "strip.png")
    made = []
    real_new = Image.new
    monkeypatch.setattr(Image, "new", lambda mode, size, *a, **k: made.append(size) or real_new(mode, size, *a, **k))
    x = load_image(tmp_path / "strip.png", size=32, crop="pad")
    assert x.shape == (3, 32, 32) and max(max(s) for s in made) <= 32
    assert float(x[0].max()) > 0.9  # the strip is there, red


@pytest.mark.parametrize("env, message", [
    ({"RANK": "5", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK 5 does not lie"),
    ({"RANK": "-1", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "does not lie"),
    ({"RANK": "x", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK must be an integer"),
    ({"RANK": "0", "WORLD_SIZE": "0", "LOCAL_RANK": "0"}, "does not lie"),
])
def test_torchrun_variables_out_of_range_are_refused_before_the_rendezvous(world, tmp_path, monkeypatch, env,
                                                                           message) -> None:
    from PIL import Image

    for k, v in {**env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "in").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "in" / "a.png")
    msg = one_line_error(invoke("batch", tmp_path / "in", "--job", "invert", "--model", world["model"],
                                "--steps", "1", "-q", "--device", "cpu", "--out", tmp_path / "o"))
    assert message in msg


def test_a_rank_without_the_others_gives_up_after_the_rendezvous_timeout(world, tmp_path, monkeypatch) -> None:
    import socket
    import time

    from PIL import Image

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(port), "OPTINV_RENDEZVOUS_SECONDS": "2"}.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "in").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "in" / "a.png")
    t0 = time.monotonic()
    msg = one_line_error(invoke("batch", tmp_path / "in", "--job", "invert", "--model", world["model"],
                                "--steps", "1", "-q", "--device", "cpu", "--out", tmp_path / "o"))
    assert "did not join within 2 s" in msg and time.monotonic() - t0 < 30


# ------------------------------------------------------------------------------ studio
@pytest.fixture(scope="module")
def server():
    pytest.importorskip("starlette", reason="the studio extra is not installed")
    pytest.importorskip("uvicorn", reason="the studio extra is not installed")
    from optinv.cli import to_flags
    from optinv.studio.app import launch

    running = launch(tiny_generator(32), wording=to_flags)
    yield running
    running.stop()


def _post(url: str, body, ctype: str = "application/json"):
    import json
    import urllib.error
    import urllib.request

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


PAGE = "hostilepage01"
BAD_BODIES = [
    ("jobs", {"job": "invert", "runs": "abc", "source": {"sample": "x.png"}}, "runs"),
    ("jobs", b'{"page": "hostilepage01", "job": "invert", "runs": 1e400}', "runs"),
    ("jobs", {"job": "invert", "runs": [1]}, "runs"),
    ("jobs", {"job": "invert", "source": "x"}, "source"),
    ("jobs", {"job": "invert", "options": [1]}, "options"),
    ("jobs", b'{"page": "hostilepage01", "job": "invert", "options": {"steps": 1e400}}', "steps"),
    ("jobs", {"job": "invert", "bogus": 1}, "bogus"),
    ("edit/seed", {"seed": 10 ** 30}, "seed"),
    ("edit/seed", b'{"page": "hostilepage01", "seed": 1, "truncation": NaN}', "truncation"),
    ("edit/render", {"a": "x", "alphas": ["smile"]}, "alphas"),
    ("edit/render", {"a": "x", "alphas": {"smile": "big"}}, "alphas"),
    ("edit/save", {"a": "x", "t": 1e308}, "t"),
]


@pytest.mark.parametrize("route, body, field", BAD_BODIES, ids=[f"{r}-{f}" for r, _, f in BAD_BODIES])
def test_every_studio_body_is_checked_against_the_schema_with_a_one_line_400(server, route, body, field) -> None:
    import json

    if isinstance(body, dict):
        body = {"page": PAGE, **body}
    status, raw = _post(f"{server.url}api/{route}", body)
    msg = json.loads(raw)["error"]
    assert status == 400 and field in msg and "\n" not in msg and "Traceback" not in msg


def test_a_blend_mask_that_is_not_a_png_is_a_400(server) -> None:
    import base64
    import json

    st = server.app.state.studio
    page = st.page(PAGE)
    key = st.seed_latent(page, 1, 0.7)["id"]
    mask = "data:image/png;base64," + base64.b64encode(b"GIF89a not a png").decode()
    status, raw = _post(f"{server.url}api/edit/render", {"page": PAGE, "a": key, "b": key, "mode": "blend",
                                                         "mask": mask, "alphas": {}})
    assert status == 400 and "mask" in json.loads(raw)["error"]


def test_an_oversized_json_body_is_refused_before_it_is_read(server) -> None:
    import http.client
    import json
    from urllib.parse import urlparse

    from optinv.studio.app import MAX_JSON_BYTES

    u = urlparse(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest("POST", "/api/jobs")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(MAX_JSON_BYTES * 10))
    conn.endheaders()
    conn.send(b"{")  # nothing more is sent: the answer must not wait for the rest
    r = conn.getresponse()
    assert r.status == 400 and "request limit" in json.loads(r.read())["error"]
    conn.close()


def test_job_ids_are_unguessable_and_only_their_page_may_watch_or_cancel_them(server) -> None:
    import json
    import urllib.error
    import urllib.request

    st = server.app.state.studio
    gate = __import__("threading").Event()
    job = st.queue.submit(PAGE, "paint", lambda j: gate.wait(10))
    other = st.queue.submit(PAGE + "b", "paint", lambda j: 1)
    assert len(job.id) > 16 and job.id[1:] != other.id[1:]
    for query in ("", "?page=someoneelse1"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{server.url}api/jobs/{job.id}/events{query}", timeout=10)
        assert e.value.code == 404
        status, _ = _post(f"{server.url}api/jobs/{job.id}/cancel{query}", b"")
        assert status == 404
    assert not job.finished
    status, raw = _post(f"{server.url}api/jobs/{job.id}/cancel?page={PAGE}", b"")
    assert status == 200 and json.loads(raw)["cancelled"]
    gate.set()


def test_refused_uploads_are_deleted_and_each_page_keeps_a_few_files(server) -> None:
    import io

    from PIL import Image

    from optinv.studio.state import MAX_UPLOADS

    st = server.app.state.studio
    page = "uploadpage01"

    def files() -> list:
        return [p for p in st.tmp.rglob("*") if p.is_file()]

    before = len(files())
    for _ in range(3):
        status, _ = _post(f"{server.url}api/upload?page={page}&purpose=invert&name=bad.png", b"\x89PNG broken",
                          "application/octet-stream")
        assert status == 400
    assert len(files()) == before
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, format="PNG")
    for _ in range(MAX_UPLOADS + 3):
        status, _ = _post(f"{server.url}api/upload?page={page}&purpose=invert&name=ok.png", buf.getvalue(),
                          "application/octet-stream")
        assert status == 200
    assert len(files()) == before + MAX_UPLOADS


def test_sigterm_deletes_the_studio_upload_folder(world, tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("uvicorn", reason="the studio extra is not installed")
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "optinv.cli", "studio", "--model", str(world["model"]),
                             "--port", "0", "--device", "cpu"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "optinv studio: http://" in line, proc.stderr.read()
        assert list(tmp_path.glob("optinv-studio-*"))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.1)
    assert not list(tmp_path.glob("optinv-studio-*"))


def test_an_ipv6_loopback_studio_checks_the_host_and_says_its_url_in_brackets() -> None:
    import http.client
    import socket

    pytest.importorskip("uvicorn", reason="the studio extra is not installed")
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    from optinv.studio.app import is_loopback, launch

    try:
        running = launch(tiny_generator(32), host="::1")
    except Exception as e:  # noqa: BLE001  (an IPv6-less container cannot bind ::1)
        pytest.skip(f"cannot listen on ::1: {e}")
    try:
        assert running.url.startswith("http://[::1]:") and is_loopback("::1")
        port = int(running.url.rsplit(":", 1)[1].strip("/"))
        for host, status in (("evil.example", 400), (f"[::1]:{port}", 200)):
            conn = http.client.HTTPConnection("::1", port, timeout=10)
            conn.request("GET", "/api/info", headers={"Host": host})
            assert conn.getresponse().status == status, host
            conn.close()
    finally:
        running.stop()


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_signal_while_waiting_for_the_other_ranks_stops_in_one_line(world, tmp_path, signum) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    from PIL import Image

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "in").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "in" / "a.png")
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "OPTINV_RENDEZVOUS_SECONDS": "120",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "optinv.cli", "batch", str(tmp_path / "in"), "--job", "invert",
                             "--model", str(world["model"]), "--steps", "1", "-q", "--device", "cpu",
                             "--out", str(tmp_path / "o")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # rank 0 is waiting once it listens for the others
            with socket.socket() as c:
                if c.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(getattr(signal, signum))
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and time.monotonic() - t0 < 10
    assert "Traceback" not in err and f"stopped by {signum}" in err, err


def test_the_magnitude_check_reads_style_maps_per_pixel_whatever_their_side() -> None:
    from optinv.engine.bounds import MAX_SPREADS, check_styles, w_spread
    from optinv.errors import OptinvError

    g = tiny_generator(32, style_dim=16)
    near = g.w_avg[:, None, None].expand(16, 16, 16).clone()  # a map as wide as the latent is long
    check_styles(g, [near[None]], maps=True)
    far = near.clone()
    far[:, 3, 3] += 2 * MAX_SPREADS * w_spread(g)
    with pytest.raises(OptinvError, match="typical distance"):
        check_styles(g, [far[None]], maps=True)


def test_fit_and_sefa_check_their_output_folder_before_any_work(world, tmp_path, monkeypatch) -> None:
    import optinv.edit.direction_formats as df
    import optinv.edit.edits as edit

    monkeypatch.setattr(df, "sefa_directions", lambda *a, **k: pytest.fail("worked before checking the output"))
    monkeypatch.setattr(edit, "fit_direction", lambda *a, **k: pytest.fail("worked before checking the output"))
    missing = tmp_path / "missing"
    assert "does not exist" in one_line_error(invoke("directions", "sefa", "--model", world["model"], "--k", "2",
                                                     "-o", missing / "s.pt"))
    assert "does not exist" in one_line_error(invoke("directions", "sefa", "--model", world["model"], "--k", "2",
                                                     "-o", tmp_path / "s.pt", "--preview", missing / "p.png"))
    listing = _listing(tmp_path, [(world["latent"], k % 2) for k in range(4)])
    assert "does not exist" in one_line_error(invoke("directions", "fit", listing, "--label", "smile",
                                                     "-o", missing / "d.pt"))


def test_generate_refuses_a_latent_file_of_absurd_values(world, tmp_path) -> None:
    rec = torch.load(world["latent"], weights_only=True)
    rec["wplus"] = torch.full_like(rec["wplus"], 1e30)
    rec["tensors"] = {"wplus": rec["wplus"][None].clone()}
    save_latent(rec, tmp_path / "huge.latent.pt")
    msg = one_line_error(invoke("generate", "--latent", tmp_path / "huge.latent.pt", "--model", world["model"],
                                "-o", tmp_path / "o"))
    assert "typical distance" in msg


def test_a_direction_named_like_a_path_in_its_file_never_decides_where_edits_go(world, tmp_path) -> None:
    g = world["g"]
    planted = save_directions({"../../planted": {"vector": torch.eye(32)[1], "method": "test"}}, g,
                              tmp_path / "dirs.pt")
    out = tmp_path / "a" / "b" / "o"
    r = invoke("edit", world["latent"], "-d", planted, "-a", "1", "-o", out)
    assert r.exit_code == 0, r.output
    assert not list(tmp_path.glob("planted*")) and not list((tmp_path / "a").glob("planted*"))
    assert len(list(out.glob("a.*planted.png"))) == 1


@pytest.mark.parametrize("args, message", [
    (["interpolate", "LAT", "LAT", "--steps", "100000000"], "2..256"),
    (["directions", "discover", "--model", "MODEL", "--steps", "1000000000", "--k", "2"], "more than the limit"),
    (["directions", "discover", "--model", "MODEL", "--batch", "100000000", "--k", "2"], "samples per step"),
])
def test_row_lengths_and_discovery_sizes_are_bounded_before_any_work(world, tmp_path, args, message) -> None:
    subs = {"LAT": str(world["latent"]), "MODEL": str(world["model"])}
    r = invoke(*[subs.get(a, a) for a in args], "-o", tmp_path / ("x.pt" if args[0] == "directions" else "o"))
    assert message in one_line_error(r)
