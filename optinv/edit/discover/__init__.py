"""Unsupervised discovery of edit paths in a generator's latent space.

Three direction models (:mod:`.models`: linear, warped, curvilinear), the reconstructor and the
Voynov–Babenko training loop with resumable checkpoints (:mod:`.train`), an attribute predictor
that names paths and judges edits (:mod:`.attributes`, :mod:`.measure`), and the paths file that
``optinv edit --edit NAME=AMOUNT`` reads (:mod:`.pathsfile`, :mod:`.apply`).
"""

from optinv.edit.discover.models import METHODS, CurvilinearPaths, LinearPaths, WarpedPaths, build_paths
from optinv.edit.discover.pathsfile import PathSet, load_paths, parse_edits, save_paths
from optinv.edit.discover.train import DiscoverSettings, discover, generator_domain

__all__ = ["METHODS", "CurvilinearPaths", "DiscoverSettings", "LinearPaths", "PathSet", "WarpedPaths",
           "build_paths", "discover", "generator_domain", "load_paths", "parse_edits", "save_paths"]
