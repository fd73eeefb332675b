"""The arithmetic a job renders in: fp32, or bf16 autocast where the hardware has bf16 units.

Only the generator's forward and backward run in bf16 (``torch.autocast``); the latents, the
noise maps, the optimiser's state and the losses stay fp32, so a step's update is as precise
as before and only the gradient's direction carries bf16 rounding. ``auto`` picks bf16 where
it was measured to pay (docs/BENCHMARKS.md, "FFHQ scale"): a CPU with AMX or AVX512-BF16
instructions, or a CUDA GPU that supports bf16; fp32 everywhere else (AVX2 CPUs emulate bf16
and run it slower than fp32; MPS autocast is incomplete).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Iterator

import torch

from optinv.errors import OptinvError

PRECISIONS = ("auto", "fp32", "bf16")
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_bf16_units(flags: frozenset[str] | None = None) -> str | None:
    """'amx_bf16' or 'avx512_bf16' when the CPU multiplies bf16 natively, else None."""
    flags = cpu_flags() if flags is None else flags
    return next((f for f in BF16_CPU_FLAGS if f in flags), None)


def resolve_precision(name: str | None, device: torch.device | str, flags: frozenset[str] | None = None) -> str:
    """'fp32' or 'bf16' for ``device``; an explicit bf16 where it cannot run is one clear error."""
    name = name or "auto"
    if name not in PRECISIONS:
        raise OptinvError(f"unknown `precision` {name!r} (known: {', '.join(PRECISIONS)})")
    kind = torch.device(device).type
    if name == "fp32":
        return "fp32"
    if kind == "cuda":
        supported = torch.cuda.is_bf16_supported()
    elif kind == "cpu":
        supported = cpu_bf16_units(flags) is not None or name == "bf16"  # any CPU can be asked; auto needs units
    else:
        supported = False
    if name == "bf16" and not supported:
        raise OptinvError(f"`precision` bf16 is not available on {kind}: use fp32 (or auto)")
    return "bf16" if supported else "fp32"


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str) -> Iterator[None]:
    """bf16 autocast for ``precision == 'bf16'`` on ``device``; nothing for fp32."""
    if precision != "bf16":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        yield


__all__ = ["PRECISIONS", "resolve_precision", "autocast", "cpu_bf16_units", "cpu_flags"]
