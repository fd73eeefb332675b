"""The top-level API and the pixel-range contract of job inputs."""

from __future__ import annotations

import pytest
import torch

import optinv
from optinv.engine import jobs
from optinv.errors import OptinvError
from tests.conftest import tiny_generator


def test_the_jobs_are_reachable_from_the_package() -> None:
    assert optinv.invert is jobs.invert and optinv.pulse is jobs.pulse and optinv.JobOptions is jobs.JobOptions
    with pytest.raises(AttributeError):
        optinv.no_such_job  # noqa: B018


def test_a_batch_tensor_is_its_images_and_a_signed_tensor_is_refused() -> None:
    g = tiny_generator(16)
    x = torch.rand(2, 3, 16, 16)
    kw = dict(model=g, device="cpu", steps=1, space="w", init="mean", progress=False)
    as_batch = optinv.invert([x], **kw)
    one_by_one = optinv.invert([x[0], x[1]], **kw)
    assert [r.name for r in as_batch] == ["image000", "image001"]
    assert all(torch.equal(a.image, b.image) for a, b in zip(as_batch, one_by_one))
    with pytest.raises(OptinvError, match=r"\[0, 1\].*to_unit"):
        optinv.invert([x[0] * 2 - 1], **kw)
    with pytest.raises(OptinvError, match=r"\[C, H, W\]"):
        optinv.invert([torch.rand(16, 16)], **kw)
