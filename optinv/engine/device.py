"""Where a job runs: the device a name asks for, and the generator placed on it."""

from __future__ import annotations

import os

import torch

from optinv.io.checkpoints import load_generator
from optinv.errors import OptinvError
from optinv.engine.generator import Generator


DEVICES = "auto, cpu, cuda, cuda:N, mps or xpu"


def _backend(kind: str):
    """The torch module that knows whether a device type is present (None: not one optinv runs on)."""
    return {"cuda": torch.cuda, "mps": getattr(torch.backends, "mps", None),
            "xpu": getattr(torch, "xpu", None)}.get(kind)


def resolve_device(name: str | None) -> torch.device:
    """``auto`` (or None) picks cuda > mps > cpu; any other name must exist on this machine.

    torch knows many device types (xpu, mtia, hpu, lazy, meta, privateuseone…) and only fails
    deep inside a job when one is absent; here each is refused in one line before any work.
    """
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(str(name).strip().lower())
    except (RuntimeError, ValueError, TypeError):
        raise OptinvError(f"unknown `device` {name!r} (use {DEVICES})") from None
    if dev.type == "cpu":
        return dev
    backend = _backend(dev.type)
    if backend is None:
        raise OptinvError(f"`device` {name!r} is not a device optinv runs on (use {DEVICES})")
    try:
        present = bool(backend.is_available())
    except Exception:  # a half-installed backend
        present = False
    if not present:
        raise OptinvError(f"`device` {name!r} asked for, but this machine has no {dev.type} device (use auto or cpu)")
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if dev.index is not None and dev.index >= count:
        raise OptinvError(f"`device` {name!r} asked for, but this machine has {count} {dev.type} device(s) "
                          f"(numbered from 0)")
    return dev


def get_model(model: Generator | str | os.PathLike | None, device: torch.device) -> Generator:
    """A generator given as an object, a file or a shipped name, on ``device``."""
    if isinstance(model, Generator):
        return model.to(device)
    return load_generator(model, device=device)
