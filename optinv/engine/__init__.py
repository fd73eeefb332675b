"""The engine: the generator, latent spaces, forward operators, the optimisation loop and the jobs.

Public entry points: ``optinv.engine.jobs`` (``invert``, ``pulse``, ``paint``, ``encode``) and
``optinv.engine.operators``; everything else here serves them.
"""
