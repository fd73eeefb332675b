"""Kept importable: the teacher lives in :mod:`optinv.world.teacher` (training-only code)."""

from .world.teacher import render_teacher, teacher_labels, teacher_uniform

__all__ = ["render_teacher", "teacher_labels", "teacher_uniform"]
