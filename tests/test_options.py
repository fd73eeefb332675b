"""Job options are declared once: the CLI, the Python API and the engine's messages agree."""

from __future__ import annotations

from dataclasses import fields

import pytest
from click.testing import CliRunner

from conftest import tiny_generator
from optinv.engine import jobs
from optinv.cli import flag_table, to_flags
from optinv.cli.jobs import invert
from optinv.errors import OptinvError
from optinv.engine.options import GIF_FRAMES, JobOptions, cli_fields, merged_options, optimizer_settings


def test_every_cli_field_is_a_click_option_with_its_declared_default() -> None:
    params = {p.name: p for p in invert.params}
    for f in cli_fields():
        assert f.name in params, f.name
        assert params[f.name].default == f.default
        if f.metadata["choices"]:
            assert list(params[f.name].type.choices) == list(f.metadata["choices"])
    assert params["recipe"].opts == ["--loss"]
    python_only = {f.name for f in fields(JobOptions)} - {f.name for f in cli_fields()}
    assert {"lpips_net", "frames", "frame_every", "progress", "callback", "extra"} <= python_only
    assert all(f.metadata.get("cli") is False for f in fields(JobOptions) if f.name in python_only)


def test_keyword_arguments_are_the_option_names() -> None:
    opts = JobOptions.of(JobOptions(seed=3), steps=7, space="w")
    assert (opts.seed, opts.steps, opts.space) == (3, 7, "w")
    with pytest.raises(OptinvError, match="unknown job option.*stepz"):
        JobOptions.of(stepz=3)
    with pytest.raises(OptinvError, match="`steps` must be ≥ 1"):
        jobs.invert([], steps=0)


def test_engine_messages_name_parameters_and_the_cli_shows_flags() -> None:
    assert to_flags("`recipe` and `stylemap_res` and `scale` 4") == "--loss and --stylemap-res and --scale 4"
    assert to_flags("`no_such_thing` x") == "no_such_thing x"
    assert all(flag.startswith("--") for flag in flag_table().values())
    r = CliRunner().invoke(invert, ["x.png", "--batch", "0", "-o", "/tmp/optinv-test-unused"])
    assert r.exit_code == 1 and "--batch must be ≥ 1, got 0" in r.output


@pytest.mark.parametrize("steps, preset, expected", [(None, None, 300 // GIF_FRAMES), (20, None, 1), (400, None, 10),
                                                     (None, "image2stylegan", 5000 // GIF_FRAMES)])
def test_gif_frames_follow_the_steps_that_run(steps, preset, expected) -> None:
    g = tiny_generator(16)
    opts = JobOptions(steps=steps, preset=preset, frames=GIF_FRAMES)
    s = optimizer_settings(merged_options("invert", opts, g), opts)
    assert s.frame_every == expected
    assert optimizer_settings(merged_options("invert", JobOptions(), g), JobOptions()).frame_every == 0


def test_adam_beta2_reaches_the_optimizer_and_presets_keep_torchs_value(monkeypatch) -> None:
    g = tiny_generator(16)
    merged = merged_options("invert", JobOptions(), g)
    from optinv.engine.presets import JOB_DEFAULTS
    assert optimizer_settings(merged, JobOptions()).adam_beta2 == JOB_DEFAULTS["invert"]["adam_beta2"]
    for name in ("image2stylegan", "rosinality", "idinvert", "pulse"):
        opts = JobOptions(preset=name)
        assert optimizer_settings(merged_options("invert", opts, g), opts).adam_beta2 == 0.999, name
    opts = JobOptions(tune=True)  # PTI's pivot: its own Adam
    assert optimizer_settings(merged_options("invert", opts, g), opts).adam_beta2 == 0.999
    opts = JobOptions(adam_beta2=0.5)
    assert optimizer_settings(merged_options("invert", opts, g), opts).adam_beta2 == 0.5
    seen = []
    real_adam = __import__("torch").optim.Adam
    monkeypatch.setattr("torch.optim.Adam", lambda params, **kw: seen.append(kw["betas"]) or real_adam(params, **kw))
    jobs.invert([__import__("torch").rand(1, 3, 16, 16)], model=g, steps=1, space="w", init="mean", adam_beta2=0.8,
                progress=False, device="cpu")
    assert seen == [(0.9, 0.8)]
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(OptinvError, match="adam_beta2"):
            JobOptions.of(adam_beta2=bad)
