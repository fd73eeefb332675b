#!/usr/bin/env python
"""Generator speed: how close W+ inversion comes to this CPU's matrix-multiply rate, and how it
compares with rosinality's stylegan2-pytorch on the same weights.

  python scripts/bench_speed.py                                # efficiency on the embedded model
  python scripts/bench_speed.py --size 256                     # + 256² config-f (random weights)
  python scripts/bench_speed.py --rosinality ~/stylegan2-pytorch --size 256

Efficiency: FLOPs of one forward + backward to the W+ input (``FlopCounterMode``: conv, mm,
bmm) divided by its time, against a large fp32 ``torch.mm`` measured in the same run. Times
are both wall (median) and process CPU seconds (median): on a shared machine the CPU time is
what the wall time would be on an idle core, so ``ratio_cpu`` is the steadier figure.

rosinality: its ``model.py`` is imported from the checkout with stand-ins for its compiled
``op`` package (pure-PyTorch reference versions written here), its Generator gets our model's
config and weights (``save_rosinality`` layout, strict load), both render the same W+ with the
same noise, and one inversion step (forward, MSE, backward, Adam) is timed for each. Its time
depends on the upfirdn2d stand-in: ``--rosinality-fir depthwise`` (default, one grouped conv: the
fair, fast form) or ``per-channel`` (every channel as its own image, as rosinality's CPU fallback
arranges it; several times slower). tests/test_bench_speed.py runs the rosinality check when the
environment variable OPTINV_ROSINALITY names a checkout.
Used by ``scripts/benchmark.py``; every function returns table rows (dicts).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from optinv.io.checkpoints import load_generator, save_rosinality  # noqa: E402
from optinv.engine.generator import Generator  # noqa: E402

Row = dict[str, Any]


# ----------------------------------------------------------------------------- timing
def _time_runs(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of ``repeat`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return wall, cpu


def sgemm_rate(n: int = 2048, repeat: int = 3) -> dict[str, float]:
    """GFLOP/s of an n×n fp32 matrix product (2n³ FLOPs), best of ``repeat``: the CPU's attainable peak."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    wall, cpu = _time_runs(lambda: torch.mm(a, b), repeat)
    flops = 2.0 * n ** 3
    return {"gflops_per_s": flops / min(wall) / 1e9, "gflops_per_cpu_s": flops / min(cpu) / 1e9}


# ----------------------------------------------------------------------------- efficiency
def wplus_start(g: Generator, batch: int, seed: int = 0) -> torch.Tensor:
    """A W+ batch near the model's typical latents (mapping of seeded z), the same on every call."""
    z = torch.randn(batch, g.n_latent, g.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return g.mapping(z.to(g.input.input.device))


def forward_backward(g: Generator, batch: int) -> Callable[[], None]:
    """One W+ forward + backward as inversion runs it: fixed noise, frozen weights, grad to W+ only."""
    w = wplus_start(g, batch).requires_grad_(True)
    noise = g.noise_list()

    def step() -> None:
        w.grad = None
        g.synthesis(w, noise=noise).square().mean().backward()

    return step


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call (conv, transposed conv, mm, bmm, their backward), as torch counts them."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def op_breakdown(fn: Callable[[], Any], repeat: int = 3, top: int = 8) -> list[Row]:
    """Ops by self CPU time over ``repeat`` calls (torch.profiler): where a step's time goes.

    The transposed convolutions have no op of their own on CPU: their time is ``_convolution``'s.
    """
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeat):
            fn()
    events = [e for e in prof.key_averages() if not e.key.startswith(("autograd::engine", "ProfilerStep"))]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key.replace("aten::", ""), "ms_per_step": round(e.self_cpu_time_total / 1e3 / repeat, 2),
             "calls_per_step": e.count // repeat, "share": round(e.self_cpu_time_total / total, 3)}
            for e in events[:top]]


