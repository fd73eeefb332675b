"""scripts/warm_optimizers.py on a tiny generator: budgets, descent and the whitening round trip."""

from __future__ import annotations

import torch

from conftest import load_script, tiny_generator
from optinv.io.ranges import to_unit

wo = load_script("warm_optimizers")


def _problem():
    g = tiny_generator()
    for p in g.parameters():
        p.requires_grad_(False)
    torch.manual_seed(1)
    with torch.no_grad():
        w_true = g.mapping(torch.randn(2, g.style_dim)).unsqueeze(1).repeat(1, g.n_latent, 1)
        x = to_unit(g.synthesis(w_true))
    w0 = g.w_avg.expand(2, g.n_latent, -1).clone()
    return g, x, w0


def test_each_optimiser_spends_its_budget_and_descends() -> None:
    g, x, w0 = _problem()
    loss = wo.batch_l2(g, x)
    adam = wo.run_adam(loss, w0, 12, 0.05)
    lbfgs = wo.run_lbfgs(loss, w0, 12, history=5)
    assert len(adam) == 12 and 1 <= len(lbfgs) <= 12
    assert min(adam) < adam[0] and min(lbfgs) < lbfgs[0]
    trace = wo.psnr_trace(adam, len(x))
    assert all(b >= a for a, b in zip(trace, trace[1:]))  # best so far never drops


def test_whitening_round_trips_and_floors_sigma() -> None:
    g, _, w0 = _problem()
    mu, a, a_inv = wo.whitening(g, samples=2000)
    assert torch.allclose(((w0 - mu) @ a_inv) @ a + mu, w0, atol=1e-4)
    _, a_floor, _ = wo.whitening(g, samples=2000, floor=0.5)
    sigma = a_floor.norm(dim=1)  # rows of A are the principal axes scaled by σ
    assert float(sigma.min()) >= 0.5 * float(sigma.max()) - 1e-5
