"""optinv: find the StyleGAN2 latent that explains an image, a low-res image or a colour sketch."""

from optinv.io.checkpoints import load_generator, save_generator
from optinv.errors import OptinvError
from optinv.engine.generator import Generator

__all__ = ["Generator", "load_generator", "save_generator", "OptinvError", "invert", "pulse", "paint", "encode",
           "JobOptions"]
__version__ = "0.1.0"

_JOBS = ("invert", "pulse", "paint", "encode", "JobOptions")


def __getattr__(name: str):
    """``optinv.invert`` & co. are :mod:`optinv.engine.jobs`' functions, imported on first use: a command
    that does not run a job (``info``, ``convert``, ``edit``…) never loads the optimisation code."""
    if name in _JOBS:
        from optinv.engine import jobs

        return getattr(jobs, name)
    raise AttributeError(f"module 'optinv' has no attribute {name!r}")