def efficiency_row(g: Generator, batch: int, label: str, repeat: int = 7, sgemm_n: int = 2048,
                   top: int = 6) -> Row:
    """Generator forward+backward GFLOP/s against sgemm GFLOP/s, measured back to back."""
    step = forward_backward(g, batch)
    flops = count_flops(step)
    peak = sgemm_rate(sgemm_n)
    wall, cpu = _time_runs(step, repeat, warmup=2)
    peak_after = sgemm_rate(sgemm_n)  # the better of before/after: load on a shared machine drifts
    sg = max(peak["gflops_per_s"], peak_after["gflops_per_s"])
    sg_cpu = max(peak["gflops_per_cpu_s"], peak_after["gflops_per_cpu_s"])
    t_wall, t_cpu = statistics.median(wall), statistics.median(cpu)
    ops = op_breakdown(step, repeat=max(1, min(3, repeat)), top=top)
    row = {"model": label, "resolution": g.size, "batch": batch, "threads": torch.get_num_threads(),
           "gflop_per_step": round(flops / 1e9, 3), "s_per_step": round(t_wall, 4), "cpu_s_per_step": round(t_cpu, 4),
           "gflops_per_s": round(flops / t_wall / 1e9, 1), "sgemm_gflops_per_s": round(sg, 1),
           "ratio": round(flops / t_wall / 1e9 / sg, 3),
           "gflops_per_cpu_s": round(flops / t_cpu / 1e9, 1), "sgemm_gflops_per_cpu_s": round(sg_cpu, 1),
           "ratio_cpu": round(flops / t_cpu / 1e9 / sg_cpu, 3),
           "top_ops": "; ".join(f"{o['op']} {o['share']:.0%}" for o in ops)}
    print(f"efficiency {label}: {row['gflops_per_cpu_s']} / {row['sgemm_gflops_per_cpu_s']} GFLOP/CPU-s "
          f"= {row['ratio_cpu']} (wall: {row['ratio']})", flush=True)
    return row


def config_f(size: int, seed: int = 0) -> Generator:
    """StyleGAN2 config-f at ``size`` with seeded random weights (speed only needs the shapes)."""
    torch.manual_seed(seed)
    return Generator(size).eval().requires_grad_(False)


def bench_efficiency(g: Generator, batch: int = 4, sizes: Sequence[int] = (), repeat: int = 7) -> list[Row]:
    """Rows for the given model at ``batch`` and for config-f at each of ``sizes`` (batch 1)."""
    name = g.card.get("name", "model")
    rows = [efficiency_row(g, batch, f"{name} ({g.size}²)", repeat)]
    for size in sizes:
        rows.append(efficiency_row(config_f(size), 1, f"config-f {size}² (random)", max(3, repeat // 2)))
    return rows


# ----------------------------------------------------------------------------- rosinality's op stand-ins
class _FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU(0.2) × √2 with a learnable bias named as rosinality's module names it."""

    def __init__(self, channel: int, bias: bool = True, negative_slope: float = 0.2, scale: float = 2 ** 0.5):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope, self.scale = negative_slope, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)


def _fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None, negative_slope: float = 0.2,
                      scale: float = 2 ** 0.5) -> torch.Tensor:
    if bias is not None:
        x = x + bias.reshape(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu(x, negative_slope) * scale


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int | Sequence[int] = 1,
               down: int | Sequence[int] = 1, pad: Sequence[int] = (0, 0)) -> torch.Tensor:
    """Reference upfirdn2d: insert zeros (up), pad or crop, convolve with the FIR, keep every down-th."""
    ux, uy = _pair(up)
    dx, dy = _pair(down)
    px0, px1, py0, py1 = (pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else tuple(pad)
    b, c, h, w = x.shape
    if ux > 1 or uy > 1:
        z = x.new_zeros(b, c, h, uy, w, ux)
        z[:, :, :, 0, :, 0] = x
        x = z.reshape(b, c, h * uy, w * ux)
    x = F.pad(x, (max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)))
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    fir = torch.flip(kernel, [0, 1]).to(x.dtype)
    x = F.conv2d(x, fir[None, None].expand(c, 1, *fir.shape), groups=c)
    return x[:, :, ::dy, ::dx]


def _upfirdn2d_per_channel(x: torch.Tensor, kernel: torch.Tensor, up: int | Sequence[int] = 1,
                           down: int | Sequence[int] = 1, pad: Sequence[int] = (0, 0)) -> torch.Tensor:
    """The same filter with every channel as its own one-channel image: the arrangement of
    rosinality's own CPU fallback, several times slower than the depthwise form above."""
    b, c, h, w = x.shape
    out = _upfirdn2d(x.reshape(b * c, 1, h, w), kernel, up, down, pad)
    return out.reshape(b, c, *out.shape[-2:])


FIR_FORMS = {"depthwise": _upfirdn2d, "per-channel": _upfirdn2d_per_channel}


def _conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: int = 1,
                      padding: int = 0, output_padding: int = 0, groups: int = 1, dilation: int = 1) -> torch.Tensor:
    return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)


