"""optinv: find the StyleGAN2 latent that explains an image, a low-res image or a colour sketch."""

from .checkpoints import load_generator, save_generator
from .errors import OptinvError
from .generator import Generator

__all__ = ["Generator", "load_generator", "save_generator", "OptinvError"]
__version__ = "0.1.0"
