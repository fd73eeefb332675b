"""optinv: find the StyleGAN2 latent that explains an image, a low-res image or a colour sketch."""

from optinv.io.checkpoints import load_generator, save_generator
from optinv.errors import OptinvError
from optinv.engine.generator import Generator

__all__ = ["Generator", "load_generator", "save_generator", "OptinvError"]
__version__ = "0.1.0"
