"""Discovered paths: the flow's algebra, the models' shapes, training, files and edits."""

from __future__ import annotations

import pytest
import torch

from optinv.edit.discover.apply import edit_editable, order_note
from optinv.edit.discover.models import CurvilinearPaths, Flow, LinearPaths, WarpedPaths, build_paths
from optinv.edit.discover.pathsfile import PathSet, load_paths, parse_edits, save_paths
from optinv.edit.discover.train import DiscoverSettings, Domain, discover
from optinv.edit.edits import Editable
from optinv.errors import OptinvError


def _scramble(m: torch.nn.Module, scale: float = 0.15, seed: int = 1) -> torch.nn.Module:
    """Random weights everywhere (the couplings start as the identity, which would test nothing)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))
    return m


def test_flow_edits_commute_and_warped_do_not():
    torch.manual_seed(0)
    flow = _scramble(CurvilinearPaths(16, 4, layers=4, hidden=32))
    x = torch.randn(32, 16)
    kl = flow.shift(flow.shift(x, 0, 1.5), 2, -2.0)
    lk = flow.shift(flow.shift(x, 2, -2.0), 0, 1.5)
    assert (kl - lk).abs().max() <= 1e-4
    straight = x + 1.5 * torch.eye(16)[0] @ flow.flow.rotation.t()  # the path is curved, not a line
    assert (flow.shift(x, 0, 1.5) - straight).abs().max() > 1e-2
    warped = _scramble(WarpedPaths(16, 4, support=4, steps=4), scale=1.0)
    a = warped.shift(warped.shift(x, 0, 1.5), 2, -2.0)
    b = warped.shift(warped.shift(x, 2, -2.0), 0, 1.5)
    assert (a - b).abs().max() > 1e-2


def test_flow_round_trip():
    flow = _scramble(Flow(12, layers=5, hidden=24))
    x = 2 * torch.randn(64, 12)
    v, _ = flow(x)
    assert (v - x).abs().max() > 0.1
    assert torch.allclose(flow.inverse(v), x, atol=1e-5)


def test_log_det_matches_autograd_jacobian():
    flow = _scramble(Flow(6, layers=3, hidden=16)).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    _, logdet = flow(x)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[i])
        assert torch.allclose(logdet[i], torch.linalg.slogdet(jac).logabsdet, atol=1e-9)
    assert logdet.abs().max() > 1e-3  # a non-trivial determinant was checked


def test_penalty_is_alpha_log_det_squared():
    p = _scramble(CurvilinearPaths(8, 2, layers=2, hidden=8, alpha=0.5))
    x = torch.randn(10, 8)
    assert torch.allclose(p.penalty(x), 0.5 * p.flow(x)[1].pow(2).mean())


def test_path_speed_matches_autograd_and_the_speed_term_penalises_stretch():
    fresh = CurvilinearPaths(8, 3, layers=2, hidden=8, speed=1.0)
    x = torch.randn(5, 8)
    assert torch.allclose(fresh.speeds(x), torch.ones(5, 3), atol=1e-4)  # rotation + identity couplings
    assert fresh.penalty(x) < 1e-6
    p = _scramble(CurvilinearPaths(8, 3, layers=2, hidden=8, alpha=0.5, speed=2.0)).double()
    xd = x.double()
    for k in range(3):
        _, d = torch.autograd.functional.jvp(lambda t: p.shift(xd, k, t), torch.zeros((), dtype=torch.float64),
                                             torch.ones((), dtype=torch.float64))
        assert torch.allclose(p.speeds(xd)[:, k], d.norm(dim=-1), atol=1e-5)
    expected = 0.5 * p.flow(xd)[1].pow(2).mean() + 2.0 * p.speeds(xd).log().pow(2).mean()
    assert torch.allclose(p.penalty(xd), expected) and p.penalty(xd) > 0.5 * p.flow(xd)[1].pow(2).mean()
    assert build_paths(p.config()).speed_weight == 2.0 and "speed" not in CurvilinearPaths(8, 3).config()


def test_linear_shapes_and_units():
    lin = LinearPaths(10, 4)
    d = lin.directions()
    assert d.shape == (4, 10) and torch.allclose(d.norm(dim=1), torch.ones(4))
    x = torch.randn(5, 10)
    k = torch.tensor([0, 1, 2, 3, 0])
    y = lin.shift(x, k, torch.full((5,), 2.0))
    assert y.shape == (5, 10) and torch.allclose((y - x).norm(dim=1), torch.full((5,), 2.0))
    assert torch.equal(lin.shift(x, 3, 0.0), x)
    with pytest.raises(ValueError):
        LinearPaths(4, 5)


def _toy_domain(dim: int = 8, size: int = 16) -> Domain:
    """A fixed random decoder from x to small images: each latent direction changes the picture."""
    gen = torch.Generator().manual_seed(3)
    dec = torch.randn(dim, 3 * size * size, generator=gen) / dim ** 0.5
    return Domain(dim, lambda n: torch.randn(n, dim), lambda x: torch.tanh(x @ dec).view(-1, 3, size, size))


def test_reconstructor_learns_on_a_toy_generator():
    torch.manual_seed(0)
    s = DiscoverSettings(method="linear", k=4, steps=200, batch=16, lr_paths=1e-2, lr_reconstructor=3e-3,
                         reconstructor_width=8)
    state = discover(_toy_domain(), s, progress=False, image_size=16)
    late = state.history[-50:]
    acc = sum(h["accuracy"] for h in late) / len(late)
    early = sum(h["shift_l1"] for h in state.history[:20]) / 20
    assert acc > 0.8, acc  # chance is 0.25
    assert sum(h["shift_l1"] for h in late) / len(late) < 0.6 * early


def test_resume_continues_the_same_run(tmp_path):
    dom = _toy_domain()
    s = DiscoverSettings(method="curvilinear", k=3, steps=6, batch=4, layers=2, hidden=16, reconstructor_width=4)
    straight = discover(dom, s, tmp_path / "a.pt", every=100, progress=False, image_size=16)
    discover(dom, DiscoverSettings(**{**vars(s), "steps": 3}), tmp_path / "b.pt", every=100, progress=False,
             image_size=16)
    resumed = discover(dom, s, tmp_path / "b.pt", every=100, progress=False, image_size=16)
    assert resumed.step == 6
    for a, b in zip(straight.paths.parameters(), resumed.paths.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_flow_started_from_directions_is_exactly_those_straight_paths():
    gen = torch.Generator().manual_seed(3)
    d = torch.randn(3, 10, generator=gen)
    d = d / d.norm(dim=1, keepdim=True)                 # unit but not orthogonal, like Linear's
    paths = CurvilinearPaths(10, 3, layers=3, hidden=8, alpha=1.0, speed=1.0)
    paths.flow.start_from_directions(d)
    x = torch.randn(7, 10, generator=gen)
    for k in range(3):
        assert torch.allclose(paths.shift(x, k, 1.7), x + 1.7 * d[k], atol=1e-5)
    assert torch.allclose(paths.flow.inverse(paths.flow(x)[0]), x, atol=1e-5)
    # the fixed map changes volume (non-orthogonal d) but the penalty only sees the couplings
    assert paths.flow(x)[1].abs().min() > 1e-3 and paths.penalty(x) < 1e-6
    with pytest.raises(ValueError):
        paths.flow.start_from_directions(torch.stack([d[0], d[0], d[1]]))


def test_curvilinear_run_starts_where_a_linear_run_ended(tmp_path):
    dom = _toy_domain()
    lin = DiscoverSettings(method="linear", k=3, steps=5, batch=4, reconstructor_width=4)
    linear = discover(dom, lin, tmp_path / "lin.pt", every=100, progress=False, image_size=16)
    s = DiscoverSettings(method="curvilinear", k=3, steps=1, batch=4, layers=2, hidden=16, reconstructor_width=4,
                         start_from=str(tmp_path / "lin.pt"), lr_paths=1e-12, lr_reconstructor=1e-12)
    curved = discover(dom, s, tmp_path / "curv.pt", every=100, progress=False, image_size=16)
    x = dom.sample(6)
    for k in range(3):
        assert torch.allclose(curved.paths.shift(x, k, 2.0), linear.paths.shift(x, k, 2.0), atol=1e-4)
    for a, b in zip(curved.reconstructor.parameters(), linear.reconstructor.parameters()):  # (BN stats move)
        assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(OptinvError, match="linear"):
        discover(dom, DiscoverSettings(**{**vars(s), "start_from": str(tmp_path / "curv.pt")}), None,
                 progress=False, image_size=16)
    with pytest.raises(OptinvError, match="curvilinear paths only"):
        DiscoverSettings(method="warped", start_from=str(tmp_path / "lin.pt")).check()


def test_lr_paths_starts_a_slower_stage_of_a_resumed_run(tmp_path):
    dom = _toy_domain()
    s = DiscoverSettings(method="curvilinear", k=3, steps=3, batch=4, layers=2, hidden=16, reconstructor_width=4)
    discover(dom, s, tmp_path / "a.pt", every=100, progress=False, image_size=16)
    resumed = discover(dom, DiscoverSettings(**{**vars(s), "steps": 5}), tmp_path / "a.pt", every=100,
                       progress=False, image_size=16, lr_paths=3e-4)
    assert resumed.step == 5 and resumed.settings.lr_paths == 3e-4
    assert all(group["lr"] == 3e-4 for group in resumed.opt_paths.param_groups)
    assert resumed.opt_reconstructor.param_groups[0]["lr"] == s.lr_reconstructor
    with pytest.raises(OptinvError, match="lr_paths"):
        discover(dom, s, tmp_path / "a.pt", progress=False, image_size=16, lr_paths=float("nan"))


def _path_set(method: str, dim: int = 8) -> PathSet:
    cfg = {"method": method, "dim": dim, "k": 3}
    cfg.update({"warped": {"support": 4}, "curvilinear": {"layers": 3, "hidden": 16}}.get(method, {}))
    paths = _scramble(build_paths(cfg), scale=1.0 if method == "warped" else 0.15).eval()
    return PathSet(paths, "w", torch.randn(dim), torch.rand(dim) + 0.5, ["smile", "bangs", "glasses"],
                   [1.0, -1.0, 1.0])


def test_multi_edits_in_any_order_curvilinear_but_not_warped(tmp_path):
    w = torch.randn(4, 8)
    curv = load_paths(save_paths(_path_set("curvilinear"), tmp_path / "c.paths.pt"))
    one = curv.apply(w, [("smile", 2.0), ("bangs", -1.0)])
    other = curv.apply(w, [("bangs", -1.0), ("smile", 2.0)])
    assert (one - other).abs().max() <= 1e-5 and (one - w).abs().max() > 0.1
    assert order_note(curv, [("smile", 2.0), ("bangs", -1.0)]) is None
    warped = _path_set("warped")
    assert (warped.apply(w, [("smile", 2.0), ("bangs", -1.0)]) -
            warped.apply(w, [("bangs", -1.0), ("smile", 2.0)])).abs().max() > 1e-3
    assert "order" in order_note(warped, [("smile", 2.0), ("bangs", -1.0)])
    with pytest.raises(OptinvError, match="unknown path"):
        curv.apply(w, [("beard", 1.0)])


def test_sign_makes_positive_mean_more():
    ps = _path_set("linear")
    w = torch.randn(2, 8)
    up = ps.standardise(ps.apply(w, [("bangs", 1.0)]))  # bangs has sign -1: moves against its column
    assert torch.allclose(up, ps.standardise(w) - ps.paths.directions()[1], atol=1e-5)


def test_edit_wplus_and_stylemaps_and_z_paths():
    ps = _path_set("curvilinear")
    wplus = torch.randn(5, 8)
    e = Editable(wplus, None, [])
    out = edit_editable(e, ps, [("smile", 1.0)])
    assert torch.allclose(out.wplus, ps.apply(wplus, [("smile", 1.0)]))
    maps = [torch.randn(8, 2, 2), torch.randn(8, 1, 1)]
    m = edit_editable(Editable(None, maps, []), ps, [("smile", 1.0)])
    assert [x.shape for x in m.maps] == [x.shape for x in maps]
    assert torch.allclose(m.maps[0][:, 1, 0], ps.apply(maps[0][:, 1, 0][None], [("smile", 1.0)])[0], atol=1e-6)
    ps.space = "z"
    with pytest.raises(OptinvError, match="--space w"):
        edit_editable(e, ps, [("smile", 1.0)])


def test_parse_edits():
    assert parse_edits(["smile=+2", "bangs=-1.5"]) == [("smile", 2.0), ("bangs", -1.5)]
    for bad in ("smile", "smile=much", "=2"):
        with pytest.raises(OptinvError, match="NAME=AMOUNT"):
            parse_edits([bad])


def test_damaged_paths_file(tmp_path):
    p = tmp_path / "x.paths.pt"
    torch.save({"format": "optinv-paths", "config": {"method": "linear", "dim": 4, "k": 2}, "state": {}}, p)
    with pytest.raises(OptinvError, match="damaged"):
        load_paths(p)
    good = save_paths(_path_set("curvilinear"), tmp_path / "c.paths.pt")
    for key, bad in (("flow.rotation", torch.zeros(8, 8)), ("flow.couplings.0.net.0.weight", None)):
        obj = torch.load(good, weights_only=True)
        obj["state"][key] = bad if bad is not None else torch.full_like(obj["state"][key], float("nan"))
        torch.save(obj, tmp_path / "bad.paths.pt")
        with pytest.raises(OptinvError, match="damaged paths file"):
            load_paths(tmp_path / "bad.paths.pt")
