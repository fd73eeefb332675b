"""Will a batch fit? An estimate of a job's peak memory, checked before the first step.

A 1024² batch that does not fit is otherwise killed by the kernel minutes later, with no
message. The estimate replays one forward pass of the generator on the ``meta`` device (shapes
only: no memory, well under a second) and sums the tensors autograd keeps for the backward
pass; a step's peak is that times :data:`BACKWARD_FACTOR` (the gradients of the largest maps
live at the same time), measured on config-f 1024², batch 1: 1.96 GiB kept, 2.62 GiB peak
above the loaded model. Memory available: ``MemAvailable`` of /proc/meminfo (and a cgroup v2
limit when there is one) on CPU, ``torch.cuda.mem_get_info`` on CUDA; ``OPTINV_MEMORY_LIMIT``
(e.g. ``6G``, ``512M``) or the ``limit`` argument overrides it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from optinv.errors import OptinvError
from optinv.engine.generator import Generator

LIMIT_ENV = "OPTINV_MEMORY_LIMIT"
BACKWARD_FACTOR = 1.4   # peak above the loaded model ÷ bytes saved for backward (measured: 1.34)
GIB = 2 ** 30
_UNITS = {"": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40}


@dataclass
class Estimate:
    """Bytes a step needs beyond what the process holds now, and how they split."""

    batch: int
    resolution: int
    saved: int          # tensors kept for backward, all rendered images of the step
    weights: int        # gradients and optimiser state of trained weights (tuning)
    total: int          # peak above the current process
    held: int           # what the process holds already (resident set; 0 on CUDA)

    def line(self, available: int, device: str = "cpu") -> str:
        need = self.total + self.held
        per = (self.total - self.weights) / max(self.batch, 1)
        fits = max(0, int((available - self.held - self.weights) / max(per, 1)))
        hint = (f"use `batch` {fits} or fewer" if fits >= 1 else
                "not even one image fits: free memory, or use a machine with more (or a GPU)")
        return (f"a batch of {self.batch} at {self.resolution}² needs about {_size(need)} on {device} "
                f"({_size(self.saved)} of activations kept for the backward pass, {_size(self.held)} held already), "
                f"{_size(available)} is available: {hint}")


def _size(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2 ** 20:.0f} MiB"


def parse_size(text: str) -> int:
    """``6G``, ``512M``, ``1.5g``, ``1073741824`` → bytes (binary units)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)i?[bB]?\s*", str(text))
    if not m:
        raise OptinvError(f"{LIMIT_ENV}={text!r} is not a size (e.g. 6G, 512M)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    out = {}
    try:
        for line in Path(path).read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[key] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    except OSError:
        pass
    return out


def _cgroup_room(root: str = "/sys/fs/cgroup") -> int | None:
    try:
        limit = Path(root, "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path(root, "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None


def resident_bytes() -> int:
    """This process's resident set now (0 where /proc is absent)."""
    return _meminfo("/proc/self/status").get("VmRSS", 0)


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory a job may still take (None: unknown, nothing is checked)."""
    env = os.environ.get(LIMIT_ENV)
    if env:
        return parse_size(env)
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
    if dev.type != "cpu":
        return None
    avail = _meminfo().get("MemAvailable")
    room = _cgroup_room()
    known = [x for x in (avail, room) if x is not None]
    return min(known) + resident_bytes() if known else None  # the process's own pages count as usable


def saved_bytes(g: Generator, batch: int, map_sizes: list[int] | None = None) -> int:
    """Bytes autograd keeps for the backward pass of one render of ``batch`` images (fp32): from W+,
    or from style maps of the given sides (StyleMaps keep per-pixel styles too)."""
    with torch.device("meta"):
        twin = Generator(g.size, g.style_dim, g.n_mlp, channels=dict(g.channels), lr_mlp=g.lr_mlp,
                         conv_clamp=g.conv_clamp).requires_grad_(False)
        if map_sizes:
            w = [torch.zeros(batch, g.style_dim, s, s, requires_grad=True) for s in map_sizes]
        else:
            w = torch.zeros(batch, g.n_latent, g.style_dim, requires_grad=True)
        noise = [torch.zeros(batch, 1, n.shape[-2], n.shape[-1]) for n in twin.noise_list()]
    seen: set[int] = set()
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        twin.synthesis(w, noise=noise)
    return total


def estimate(g: Generator, batch: int, device: torch.device | str = "cpu", tune: str | None = None,
             locality: bool = False, map_sizes: list[int] | None = None) -> Estimate:
    """Peak memory of a step with ``batch`` images (``tune``: 'lowrank'/'full' for pivotal tuning)."""
    saved = saved_bytes(g, batch, map_sizes)
    if tune:  # the tuning steps render one image and the locality sample beside it, from W+
        saved = max(saved, saved_bytes(g, 2 if locality else 1))
    params = sum(p.numel() * p.element_size() for p in g.parameters())
    weights = 3 * params if tune == "full" else 0  # gradient + Adam's two moments
    held = resident_bytes() if torch.device(device).type == "cpu" else 0
    return Estimate(batch=batch, resolution=g.size, saved=saved, weights=weights,
                    total=int(saved * BACKWARD_FACTOR) + weights, held=held)


QUICK_FLOATS = 32  # floats kept per Σ_r channels·r² and image: ≥ 1.25× the replayed count (measured 7.5–25.3)


def upper_bound(g: Generator, batch: int, tune: str | None = None, locality: bool = False) -> int:
    """A quick bound on a step's bytes above the process (no replay): small jobs skip the estimate."""
    renders = max(batch, 2 if tune and locality else 1)
    per_image = QUICK_FLOATS * 4 * sum(c * r * r for r, c in g.channels.items())
    weights = 3 * sum(p.numel() * p.element_size() for p in g.parameters()) if tune == "full" else 0
    return int(per_image * renders * BACKWARD_FACTOR) + weights


def check_fits(g: Generator, batch: int, device: torch.device | str = "cpu", tune: str | None = None,
               locality: bool = False, map_sizes: list[int] | None = None,
               limit: int | None = None) -> Estimate | None:
    """Refuse (one line) a step that would not fit; returns the estimate, or None when the memory
    available is unknown or the quick bound already fits (the replay's first use imports ~1 s of torch)."""
    available = limit if limit is not None else available_bytes(device)
    if available is None:
        return None
    held = resident_bytes() if torch.device(device).type == "cpu" else 0
    if held + upper_bound(g, batch, tune, locality) <= available:
        return None
    est = estimate(g, batch, device, tune, locality, map_sizes)
    if est.total + est.held > available:
        raise OptinvError(est.line(available, torch.device(device).type))
    return est


__all__ = ["Estimate", "estimate", "check_fits", "available_bytes", "saved_bytes", "parse_size", "LIMIT_ENV"]