def _op_modules(fir_form: str = "depthwise") -> dict[str, types.ModuleType]:
    """Modules standing in for rosinality's ``op`` package (which compiles CUDA code at import)."""
    upfirdn2d = FIR_FORMS[fir_form]
    fused = types.ModuleType("op.fused_act")
    fused.FusedLeakyReLU, fused.fused_leaky_relu = _FusedLeakyReLU, _fused_leaky_relu
    fir = types.ModuleType("op.upfirdn2d")
    fir.upfirdn2d = upfirdn2d
    gradfix = types.ModuleType("op.conv2d_gradfix")
    gradfix.enabled, gradfix.weight_gradients_disabled = False, False
    gradfix.conv2d, gradfix.conv_transpose2d = F.conv2d, _conv_transpose2d
    gradfix.no_weight_gradients = contextlib.nullcontext
    op = types.ModuleType("op")
    op.__path__ = []  # a package, so "from op import conv2d_gradfix" and "import op.x" resolve
    op.FusedLeakyReLU, op.fused_leaky_relu = _FusedLeakyReLU, _fused_leaky_relu
    op.upfirdn2d, op.conv2d_gradfix, op.fused_act = upfirdn2d, gradfix, fused
    return {"op": op, "op.fused_act": fused, "op.upfirdn2d": fir, "op.conv2d_gradfix": gradfix}


@contextlib.contextmanager
def _stubbed_op(path: Path, fir_form: str = "depthwise") -> Iterator[None]:
    """``op`` stand-ins in sys.modules and the checkout on sys.path for the import; restored after."""
    stubs = _op_modules(fir_form)
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    sys.path.insert(0, str(path))
    try:
        yield
    finally:
        sys.path.remove(str(path))
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def import_rosinality(path: str | Path, fir_form: str = "depthwise") -> types.ModuleType:
    """rosinality's model.py from a checkout, under its own module name (no compiled ops needed).

    ``fir_form``: how the upfirdn2d stand-in runs the FIR ("depthwise" or "per-channel"); it moves
    rosinality's time a lot, so rows name it.
    """
    if fir_form not in FIR_FORMS:
        raise ValueError(f"fir_form must be one of {', '.join(FIR_FORMS)}, got {fir_form!r}")
    path = Path(path).expanduser().resolve()
    if not (path / "model.py").is_file():
        raise FileNotFoundError(f"{path} has no model.py (expected a rosinality/stylegan2-pytorch checkout)")
    spec = importlib.util.spec_from_file_location(f"rosinality_model_{fir_form.replace('-', '_')}", path / "model.py")
    module = importlib.util.module_from_spec(spec)
    with _stubbed_op(path, fir_form):
        spec.loader.exec_module(module)
    module.fir_form = fir_form
    return module


def rosinality_generator(model: types.ModuleType, state_dict: dict[str, torch.Tensor], size: int, style_dim: int,
                         n_mlp: int, channels: dict[int, int], lr_mlp: float = 0.01) -> nn.Module:
    """rosinality's Generator with this config (its channel table replaced by ``channels``), loaded
    strictly from a state dict in its own layout; frozen, in eval mode."""
    wanted = {int(k): int(v) for k, v in channels.items()}

    class Twin(model.Generator):  # rosinality fixes channels to config-f; this model may not be config-f
        @property
        def channels(self) -> dict[int, int]:
            return wanted

        @channels.setter
        def channels(self, value: dict[int, int]) -> None:
            pass

    twin = Twin(size, style_dim, n_mlp, lr_mlp=lr_mlp)
    twin.load_state_dict(state_dict, strict=True)
    return twin.eval().requires_grad_(False)


def rosinality_twin(model: types.ModuleType, g: Generator) -> nn.Module:
    """rosinality's Generator with ``g``'s config and weights (written in its layout and read back)."""
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = torch.load(save_rosinality(g, Path(tmp) / "g.pt"), map_location="cpu", weights_only=True)
    twin = rosinality_generator(model, ckpt["g_ema"], g.size, g.style_dim, g.n_mlp, g.channels, g.lr_mlp)
    return twin.to(g.input.input.device)


def renderers(g: Generator, twin: nn.Module) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """W+ [B, n_latent, D] → image for both, with the same fixed noise tensors."""
    noise = g.noise_list()
    return {"ours": lambda w: g.synthesis(w, noise=noise),
            "rosinality": lambda w: twin([w], input_is_latent=True, noise=noise)[0]}


