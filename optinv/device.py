"""Where a job runs: the device a name asks for, and the generator placed on it."""

from __future__ import annotations

import os

import torch

from .checkpoints import load_generator
from .errors import OptinvError
from .generator import Generator


def resolve_device(name: str | None) -> torch.device:
    """``auto`` (or None) picks cuda > mps > cpu; any other name must exist on this machine."""
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise OptinvError(f"unknown `device` {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptinvError("`device` cuda asked for, but no CUDA GPU is available")
    return dev


def get_model(model: Generator | str | os.PathLike | None, device: torch.device) -> Generator:
    """A generator given as an object, a file or a shipped name, on ``device``."""
    if isinstance(model, Generator):
        return model.to(device)
    return load_generator(model, device=device)
