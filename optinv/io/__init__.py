"""Files in and out: images and the pixel-range contract, generator checkpoints (optinv, rosinality,
NVIDIA), latent files and their foreign formats, result names and writers, atomic writes."""
