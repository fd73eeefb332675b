"""The two pixel ranges: generators and files speak [-1, 1], metrics and outputs [0, 1].

One pair of helpers, written exactly as ``(x + 1) / 2`` and ``x * 2 - 1`` so that every
caller gets the same bits as before.

>>> to_unit(torch.tensor([-1.0, 0.0, 1.0])).tolist()
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import torch


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 1] (no clamping)."""
    return (x + 1) / 2


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [-1, 1] (no clamping)."""
    return x * 2 - 1