def max_abs_diff(g: Generator, twin: nn.Module, batch: int = 2) -> float:
    """Largest pixel difference between the two renders of the same W+ (images in [-1, 1])."""
    w = wplus_start(g, batch, seed=1)
    render = renderers(g, twin)
    with torch.no_grad():
        return float((render["ours"](w) - render["rosinality"](w)).abs().max())


def inversion_step(render: Callable[[torch.Tensor], torch.Tensor], w0: torch.Tensor,
                   target: torch.Tensor) -> Callable[[], None]:
    """One W+ inversion step: render, MSE to the target, backward, Adam (lr 0.05)."""
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=0.05)

    def step() -> None:
        loss = (render(w) - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def compare_steps(g: Generator, twin: nn.Module, batch: int, repeat: int, rounds: int = 2) -> dict[str, tuple]:
    """Median wall and CPU seconds per step for both, interleaved in rounds so load drift hits both."""
    render = renderers(g, twin)
    w0 = wplus_start(g, batch)
    with torch.no_grad():
        target = render["ours"](wplus_start(g, batch, seed=2))
    steps = {k: inversion_step(r, w0, target) for k, r in render.items()}
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in steps}
    for _ in range(rounds):
        for k, step in steps.items():
            wall, cpu = _time_runs(step, max(1, repeat // rounds), warmup=1)
            times[k][0].extend(wall)
            times[k][1].extend(cpu)
    return {k: (statistics.median(w), statistics.median(c)) for k, (w, c) in times.items()}


def rosinality_row(model: types.ModuleType, g: Generator, batch: int, label: str, repeat: int = 6) -> Row:
    """Same image check and s/step for ours and rosinality's Generator on identical weights."""
    twin = rosinality_twin(model, g)
    diff = max_abs_diff(g, twin)
    t = compare_steps(g, twin, batch, repeat)
    (ow, oc), (rw, rc) = t["ours"], t["rosinality"]
    row = {"model": label, "resolution": g.size, "batch": batch, "threads": torch.get_num_threads(),
           "rosinality_fir": getattr(model, "fir_form", "?"), "max_abs_diff": float(f"{diff:.2e}"),
           "ours_s_per_step": round(ow, 4),
           "rosinality_s_per_step": round(rw, 4), "speedup": round(rw / ow, 2),
           "ours_cpu_s_per_step": round(oc, 4), "rosinality_cpu_s_per_step": round(rc, 4),
           "speedup_cpu": round(rc / oc, 2)}
    print(f"rosinality {label}: {rw:.3f} vs ours {ow:.3f} s/step = {row['speedup']}× "
          f"(CPU {row['speedup_cpu']}×), max |Δ| {diff:.1e}", flush=True)
    return row


def bench_rosinality(path: str | Path, g: Generator, batch: int = 4, sizes: Sequence[int] = (256,),
                     repeat: int = 6, fir_form: str = "depthwise") -> list[Row]:
    """Rows for the given model at ``batch`` and config-f at each of ``sizes`` (batch 1)."""
    model = import_rosinality(path, fir_form)
    name = g.card.get("name", "model")
    rows = [rosinality_row(model, g, batch, f"{name} ({g.size}²)", repeat)]
    for size in sizes:
        rows.append(rosinality_row(model, config_f(size), 1, f"config-f {size}² (random)", max(2, repeat // 2)))
    return rows


# ----------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model file or shipped name (default: the embedded model)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, action="append", default=[],
                    help="also config-f at this resolution, random weights, batch 1 (repeatable)")
    ap.add_argument("--rosinality", default=None, help="a rosinality/stylegan2-pytorch checkout to compare with")
    ap.add_argument("--rosinality-fir", default="depthwise", choices=sorted(FIR_FORMS),
                    help="how its upfirdn2d stand-in filters: one depthwise conv (fast) or every channel "
                         "as its own image (its CPU fallback's way)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    g = load_generator(args.model, device="cpu")
    out: dict[str, list[Row]] = {"efficiency": bench_efficiency(g, args.batch, args.size, args.repeat)}
    out["efficiency_ops"] = op_breakdown(forward_backward(g, args.batch), top=10)
    if args.rosinality:
        out["rosinality"] = bench_rosinality(args.rosinality, g, args.batch, args.size, max(2, args.repeat - 1),
                                             args.rosinality_fir)
    for section, rows in out.items():
        for r in rows:
            print(json.dumps({"section": section, **r}, ensure_ascii=False))


if __name__ == "__main__":
    main()
