"""Editing saved latents: directions, interpolation, style mixing, StyleMap blends (``edits``), direction
files and SeFa (``directions``, ``direction_formats``) and discovered curvilinear paths (``discover``)."""
