"""The embedded world: what the shipped model was trained on and how, not what the engine runs.

- :mod:`optinv.world.synthfaces` — the procedural portrait renderer (seeded, labelled);
- :mod:`optinv.world.teacher` — the renderer as a function of z (distillation target);
- :mod:`optinv.world.discriminator` — StyleGAN2's discriminator for adversarial fine-tuning;
- :mod:`optinv.world.nvidia_writer` — writes NVIDIA-layout snapshots (test fixtures, round trips).

Scripts and tests import these; the engine (everything else in :mod:`optinv`) never does.
"""
